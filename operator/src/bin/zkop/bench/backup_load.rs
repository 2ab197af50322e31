//! `zkop bench --backup-load`: whether continuous backup keeps up with heavy
//! writes. A three-voter cluster by zkop ships to a directory with
//! `recoveryPoint: 5s` while clients write 1 KB values at a steady rate;
//! every second the bench samples the recovery point actually kept (how old
//! the newest shipped transaction is: a loss at that moment would lose
//! everything after it), and at the end it reads the shipping agent's CPU
//! next to another agent's (which probes and reports as well, but does not
//! ship) and the bytes shipped and read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Semaphore;

use super::clusters::cpu_time;
use super::operated::Session;
use super::{BenchError, connect, ensure_znode, io, round};

/// Sessions the load is spread over.
const SESSIONS: usize = 16;
/// Writes in flight at most (ZooKeeper pipelines a session's requests).
const IN_FLIGHT: usize = 512;
/// Bytes of each value written.
const VALUE: usize = 1024;
/// The recovery point the cluster is asked for.
const RECOVERY_POINT: Duration = Duration::from_secs(5);

/// One rate's figures.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupLoad {
    /// Writes a second asked for.
    pub writes_per_second_asked: u32,
    /// Writes a second acknowledged.
    pub writes_per_second_done: f64,
    /// How long the load ran, seconds.
    pub seconds: u64,
    /// `spec.backup.recoveryPoint`, seconds.
    pub recovery_point_asked_s: f64,
    /// The recovery point kept, sampled every second: the largest, seconds.
    pub recovery_point_max_s: f64,
    /// Its 99th percentile, seconds.
    pub recovery_point_p99_s: f64,
    /// The shipping agent's CPU, seconds a minute.
    pub shipper_agent_cpu_s_per_min: f64,
    /// Another agent's (no shipping), seconds a minute.
    pub other_agent_cpu_s_per_min: f64,
    /// Shipped to the backup, MiB a minute.
    pub shipped_mib_per_min: f64,
    /// Transaction logs read from disk to ship them, MiB a minute.
    pub log_read_mib_per_min: f64,
}

