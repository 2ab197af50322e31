//! The consistency canary (`spec.canary`): while this controller leads, a
//! round every `every` writes a counter under `/zkop/canary` with
//! compare-and-set through a session on the ensemble, tries a
//! compare-and-set against the version before (it must be refused), reads
//! its write back, then syncs and reads the counter through a session on
//! each member (read-only answers allowed: a member cut off from the quorum
//! in read-only mode shows how stale it is). Every answer is checked
//! (`check`); status, `/metrics` and the alerts show what it found. Only
//! zkop may write the counter: its znodes carry a `digest` ACL for the user
//! `zkop` with the cluster's super password, and anyone may read them.

pub mod check;
mod members;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::timeout;
use tracing::{info, warn};
use zkop_spec::canary::{CANARY_PATH, COUNTER_PATH, CanaryStatus};
use zkop_spec::zk::ServerId;
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Error, Permission};

use crate::controller::Shared;
use check::Violation;

/// The user the canary's ACL names.
const USER: &str = "zkop";

/// Runs rounds while the spec asks for them and this controller leads,
/// until `stop`.
pub async fn run(shared: Arc<Shared>, password_file: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut canary: Option<Canary> = None;
    loop {
        let spec = shared.spec();
        let every = spec.canary_every;
        let leads = shared.lease_left() > Duration::ZERO && shared.fenced().is_none();
        match every {
            Some(every) if leads => {
                let session = longest_session(&spec.zookeeper);
                let c = match canary.as_mut() {
                    Some(c) if c.dialer.every == every && c.dialer.session == session => c,
                    _ => canary.insert(Canary::new(every, session, &password_file)),
                };
                c.round(&shared).await;
                shared.set_canary(Some(c.status.clone()));
            }
            _ => {
                canary = None;
                shared.set_canary(None);
            }
        }
        if shared.sample_due() {
            shared.record_sample(sample(&shared.status()));
        }
        let pause = every.unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The longest session the servers grant (`maxSessionTimeout`, by default
/// 20 ticks): the canary's sessions ask for it, as they hold no ephemeral
/// znodes.
fn longest_session(zk: &zkop_spec::validate::ZkSettings) -> Duration {
    let ms = zk
        .server_properties
        .get("maxSessionTimeout")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(u64::from(zk.tick_time) * 20);
    Duration::from_millis(ms.max(1))
}

/// How the canary opens sessions: cloned into each member's read.
#[derive(Clone)]
pub(crate) struct Dialer {
    every: Duration,
    /// The session timeout asked for (`longest_session`).
    session: Duration,
    password: Option<String>,
    /// With TLS on: its client certificate (`CN=zkop-canary`).
    tls: Option<zkop_zk::endpoint::ClientTls>,
}

impl Dialer {
    /// How long one call may take: a round must end before the next.
    pub(crate) fn call_limit(&self) -> Duration {
        (self.every / 2).clamp(Duration::from_millis(500), Duration::from_secs(5))
    }

    /// A session on one server, `endpoint`: the writer's (authenticated as
    /// zkop), or a member's (read-only answers allowed).
    pub(crate) async fn connect(&self, endpoint: &str, read_only: bool) -> Result<Client, String> {
        // The client wakes every eighth of its connection timeout (or a
        // twentieth of the session's, if the connection timeout is over
        // 3/5 of it) on a reactor thread of its own, and pings every third
        // wake. Each session talks to one server and idles between rounds,
        // and the round's own limits catch a server that stops answering
        // (the writer then moves to the next member): the longest session
        // and a connection timeout of 3/5 of it make the fewest wakes, a
        // cost paid by every cluster under the controller.
        let (session, connection, limit) = (self.session, self.session * 3 / 5, self.call_limit());
        let mut connector = Client::connector()
            .with_session_timeout(session)
            .with_connection_timeout(connection)
            .with_readonly(read_only);
        if let Some(p) = &self.password {
            connector = connector.with_auth("digest", format!("{USER}:{p}").as_bytes());
        }
        let url = match &self.tls {
            Some(identity) => {
                connector = connector.with_tls(identity.options()?);
                format!("tcp+tls://{endpoint}")
            }
            None => endpoint.to_string(),
        };
        timeout(limit, connector.connect(&url))
            .await
            .map_err(|_| format!("no session with {endpoint} within {limit:?}"))?
            .map_err(|e| format!("session with {endpoint}: {e}"))
    }
}

/// The canary's sessions and counts.
struct Canary {
    dialer: Dialer,
    /// When its client certificate was issued (TLS on).
    issued: Option<Instant>,
    /// The writer's session and the member it is on.
    writer: Option<(String, Client)>,
    /// Which member the writer connects to next (it moves on after a
    /// failed round).
    next_writer: usize,
    /// The counter's version the writer knows (none: read it first).
    version: Option<i64>,
    members: BTreeMap<ServerId, members::MemberSession>,
    status: CanaryStatus,
}

impl Canary {
    fn new(every: Duration, session: Duration, password_file: &std::path::Path) -> Self {
        let password = std::fs::read_to_string(password_file)
            .ok()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty());
        Canary {
            dialer: Dialer {
                every,
                session,
                password,
                tls: None,
            },
            issued: None,
            writer: None,
            next_writer: 0,
            version: None,
            members: BTreeMap::new(),
            status: CanaryStatus::new(every.as_secs()),
        }
    }

    /// With TLS on, a client certificate from the cluster CA (the key made
    /// here), renewed when a third of its lifetime is left, as agents do;
    /// new sessions follow a change.
    fn ensure_identity(&mut self, shared: &Shared, tls_on: bool) -> Result<(), String> {
        if !tls_on {
            if self.dialer.tls.take().is_some() {
                self.drop_sessions();
            }
            return Ok(());
        }
        let lifetime = shared
            .spec()
            .tls
            .map(|t| t.certificate_lifetime)
            .unwrap_or(Duration::from_secs(86_400));
        if self.dialer.tls.is_some()
            && self
                .issued
                .is_some_and(|at| at.elapsed() < lifetime * 2 / 3)
        {
            return Ok(());
        }
        let name = "zkop-canary";
        let made = zkop_runtime::pki::key_and_request(name).map_err(|e| e.to_string())?;
        let signed = shared
            .sign_client(name, &made.csr_pem)
            .map_err(|e| format!("a client certificate for the canary: {e}"))?;
        let identity =
            zkop_zk::endpoint::ClientTls::from_pem(&signed.ca, &signed.certificate, &made.key_pem)?;
        self.dialer.tls = Some(identity);
        self.issued = Some(Instant::now());
        self.drop_sessions();
        Ok(())
    }

    fn drop_sessions(&mut self) {
        self.writer = None;
        self.version = None;
        self.members.clear();
    }

    /// One round: write, check, read through every member, count.
    async fn round(&mut self, shared: &Shared) {
        let status = shared.status();
        let cluster = status.cluster.clone();
        self.status.rounds += 1;
        if let Err(e) = self.ensure_identity(shared, status.tls.is_some()) {
            self.status.write_error = Some(e);
            return;
        }
        let members: Vec<(ServerId, String)> = status
            .members
            .iter()
            .map(|m| (m.id, format!("{}:{}", m.address, m.client_port)))
            .collect();
        let mut violations = Vec::new();
        let wrote = match self.write(&members, &mut violations).await {
            Ok(v) => {
                self.status.write_error = None;
                Some(v)
            }
            Err(e) => {
                self.status.last_write_seconds = None;
                warn!(cluster = %cluster, error = %e, "the canary cannot write");
                self.status.write_error = Some(e);
                self.writer = None;
                self.next_writer += 1;
                self.version = None;
                None
            }
        };
        let acked = wrote.unwrap_or(self.status.counter as i64);
        self.members
            .retain(|id, _| members.iter().any(|(m, _)| m == id));
        let writer = self.writer.as_ref().map(|(e, c)| (e.as_str(), c));
        let (reads, found) =
            members::read_all(&self.dialer, &mut self.members, &members, writer, acked).await;
        violations.extend(found);
        self.status.members = reads;
        for v in &violations {
            warn!(cluster = %cluster, kind = v.kind, "canary violation: {}", v.message);
            *self
                .status
                .violations
                .entry(v.kind.to_string())
                .or_default() += 1;
            self.status.last_violation = Some(format!("{}: {}", v.kind, v.message));
            shared.event("canary_violation", format!("{}: {}", v.kind, v.message));
        }
        if wrote.is_some() && violations.is_empty() {
            self.status.last_good_round_ms = Some(shared.clock.wall_ms());
        }
    }

    /// The writer's part: the compare-and-set, the stale one, the read
    /// back; the version written.
    async fn write(
        &mut self,
        members: &[(ServerId, String)],
        violations: &mut Vec<Violation>,
    ) -> Result<i64, String> {
        let limit = self.dialer.call_limit();
        let on_a_member = |e: &String| members.iter().any(|(_, m)| m == e);
        if self.writer.as_ref().is_none_or(|(e, _)| !on_a_member(e)) {
            let Some((_, endpoint)) = members.get(self.next_writer % members.len().max(1)) else {
                return Err("no members to write through".into());
            };
            let client = self.dialer.connect(endpoint, false).await?;
            ensure_znodes(&client, self.dialer.password.as_deref(), limit).await?;
            self.writer = Some((endpoint.clone(), client));
            self.version = None;
        }
        let Some((_, writer)) = self.writer.as_ref() else {
            return Err("no writer session".into());
        };
        let version = match self.version {
            Some(v) => v,
            None => call(limit, writer.get_data(COUNTER_PATH))
                .await?
                .1
                .version
                .into(),
        };
        let next = version + 1;
        let began = Instant::now();
        let answer = timeout(
            limit,
            writer.set_data(
                COUNTER_PATH,
                next.to_string().as_bytes(),
                Some(version as i32),
            ),
        )
        .await;
        let made = match answer {
            Ok(Ok(stat)) => i64::from(stat.version),
            Ok(Err(Error::BadVersion)) => {
                // The last round's outcome was unknown and it took effect:
                // read the version again next round.
                self.version = None;
                return Err(format!(
                    "the counter's version was not {version} (an earlier write of unknown outcome took effect)"
                ));
            }
            Ok(Err(e)) => return Err(format!("compare-and-set: {e}")),
            Err(_) => return Err(format!("compare-and-set: no answer within {limit:?}")),
        };
        let took = began.elapsed().as_secs_f64();
        self.status.write_seconds.observe(took);
        self.status.last_write_seconds = Some(took);
        violations.extend(check::check_write(version, made));
        self.version = Some(made);
        self.status.counter = made.max(0) as u64;
        // The version before the current one must be refused.
        let (found, now) = try_stale_cas(writer, limit, version, made).await?;
        violations.extend(found);
        self.version = Some(now);
        let (_, stat) = call(limit, writer.get_data(COUNTER_PATH)).await?;
        violations.extend(check::check_read_back(made, stat.version.into()));
        Ok(made)
    }
}

/// The plots' point for now: the canary's last write and reads, and each
/// serving member's lag.
fn sample(s: &zkop_spec::wire::StatusReply) -> zkop_spec::canary::TimelineSample {
    let c = s.canary.as_ref();
    zkop_spec::canary::TimelineSample {
        at_ms: 0,
        canary_write_ms: c.and_then(|c| c.last_write_seconds).map(|w| w * 1000.0),
        read_ms: c
            .map(|c| {
                c.members
                    .iter()
                    .filter_map(|r| Some((r.id.to_string(), r.read_seconds? * 1000.0)))
                    .collect()
            })
            .unwrap_or_default(),
        zxid_lag: s
            .members
            .iter()
            .filter_map(|m| Some((m.id.to_string(), m.zxid_lag?)))
            .collect(),
    }
}

/// A compare-and-set expecting `stale`, the version before `made`: it must
/// be refused. What it found, and the counter's version after it.
async fn try_stale_cas(
    writer: &Client,
    limit: Duration,
    stale: i64,
    made: i64,
) -> Result<(Option<Violation>, i64), String> {
    let data = made.to_string();
    match timeout(
        limit,
        writer.set_data(COUNTER_PATH, data.as_bytes(), Some(stale as i32)),
    )
    .await
    {
        Ok(Ok(stat)) => {
            let now = i64::from(stat.version);
            Ok((check::check_stale_cas_accepted(stale, now), now))
        }
        Ok(Err(Error::BadVersion)) => Ok((None, made)),
        Ok(Err(e)) => Err(format!("compare-and-set on an old version: {e}")),
        Err(_) => Err(format!(
            "compare-and-set on an old version: no answer within {limit:?}"
        )),
    }
}

/// One call within `limit`, its error in words.
pub(crate) async fn call<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, String> {
    match timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Creates `/zkop`, `/zkop/canary` and the counter (version 0), each
/// readable by anyone and writable by zkop alone (with no password, by
/// anyone: a cluster without secrets).
async fn ensure_znodes(
    client: &Client,
    password: Option<&str>,
    limit: Duration,
) -> Result<(), String> {
    let acl = match password {
        Some(p) => vec![
            Acl::new(
                Permission::ALL,
                AuthId::new("digest", &zkop_zk::reconfig::digest_id(USER, p)),
            ),
            Acl::new(Permission::READ, AuthId::new("world", "anyone")),
        ],
        None => vec![Acl::new(Permission::ALL, AuthId::new("world", "anyone"))],
    };
    let options = CreateMode::Persistent.with_acls(Acls::new(&acl));
    for (path, data) in [("/zkop", ""), (CANARY_PATH, ""), (COUNTER_PATH, "0")] {
        match timeout(limit, client.create(path, data.as_bytes(), &options)).await {
            Ok(Ok(_)) => info!(path, "the canary created its znode"),
            Ok(Err(Error::NodeExists)) => {}
            Ok(Err(e)) => return Err(format!("creating {path}: {e}")),
            Err(_) => return Err(format!("creating {path}: no answer within {limit:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_ask_for_twenty_ticks_or_the_servers_own_maximum() {
        let spec = "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  fleet:\n    local: {}\n  zookeeper:\n    tickTime: 500\n";
        let zk = zkop_spec::parse_spec(spec).unwrap().zookeeper;
        assert_eq!(longest_session(&zk), Duration::from_secs(10));
        let zk = zkop_spec::parse_spec(&format!(
            "{spec}    serverProperties:\n      maxSessionTimeout: \"30000\"\n"
        ))
        .unwrap()
        .zookeeper;
        assert_eq!(longest_session(&zk), Duration::from_secs(30));
    }
}
