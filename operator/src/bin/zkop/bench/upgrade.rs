//! `zkop bench --upgrade`: a three-voter rolling upgrade of ZooKeeper, from
//! the installed 3.8 release to the default, by zkop (`spec.zookeeper.version`
//! edited, `upgrade.canaryFor: 0s`) next to the same upgrade done by hand on
//! plain servers (stop, switch release, start, wait for `srvr`, next), in one
//! run. A client writes throughout each: the longest write stall and the
//! sessions expired (want 0) are measured with the duration.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use zookeeper_client::{Acls, Client, CreateMode};

use super::by_hand::HandEnsemble;
use super::operated::Session;
use super::{BenchError, BenchOptions, io, round};

/// The release both sides start on, and the one they upgrade to.
pub const FROM: &str = "3.8.6";
/// The default release.
pub const TO: &str = zkop_spec::releases::DEFAULT_VERSION;

/// One side's upgrade.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upgraded {
    /// `zkop` or `hand`.
    pub side: String,
    /// Seconds from the first action to every member serving on `TO`.
    pub seconds: f64,
    /// The longest time between two acknowledged writes, ms.
    pub longest_stall_ms: u64,
    /// Sessions the writing client lost (it reconnects with a new one).
    pub sessions_expired: u64,
    /// Writes acknowledged during the upgrade.
    pub writes: u64,
}

/// Both sides, hand first. `from` and `to` are the two releases' options
/// (their classpaths).
pub async fn run(
    from: &BenchOptions,
    to: &BenchOptions,
    spec_text: &str,
) -> Result<Vec<Upgraded>, BenchError> {
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-upgrade-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let text = spec_text.replace(
        "  zookeeper:\n",
        &format!("  zookeeper:\n    version: {FROM}\n    acceptKnownIssues: [ZOOKEEPER-4394]\n"),
    ) + "  upgrade:\n    canaryFor: 0s\n";
    let spec = zkop_spec::parse_spec(&text)
        .map_err(|e| BenchError::Setup(format!("the bench spec is invalid: {e}")))?;

    let mut hand = HandEnsemble::new(from, &spec, &work.path().join("hand"));
    let by_hand = async {
        hand.bootstrap(3).await?;
        let writer = Writer::start(&hand.connect_string()).await?;
        let took = hand.upgrade(to, TO).await;
        let seen = writer.stop().await;
        Ok::<_, BenchError>(row("hand", took?, seen))
    }
    .await;
    hand.stop().await?;
    let by_hand = by_hand?;

    let (session, _) = Session::start(from, &text, 3, &work.path().join("zkop")).await?;
    let by_zkop = async {
        let status = zkop::cli::client::fetch(session.api()).await?;
        let writer = Writer::start(&status.connect_string).await?;
        let took = session.upgrade(FROM, TO).await;
        let seen = writer.stop().await;
        Ok::<_, BenchError>(row("zkop", took?, seen))
    }
    .await;
    session.stop().await;
    Ok(vec![by_zkop?, by_hand])
}

fn row(side: &str, took: Duration, seen: Seen) -> Upgraded {
    Upgraded {
        side: side.into(),
        seconds: round(took.as_secs_f64()),
        longest_stall_ms: seen.longest_stall.as_millis() as u64,
        sessions_expired: seen.expired,
        writes: seen.writes,
    }
}

/// What the writing client saw.
#[derive(Debug, Default)]
struct Seen {
    longest_stall: Duration,
    expired: u64,
    writes: u64,
}

/// A client with a 10 s session creating a znode every 20 ms until stopped.
struct Writer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Seen>,
}

impl Writer {
    async fn start(hosts: &str) -> Result<Writer, BenchError> {
        let client = connect(hosts).await?;
        super::ensure_znode(&client, "/bench-upgrade", b"").await?;
        let (stop, mut stopped) = watch::channel(false);
        let hosts = hosts.to_string();
        let task = tokio::spawn(async move {
            let mut client = client;
            let mut seen = Seen::default();
            let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
            let mut last = Instant::now();
            while !*stopped.borrow() {
                match client.create("/bench-upgrade/w-", b"v", &seq).await {
                    Ok(_) => {
                        seen.writes += 1;
                        seen.longest_stall = seen.longest_stall.max(last.elapsed());
                        last = Instant::now();
                    }
                    Err(zookeeper_client::Error::SessionExpired) => {
                        seen.expired += 1;
                        if let Ok(c) = connect(&hosts).await {
                            client = c;
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
            seen
        });
        Ok(Writer { stop, task })
    }

    async fn stop(self) -> Seen {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

async fn connect(hosts: &str) -> Result<Client, BenchError> {
    super::connect(hosts, Duration::from_secs(10)).await
}

/// The two rows as a table.
pub fn render(rows: &[Upgraded]) -> String {
    let mut out = format!(
        "{:<6} {:>10} {:>18} {:>17} {:>8}\n",
        "side", "seconds", "longest stall ms", "sessions expired", "writes"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<6} {:>10.2} {:>18} {:>17} {:>8}\n",
            r.side, r.seconds, r.longest_stall_ms, r.sessions_expired, r.writes
        ));
    }
    if let [zkop, hand] = rows {
        out.push_str(&format!(
            "ratio (zkop over hand): {:.2}\n",
            zkop.seconds / hand.seconds.max(f64::EPSILON)
        ));
    }
    out.push_str(&format!("three voters upgraded from ZooKeeper {FROM} to {TO}, one at a time, the leader last; zkop: from the spec edit (upgrade.canaryFor 0s) to every member serving on {TO}; by hand: each server stopped, started on {TO}'s jars, and waited for until srvr says {TO}, serving and caught up. A client (10 s session) creates a znode every 20 ms throughout. See docs/performance.md.\n"));
    out
}
