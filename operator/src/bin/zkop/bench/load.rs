//! `zkop bench --load`: ZooKeeper's own throughput and latency under zkop
//! (its agents probing, the shipper reading logs for `recoveryPoint: 5s`,
//! the canary writing) next to the very same servers run by hand (zkop
//! stopped, each server started again by the bench with the `zoo.cfg`, data
//! and certificates zkop's agent left), at each read/write mix, over
//! plaintext and over TLS. A closed loop: every session keeps a few
//! requests in flight, so both sides run at what they can serve.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use zookeeper_client::Client;

use tokio::process::Child;
use zkop_zk::Endpoint;

use super::backup_load::with_backup;
use super::by_hand::start_jvm;
use super::explain::median;
use super::operated::Session;
use super::{BenchError, BenchOptions, ensure_znode, io, pairs, round, wait_for};

/// Sessions of the load.
const SESSIONS: usize = 16;
/// Requests each session keeps in flight.
const IN_FLIGHT: usize = 4;
/// Znodes read and written.
const KEYS: usize = 64;
/// Bytes of each value written.
const VALUE: usize = 1024;
/// Load before each measured run, not measured (JIT, caches).
const WARM_UP: Duration = Duration::from_secs(5);

/// One side's figures at one mix.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadFigures {
    /// Requests answered a second.
    pub ops_per_second: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// 99.9th.
    pub p999_ms: f64,
}

/// One mix: zkop's ensemble next to the hand-run one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadRow {
    /// `plaintext`, or `tls` (the secure client port, a client certificate).
    pub transport: String,
    /// Reads in every hundred requests (the rest are writes of `VALUE` bytes).
    pub reads_percent: u32,
    /// How long the measured load ran, seconds.
    pub seconds: u64,
    /// Under zkop (with several runs, each figure's median).
    pub zkop: LoadFigures,
    /// The same servers by hand (likewise).
    pub by_hand: LoadFigures,
    /// zkop's throughput over the hand run's.
    pub throughput_ratio: f64,
    /// zkop's p99 over the hand run's.
    pub p99_ratio: f64,
    /// Each run's `[throughput ratio, p99 ratio]`, when several ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<[f64; 2]>,
}

/// Each side's figures at each mix, in one run.
type RunFigures = (Vec<LoadFigures>, Vec<LoadFigures>);

/// Runs each mix for `load` over each transport (`tls` false, true): on a
/// 3-voter cluster by zkop and on the same servers by hand, `runs` times,
/// the sides taking turns to go first (zkop, hand; hand, zkop; ...) so that
/// what drifts with time (data grown, the machine's other work) falls on
/// both.
pub async fn run(
    opts: &BenchOptions,
    spec_text: &str,
    mixes: &[u32],
    load: Duration,
    transports: &[bool],
    runs: u32,
) -> Result<Vec<LoadRow>, BenchError> {
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-load-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let mut rows = Vec::new();
    for &tls in transports {
        let transport = if tls { "tls" } else { "plaintext" };
        let dir = work.path().join(transport);
        let each = one_transport(opts, spec_text, mixes, load, tls, &dir, runs).await?;
        rows.extend(mixes.iter().enumerate().map(|(m, &reads_percent)| {
            let zkop = median_figures(each.iter().map(|r| &r.0[m]));
            let by_hand = median_figures(each.iter().map(|r| &r.1[m]));
            let ratios = |z: &LoadFigures, h: &LoadFigures| {
                [
                    round(z.ops_per_second / h.ops_per_second.max(f64::EPSILON)),
                    round(z.p99_ms / h.p99_ms.max(f64::EPSILON)),
                ]
            };
            let [throughput_ratio, p99_ratio] = ratios(&zkop, &by_hand);
            LoadRow {
                transport: transport.to_string(),
                reads_percent,
                seconds: load.as_secs(),
                runs: match each.len() {
                    1 => Vec::new(),
                    _ => each.iter().map(|r| ratios(&r.0[m], &r.1[m])).collect(),
                },
                throughput_ratio,
                p99_ratio,
                zkop,
                by_hand,
            }
        }));
    }
    Ok(rows)
}

/// Each figure's median over runs.
fn median_figures<'a>(runs: impl Iterator<Item = &'a LoadFigures> + Clone) -> LoadFigures {
    let of = |f: fn(&LoadFigures) -> f64| median(runs.clone().map(f).collect());
    LoadFigures {
        ops_per_second: of(|f| f.ops_per_second),
        p50_ms: of(|f| f.p50_ms),
        p99_ms: of(|f| f.p99_ms),
        p999_ms: of(|f| f.p999_ms),
    }
}

