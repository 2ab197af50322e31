//! The sessions that make a history: each reads, writes and compare-and-sets
//! a few znodes, one operation at a time, and records every one. Some are
//! pinned to one member (so that reads go through every member), the others
//! roam over the whole ensemble (so that reconnects move them between
//! servers, where ZooKeeper must not let them read older state).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::timeout;
use zookeeper_client::{Acls, Client, CreateMode, Error, Stat};

use super::{History, Kind, Op, Outcome};

/// The znodes the sessions share: few, so that they contend.
pub const KEYS: [&str; 4] = ["/history/k0", "/history/k1", "/history/k2", "/history/k3"];

/// How long one call may take before it is given up on (unknown outcome)
/// and the session dropped.
const CALL_LIMIT: Duration = Duration::from_secs(15);

/// Creates the znodes (empty, version 0) before the history starts.
pub async fn create_keys(hosts: &str) {
    let client = super::super::zk_client(hosts).await;
    let plain = CreateMode::Persistent.with_acls(Acls::anyone_all());
    for path in std::iter::once("/history").chain(KEYS) {
        match client.create(path, b"", &plain).await {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(e) => panic!("creating {path}: {e}"),
        }
    }
}

/// Starts `pinned` sessions each on one member (the `i`th of `hosts`, as it
/// is when the session opens) and `roaming` on all of them, until `stop`.
pub fn run_sessions(
    hosts: &watch::Receiver<String>,
    stop: &watch::Receiver<bool>,
    history: &Arc<History>,
    (pinned, roaming): (usize, usize),
    seed: u64,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for slot in 0..pinned + roaming {
        let (hosts, stop, history) = (hosts.clone(), stop.clone(), history.clone());
        let pin = (slot < pinned).then_some(slot);
        set.spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(slot as u64));
            let mut n = 0;
            while !*stop.borrow() {
                let list = hosts.borrow().clone();
                let connect_to = match pin {
                    Some(i) => list
                        .split(',')
                        .cycle()
                        .nth(i)
                        .unwrap_or_default()
                        .to_string(),
                    None => list,
                };
                let connect = Client::connector()
                    .with_session_timeout(Duration::from_secs(10))
                    .connect(&connect_to);
                match timeout(CALL_LIMIT, connect).await {
                    Ok(Ok(client)) => {
                        let mut s = Session {
                            client: &client,
                            history: &history,
                            slot,
                            versions: BTreeMap::new(),
                        };
                        s.run(&mut rng, &mut n, &stop).await;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        });
    }
    set
}

/// One open session.
struct Session<'a> {
    client: &'a Client,
    history: &'a History,
    slot: usize,
    /// The version of each znode this session saw last (what its next
    /// compare-and-set expects).
    versions: BTreeMap<&'static str, i64>,
}

impl Session<'_> {
    /// Operations until the session ends or a call goes unanswered.
    async fn run(&mut self, rng: &mut StdRng, n: &mut u64, stop: &watch::Receiver<bool>) {
        while !*stop.borrow() {
            let key = KEYS[rng.random_range(0..KEYS.len())];
            let kind = match rng.random_range(0..10) {
                0..4 => Kind::Read,
                4..7 => Kind::Write,
                _ => Kind::Cas,
            };
            *n += 1;
            if !self.one(key, kind, format!("{}-{n}", self.slot)).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..60))).await;
        }
    }

    /// Sends one operation and records it; false when the session is over.
    async fn one(&mut self, key: &'static str, kind: Kind, value: String) -> bool {
        let expected = self.versions.get(key).copied().unwrap_or(0);
        let call = self.history.now();
        let answer: Result<Result<(String, Stat), Error>, _> = match kind {
            Kind::Read => {
                timeout(CALL_LIMIT, async {
                    let (data, stat) = self.client.get_data(key).await?;
                    Ok((String::from_utf8_lossy(&data).into_owned(), stat))
                })
                .await
            }
            Kind::Write | Kind::Cas => {
                let version = (kind == Kind::Cas).then_some(expected as i32);
                timeout(CALL_LIMIT, async {
                    let stat = self.client.set_data(key, value.as_bytes(), version).await?;
                    Ok((String::new(), stat))
                })
                .await
            }
        };
        let returned = self.history.now();
        let mut op = Op {
            session: self.client.session_id().0,
            key: key.to_string(),
            op: kind,
            value: if kind == Kind::Read {
                String::new()
            } else {
                value
            },
            expected: if kind == Kind::Cas { expected } else { 0 },
            call,
            returned,
            outcome: Outcome::Unknown,
            read: String::new(),
            version: 0,
            mzxid: 0,
        };
        let go_on = match answer {
            Ok(Ok((read, stat))) => {
                op.outcome = Outcome::Ok;
                op.read = read;
                op.version = i64::from(stat.version);
                op.mzxid = stat.mzxid;
                self.versions.insert(key, op.version);
                true
            }
            Ok(Err(Error::BadVersion)) => {
                op.outcome = Outcome::BadVersion;
                true
            }
            Ok(Err(Error::NoNode)) => {
                op.outcome = Outcome::NoNode;
                true
            }
            Ok(Err(Error::SessionExpired | Error::ClientClosed)) | Err(_) => false,
            // Connection loss and the like: the client reconnects the session.
            Ok(Err(_)) => true,
        };
        self.history.push(op);
        go_on
    }
}