/// Runs the load at each of `rates` for `load` on one cluster.
pub async fn run(
    opts: &super::BenchOptions,
    spec_text: &str,
    rates: &[u32],
    load: Duration,
) -> Result<Vec<BackupLoad>, BenchError> {
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-backup-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let text = with_backup(spec_text, &work.path().join("backup"))?;
    let (session, _) = Session::start(opts, &text, 3, &work.path().join("zkop")).await?;
    let mut rows = Vec::new();
    let mut result = Ok(());
    for &rate in rates {
        match one_rate(&session, rate, load).await {
            Ok(row) => rows.push(row),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    session.stop().await;
    result.map(|()| rows)
}

/// The example spec shipping to `dir` with `recoveryPoint: 5s` (its canary
/// kept).
pub(super) fn with_backup(spec_text: &str, dir: &std::path::Path) -> Result<String, BenchError> {
    let backup = format!(
        "  backup:\n    dir: {}\n    recoveryPoint: {}s\n",
        dir.display(),
        RECOVERY_POINT.as_secs()
    );
    let text = spec_text.replace("  canary:\n", &format!("{backup}  canary:\n"));
    if !text.contains("  backup:\n") {
        return Err(BenchError::Setup(
            "the example spec has no canary to put the backup before".into(),
        ));
    }
    Ok(text)
}

/// What the counters say at one moment.
struct Counters {
    at: Instant,
    shipper_cpu: Duration,
    other_cpu: Duration,
    shipped: u64,
    read: u64,
}

async fn one_rate(session: &Session, rate: u32, load: Duration) -> Result<BackupLoad, BenchError> {
    let status = session
        .wait("a shipper caught up", |s| {
            s.backup
                .as_ref()
                .is_some_and(|b| b.shipper.is_some() && !b.behind)
        })
        .await?;
    let shipper = status.backup.as_ref().and_then(|b| b.shipper);
    let instance_of = |shipping: bool| {
        status
            .members
            .iter()
            .find(|m| (Some(m.id) == shipper) == shipping)
            .map(|m| m.instance.to_string())
    };
    let pids = zkop::adapters::local::read_fleet_file(session.state_dir())
        .map_err(io("reading fleet.json"))?;
    let pid_of = |instance: Option<String>| {
        pids.iter()
            .find(|r| Some(&r.id) == instance.as_ref())
            .and_then(|r| r.agent_pid)
            .ok_or_else(|| BenchError::Setup("no agent PID in fleet.json".into()))
    };
    let (shipper_pid, other_pid) = (pid_of(instance_of(true))?, pid_of(instance_of(false))?);
    let counters = |status: &zkop_spec::wire::StatusReply| Counters {
        at: Instant::now(),
        shipper_cpu: cpu_time(shipper_pid).unwrap_or_default(),
        other_cpu: cpu_time(other_pid).unwrap_or_default(),
        shipped: status.backup.as_ref().map_or(0, |b| b.bytes_shipped),
        read: status.backup.as_ref().map_or(0, |b| b.log_bytes_read),
    };
    let before = counters(&status);
    let writer = tokio::spawn(write_at(status.connect_string.clone(), rate, load));
    let mut kept = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while before.at.elapsed() < load {
        tick.tick().await;
        let s = zkop::cli::client::fetch(session.api()).await?;
        if let Some(t) = s.backup.as_ref().and_then(|b| b.newest_time_ms) {
            kept.push(wall_ms().saturating_sub(t) as f64 / 1000.0);
        }
    }
    let done = writer
        .await
        .map_err(|e| BenchError::ZooKeeper(format!("the writers: {e}")))??;
    let after = counters(&zkop::cli::client::fetch(session.api()).await?);
    let minutes = after.at.duration_since(before.at).as_secs_f64() / 60.0;
    let per_min = |d: Duration| round(d.as_secs_f64() / minutes);
    let mib_per_min = |b: u64| round(b as f64 / 1_048_576.0 / minutes);
    kept.sort_by(f64::total_cmp);
    let p99 = kept
        .get((kept.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN);
    Ok(BackupLoad {
        writes_per_second_asked: rate,
        writes_per_second_done: round(done as f64 / load.as_secs_f64()),
        seconds: load.as_secs(),
        recovery_point_asked_s: RECOVERY_POINT.as_secs_f64(),
        recovery_point_max_s: round(kept.last().copied().unwrap_or(f64::NAN)),
        recovery_point_p99_s: round(p99),
        shipper_agent_cpu_s_per_min: per_min(after.shipper_cpu.saturating_sub(before.shipper_cpu)),
        other_agent_cpu_s_per_min: per_min(after.other_cpu.saturating_sub(before.other_cpu)),
        shipped_mib_per_min: mib_per_min(after.shipped.saturating_sub(before.shipped)),
        log_read_mib_per_min: mib_per_min(after.read.saturating_sub(before.read)),
    })
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `rate` times a second for `load`, spread over `SESSIONS`
/// sessions each on its own znode; the writes acknowledged.
async fn write_at(hosts: String, rate: u32, load: Duration) -> Result<u64, BenchError> {
    let mut clients = Vec::new();
    for i in 0..SESSIONS {
        let c = connect(&hosts, Duration::from_secs(20)).await?;
        let path = format!("/bench-backup-{i}");
        ensure_znode(&c, &path, b"").await?;
        clients.push((c, path));
    }
    let value: Arc<[u8]> = vec![b'z'; VALUE].into();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    while started.elapsed() < load {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        while sent < due {
            // A full pipeline: the ensemble is behind the rate, and the
            // writes done say so.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                sent = due;
                break;
            };
            let (c, path) = clients[sent as usize % SESSIONS].clone();
            let (value, done) = (value.clone(), done.clone());
            tokio::spawn(async move {
                if c.set_data(&path, &value, None).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                drop(slot);
            });
            sent += 1;
        }
    }
    // Every write answered (or given up on after a while).
    let all = u32::try_from(IN_FLIGHT).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(30), slots.acquire_many(all)).await;
    Ok(done.load(Ordering::Relaxed))
}

/// The table.
pub fn render(rows: &[BackupLoad]) -> String {
    let mut out = format!(
        "{:>10} {:>10} {:>14} {:>14} {:>16} {:>16} {:>14} {:>14}\n",
        "writes/s",
        "done/s",
        "RPO max s",
        "RPO p99 s",
        "shipper CPU s/m",
        "other CPU s/m",
        "shipped MiB/m",
        "read MiB/m"
    );
    for r in rows {
        out.push_str(&format!(
            "{:>10} {:>10.0} {:>14.2} {:>14.2} {:>16.2} {:>16.2} {:>14.1} {:>14.1}\n",
            r.writes_per_second_asked,
            r.writes_per_second_done,
            r.recovery_point_max_s,
            r.recovery_point_p99_s,
            r.shipper_agent_cpu_s_per_min,
            r.other_agent_cpu_s_per_min,
            r.shipped_mib_per_min,
            r.log_read_mib_per_min,
        ));
    }
    out.push_str(&format!(
        "Three voters by zkop shipping to a directory with recoveryPoint {}s; {SESSIONS} sessions write {VALUE}-byte values at each rate for {} s. RPO: the age of the newest shipped transaction, sampled every second (want <= {}s). CPU: the shipping agent's and another agent's, seconds a minute (60 is a whole core). See docs/performance.md.\n",
        RECOVERY_POINT.as_secs(),
        rows.first().map_or(0, |r| r.seconds),
        RECOVERY_POINT.as_secs()
    ));
    out
}