/// `runs` turns of every mix under zkop and every mix on the same servers
/// by hand: zkop first in the first turn (it makes the cluster), then each
/// side first in turn.
async fn one_transport(
    opts: &BenchOptions,
    spec_text: &str,
    mixes: &[u32],
    load: Duration,
    tls: bool,
    dir: &std::path::Path,
    runs: u32,
) -> Result<Vec<RunFigures>, BenchError> {
    let backup = off_the_log_disk()?;
    let mut text = with_backup(spec_text, backup.path())?;
    if tls {
        text = format!("{}\n  tls:\n    enabled: true\n", text.trim_end());
    }
    let spec = zkop_spec::parse_spec(&text)
        .map_err(|e| BenchError::Setup(format!("the bench spec is invalid: {e}")))?;
    let mut out = Vec::new();
    // The servers keep their addresses (and the client certificate its
    // CA) from one turn to the next.
    let mut endpoints: Vec<Endpoint> = Vec::new();
    let mut identity = None;
    for turn in 0..runs.max(1) {
        if runs > 1 {
            eprintln!("zkop bench --load: run {} of {runs}", turn + 1);
        }
        let (zkop, hand) = if turn % 2 == 0 {
            let zkop;
            (endpoints, zkop) =
                under_zkop(opts, &text, mixes, load, tls, dir, &mut identity).await?;
            (
                zkop,
                by_hand(opts, &spec, dir, &endpoints, mixes, load).await?,
            )
        } else {
            let hand = by_hand(opts, &spec, dir, &endpoints, mixes, load).await?;
            let (_, zkop) = under_zkop(opts, &text, mixes, load, tls, dir, &mut identity).await?;
            (zkop, hand)
        };
        out.push((zkop, hand));
    }
    Ok(out)
}

/// The cluster by zkop (started, or started again on its state), each mix
/// on it, then stopped; the endpoints the load used, and the figures. With
/// `tls`, the client certificate is issued on the first start and kept.
async fn under_zkop(
    opts: &BenchOptions,
    text: &str,
    mixes: &[u32],
    load: Duration,
    tls: bool,
    dir: &std::path::Path,
    identity: &mut Option<zkop_zk::endpoint::ClientTls>,
) -> Result<(Vec<Endpoint>, Vec<LoadFigures>), BenchError> {
    let (session, _) = Session::start(opts, text, 3, &dir.join("zkop")).await?;
    let zkop = async {
        let status = session
            .wait("the shipper and the canary at work", |s| {
                s.backup.as_ref().is_some_and(|b| !b.behind)
                    && s.canary.as_ref().is_some_and(|c| c.rounds >= 1)
            })
            .await?;
        if tls && identity.is_none() {
            *identity = Some(super::tls::client_identity(&session, dir).await?);
        }
        let endpoints: Vec<Endpoint> = status
            .connect_string
            .split(',')
            .map(|hp| Endpoint {
                host_port: hp.to_string(),
                tls: identity.clone(),
            })
            .collect();
        let figures = each_mix(&endpoints, mixes, load).await?;
        Ok::<_, BenchError>((endpoints, figures))
    }
    .await;
    session.stop().await;
    zkop
}

/// Each mix on the servers zkop left, started by hand, then stopped.
async fn by_hand(
    opts: &BenchOptions,
    spec: &zkop_spec::ValidatedCluster,
    dir: &std::path::Path,
    endpoints: &[Endpoint],
    mixes: &[u32],
    load: Duration,
) -> Result<Vec<LoadFigures>, BenchError> {
    let mut same = SameServers::start(opts, spec, &dir.join("zkop").join("state"))?;
    let figures = each_mix(endpoints, mixes, load).await;
    same.stop().await;
    figures
}

/// Where the shipper ships: in production an S3 bucket, so here not the
/// disk the transaction logs fsync to (the shipper fsyncs every object a
/// directory store keeps, and on a shared disk each fsync waits on the
/// other's): a directory in memory, `/dev/shm`, where there is one.
fn off_the_log_disk() -> Result<tempfile::TempDir, BenchError> {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new()
        .prefix("zkop-bench-backup-")
        .clone();
    match shm.is_dir() {
        true => builder.tempdir_in(shm),
        false => builder.tempdir(),
    }
    .map_err(io("creating the backup directory"))
}

/// The servers zkop ran, started again by the bench alone: each with the
/// `zoo.cfg` its agent wrote (and so its data and certificates), the
/// spec's heap and JVM flags; killed on drop.
struct SameServers {
    jvms: Vec<Child>,
}

impl SameServers {
    /// One JVM per instance directory under `state/instances`.
    fn start(
        opts: &BenchOptions,
        spec: &zkop_spec::ValidatedCluster,
        state: &std::path::Path,
    ) -> Result<SameServers, BenchError> {
        let instances = state.join("instances");
        let mut jvms = Vec::new();
        let entries = std::fs::read_dir(&instances)
            .map_err(io(format!("listing {}", instances.display())))?;
        for dir in entries.flatten().map(|e| e.path()) {
            let zoo_cfg = dir.join("conf").join("zoo.cfg");
            if !zoo_cfg.exists() {
                continue;
            }
            let log = dir.join("by-hand.out");
            jvms.push(start_jvm(opts, spec, &zoo_cfg, &dir, &log)?);
        }
        if jvms.len() != 3 {
            return Err(BenchError::Setup(format!(
                "{} servers configured under {}, not 3",
                jvms.len(),
                instances.display()
            )));
        }
        Ok(SameServers { jvms })
    }

