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
use super::operated::Session;
use super::{BenchError, BenchOptions, ensure_znode, io, round, wait_for};

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
    /// Under zkop.
    pub zkop: LoadFigures,
    /// The same servers by hand.
    pub by_hand: LoadFigures,
    /// zkop's throughput over the hand run's.
    pub throughput_ratio: f64,
    /// zkop's p99 over the hand run's.
    pub p99_ratio: f64,
}

/// Runs each mix for `load` over each transport (`tls` false, true): on a
/// 3-voter cluster by zkop, then on the same servers by hand.
pub async fn run(
    opts: &BenchOptions,
    spec_text: &str,
    mixes: &[u32],
    load: Duration,
    transports: &[bool],
) -> Result<Vec<LoadRow>, BenchError> {
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-load-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let mut rows = Vec::new();
    for &tls in transports {
        let transport = if tls { "tls" } else { "plaintext" };
        let dir = work.path().join(transport);
        let (zkop, by_hand) = one_transport(opts, spec_text, mixes, load, tls, &dir).await?;
        rows.extend(mixes.iter().zip(zkop.into_iter().zip(by_hand)).map(
            |(&reads_percent, (zkop, by_hand))| LoadRow {
                transport: transport.to_string(),
                reads_percent,
                seconds: load.as_secs(),
                throughput_ratio: round(
                    zkop.ops_per_second / by_hand.ops_per_second.max(f64::EPSILON),
                ),
                p99_ratio: round(zkop.p99_ms / by_hand.p99_ms.max(f64::EPSILON)),
                zkop,
                by_hand,
            },
        ));
    }
    Ok(rows)
}

/// Every mix under zkop, then every mix on the same servers by hand.
async fn one_transport(
    opts: &BenchOptions,
    spec_text: &str,
    mixes: &[u32],
    load: Duration,
    tls: bool,
    dir: &std::path::Path,
) -> Result<(Vec<LoadFigures>, Vec<LoadFigures>), BenchError> {
    let mut text = with_backup(spec_text, &dir.join("backup"))?;
    if tls {
        text = format!("{}\n  tls:\n    enabled: true\n", text.trim_end());
    }
    let (session, _) = Session::start(opts, &text, 3, &dir.join("zkop")).await?;
    let zkop = async {
        let status = session
            .wait("the shipper and the canary at work", |s| {
                s.backup.as_ref().is_some_and(|b| !b.behind)
                    && s.canary.as_ref().is_some_and(|c| c.rounds >= 1)
            })
            .await?;
        let identity = match tls {
            true => Some(super::tls::client_identity(&session, dir).await?),
            false => None,
        };
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
    let (endpoints, zkop) = zkop?;
    let spec = zkop_spec::parse_spec(&text)
        .map_err(|e| BenchError::Setup(format!("the bench spec is invalid: {e}")))?;
    let mut same = SameServers::start(opts, &spec, &dir.join("zkop").join("state"))?;
    let by_hand = each_mix(&endpoints, mixes, load).await;
    same.stop().await;
    Ok((zkop, by_hand?))
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
    out.push_str(&format!(
        "Three voters by zkop (agents, the shipper with recoveryPoint 5s, the canary every 10s), then the same servers started by hand with the zoo.cfg, data and certificates zkop left; TLS: the secure client port with a zkop client certificate; {SESSIONS} sessions with {IN_FLIGHT} requests each in flight on {KEYS} znodes, {VALUE}-byte writes, {} s a mix after a {} s warm-up. Goal: ops x >= 0.97 and p99 x <= 1.03. See docs/performance.md.\n",
        rows.first().map_or(0, |r| r.seconds),
        WARM_UP.as_secs()
    ));
    out
}
