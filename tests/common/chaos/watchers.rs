//! What runs beside the faults: a client that writes and remembers every write
//! ZooKeeper acknowledged, a sampler that records which server led which
//! epoch, and the controller's status, polled for the current members.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::timeout;
use zkop_spec::wire::StatusReply;
use zkop_spec::zk::ServerMode;
use zookeeper_client::{Acls, Client, CreateMode};

use crate::common::LocalCluster;
use crate::common::history::{self, History};

/// How long one client call may take before the writer starts a new session
/// with the current members (its old list may hold only replaced servers).
const CALL_LIMIT: Duration = Duration::from_secs(15);

/// A write ZooKeeper acknowledged: the znode's name and when (ms since the
/// Unix epoch).
pub type Acked = (String, u64);

/// Writes sequential znodes under `/acc` until told to stop, with a session
/// to the members `hosts` lists at the time; returns the acknowledged writes.
pub async fn write_until_stopped(
    hosts: watch::Receiver<String>,
    stop: watch::Receiver<bool>,
) -> Vec<Acked> {
    let mut acked = Vec::new();
    while !*stop.borrow() {
        let h = hosts.borrow().clone();
        let connect = Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&h);
        match timeout(CALL_LIMIT, connect).await {
            Ok(Ok(client)) => write_in_session(&client, &stop, &mut acked).await,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    acked
}

/// Writes through one session until it fails or a call goes unanswered.
async fn write_in_session(client: &Client, stop: &watch::Receiver<bool>, acked: &mut Vec<Acked>) {
    let plain = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let sequential = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    match timeout(CALL_LIMIT, client.create("/acc", b"", &plain)).await {
        Ok(Ok(_) | Err(zookeeper_client::Error::NodeExists)) => {}
        _ => return,
    }
    while !*stop.borrow() {
        match timeout(CALL_LIMIT, client.create("/acc/n-", b"x", &sequential)).await {
            Ok(Ok((_, seq))) => acked.push((format!("n-{seq}"), super::super::now_ms())),
            Ok(Err(
                zookeeper_client::Error::SessionExpired | zookeeper_client::Error::ClientClosed,
            ))
            | Err(_) => return,
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Which servers were seen leading each epoch (the high half of a serving
/// leader's zxid).
pub type Leaders = BTreeMap<u32, BTreeSet<String>>;

/// Asks every endpoint ever seen for `srvr` every 300 ms until told to stop.
pub async fn sample_leaders(
    seen: Arc<Mutex<BTreeSet<String>>>,
    stop: watch::Receiver<bool>,
) -> Leaders {
    let mut leaders = Leaders::new();
    while !*stop.borrow() {
        let endpoints: Vec<String> = seen
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let mut probes = tokio::task::JoinSet::new();
        for e in endpoints {
            probes.spawn(async move {
                let reply = zkop_zk::probe::four_letter_word(&e, "srvr").await.ok()?;
                let srvr = zkop_spec::fourlw::parse_srvr(&reply).ok()?;
                (srvr.serving && srvr.mode == Some(ServerMode::Leader))
                    .then_some((srvr.zxid?.epoch, e))
            });
        }
        while let Some(done) = probes.join_next().await {
            if let Ok(Some((epoch, e))) = done {
                leaders.entry(epoch).or_default().insert(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    leaders
}

/// Epochs that more than one server led.
pub fn shared_epochs(leaders: &Leaders) -> Vec<(u32, &BTreeSet<String>)> {
    leaders
        .iter()
        .filter(|(_, who)| who.len() > 1)
        .map(|(e, who)| (*e, who))
        .collect()
}

/// Everything that runs beside the faults: the members' poller, the writer,
/// the leader sampler and the sessions recording a history.
pub struct Beside {
    stop: watch::Sender<bool>,
    /// The controller's URL and token as they are now, for the poller.
    pub api: watch::Sender<(String, String)>,
    recorded: Arc<History>,
    poller: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<Vec<Acked>>,
    sampler: tokio::task::JoinHandle<Leaders>,
    sessions: tokio::task::JoinSet<()>,
}

impl Beside {
    /// Starts them all on the members of `first`.
    pub async fn start(c: &LocalCluster, first: &StatusReply, seed: u64) -> Beside {
        let hosts = LocalCluster::endpoints(first);
        history::create_keys(&hosts).await;
        let (hosts_tx, hosts_rx) = watch::channel(hosts);
        let (stop, stop_rx) = watch::channel(false);
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let (api, api_rx) = watch::channel((c.url().to_string(), c.token().to_string()));
        let poller = follow_members(
            (c.http().clone(), api_rx),
            hosts_tx,
            seen.clone(),
            stop_rx.clone(),
        );
        let recorded = Arc::new(History::new());
        // A session on each member and two roaming: one operation at a time each.
        let sessions = history::run_sessions(&hosts_rx, &stop_rx, &recorded, (3, 2), seed);
        let writer = tokio::spawn(write_until_stopped(hosts_rx, stop_rx.clone()));
        let sampler = tokio::spawn(sample_leaders(seen, stop_rx));
        Beside {
            stop,
            api,
            recorded,
            poller,
            writer,
            sampler,
            sessions,
        }
    }

    /// Stops them; the acknowledged writes, the leaders seen, the history.
    pub async fn finish(mut self) -> (Vec<Acked>, Leaders, Arc<History>) {
        let _ = self.stop.send(true);
        let acked = self.writer.await.unwrap_or_default();
        let leaders = self.sampler.await.unwrap_or_default();
        let _ = self.poller.await;
        while self.sessions.join_next().await.is_some() {}
        (acked, leaders, self.recorded)
    }
}

/// Polls the controller's status every 500 ms: publishes the members'
/// endpoints to the writer and adds them to what the sampler asks. `api`
/// is the controller's URL and token, as they are now (a controller started
/// again after a power loss listens elsewhere).
pub fn follow_members(
    (http, api): (reqwest::Client, watch::Receiver<(String, String)>),
    hosts: watch::Sender<String>,
    seen: Arc<Mutex<BTreeSet<String>>>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            let (url, token) = api.borrow().clone();
            if let Some(s) = super::super::api_client(&http, &url, &token).status().await {
                publish(&s, &hosts, &seen);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

fn publish(s: &StatusReply, hosts: &watch::Sender<String>, seen: &Mutex<BTreeSet<String>>) {
    let endpoints: Vec<String> = s.members.iter().map(super::super::endpoint).collect();
    if endpoints.is_empty() {
        return;
    }
    if let Ok(mut seen) = seen.lock() {
        seen.extend(endpoints.iter().cloned());
    }
    hosts.send_if_modified(|h| {
        let new = endpoints.join(",");
        let changed = *h != new;
        *h = new;
        changed
    });
}

/// Every acknowledged write that does not read back (after a `sync`).
pub async fn lost_writes(hosts: &str, acked: &[Acked]) -> Vec<Acked> {
    let client = super::super::zk_client(hosts).await;
    client.sync("/acc").await.expect("sync /acc");
    let present: BTreeSet<String> = client
        .list_children("/acc")
        .await
        .expect("list /acc")
        .into_iter()
        .collect();
    acked
        .iter()
        .filter(|(name, _)| !present.contains(name))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_led_by_two_servers_is_found() {
        let mut l = Leaders::new();
        l.entry(1).or_default().insert("a".into());
        l.entry(2).or_default().insert("b".into());
        assert!(shared_epochs(&l).is_empty());
        l.entry(2).or_default().insert("c".into());
        assert_eq!(shared_epochs(&l).len(), 1);
    }
}