    async fn stop(&mut self) {
        for mut jvm in self.jvms.drain(..) {
            let _ = jvm.kill().await;
        }
    }
}

/// Connects the sessions, makes the znodes, and runs each mix (after an
/// unmeasured warm-up at the same mix).
async fn each_mix(
    endpoints: &[Endpoint],
    mixes: &[u32],
    load: Duration,
) -> Result<Vec<LoadFigures>, BenchError> {
    let mut clients = Vec::new();
    // Spread evenly: session n on member n mod 3 (servers just started by
    // hand may take a moment to form their quorum).
    for e in endpoints.iter().cycle().take(SESSIONS) {
        let client = wait_for(&format!("a session on {e}"), || async {
            e.session(Duration::from_secs(10)).await.ok()
        })
        .await?;
        clients.push(client);
    }
    for path in std::iter::once("/bench-load".to_string()).chain((0..KEYS).map(key)) {
        ensure_znode(&clients[0], &path, &[0; VALUE]).await?;
    }
    let mut out = Vec::new();
    for &reads in mixes {
        one_mix(&clients, reads, WARM_UP).await;
        out.push(one_mix(&clients, reads, load).await);
    }
    Ok(out)
}

fn key(i: usize) -> String {
    format!("/bench-load/k{i:02}")
}

/// `load` of requests, `reads_percent` of them reads; the latencies of
/// those answered.
async fn one_mix(clients: &[Client], reads_percent: u32, load: Duration) -> LoadFigures {
    let value: Arc<[u8]> = vec![b'l'; VALUE].into();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for (n, c) in clients
        .iter()
        .flat_map(|c| std::iter::repeat_n(c, IN_FLIGHT))
        .enumerate()
    {
        let (c, value) = (c.clone(), value.clone());
        workers.spawn(async move {
            let mut rng = StdRng::seed_from_u64(n as u64);
            let mut micros: Vec<u32> = Vec::new();
            while started.elapsed() < load {
                let path = key(rng.random_range(0..KEYS));
                let sent = Instant::now();
                let answered = if rng.random_range(0..100) < reads_percent {
                    c.get_data(&path).await.is_ok()
                } else {
                    c.set_data(&path, &value, None).await.is_ok()
                };
                if answered {
                    micros.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
            }
            micros
        });
    }
    let mut all = Vec::new();
    while let Some(done) = workers.join_next().await {
        all.extend(done.unwrap_or_default());
    }
    let took = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| {
        let i = ((all.len() as f64 * q).ceil() as usize).saturating_sub(1);
        all.get(i)
            .map_or(f64::NAN, |m| round(f64::from(*m) / 1000.0))
    };
    LoadFigures {
        ops_per_second: round(all.len() as f64 / took),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
    }
}

/// The table.
pub fn render(rows: &[LoadRow]) -> String {
    let mut out = format!(
        "{:<10} {:<12} {:>12} {:>9} {:>9} {:>9} {:>12} {:>9} {:>9} {:>9} {:>8} {:>8}\n",
        "transport",
        "reads/writes",
        "zkop ops/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "hand ops/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "ops x",
        "p99 x"
    );
    for r in rows {
        let (z, h) = (&r.zkop, &r.by_hand);
        out.push_str(&format!(
            "{:<10} {:<12} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>8.3} {:>8.3}\n",
            r.transport,
            format!("{}/{}", r.reads_percent, 100 - r.reads_percent.min(100)),
            z.ops_per_second,
            z.p50_ms,
            z.p99_ms,
            z.p999_ms,
            h.ops_per_second,
            h.p50_ms,
            h.p99_ms,
            h.p999_ms,
            r.throughput_ratio,
            r.p99_ratio,
        ));
    }
    for r in rows.iter().filter(|r| !r.runs.is_empty()) {
        out.push_str(&format!(
            "  {} {}/{}, each run's ops x/p99 x: {} (medians above)\n",
            r.transport,
            r.reads_percent,
            100 - r.reads_percent.min(100),
            pairs(&r.runs)
        ));
    }
    out.push_str(&format!(
        "Three voters by zkop (agents, the shipper with recoveryPoint 5s, the canary every 10s), then the same servers started by hand with the zoo.cfg, data and certificates zkop left; TLS: the secure client port with a zkop client certificate; {SESSIONS} sessions with {IN_FLIGHT} requests each in flight on {KEYS} znodes, {VALUE}-byte writes, {} s a mix after a {} s warm-up; with --runs, the sides take turns to go first. Goal: ops x >= 0.97 and p99 x <= 1.03. See docs/performance.md.\n",
        rows.first().map_or(0, |r| r.seconds),
        WARM_UP.as_secs()
    ));
    out
}
