//! `zkop bench --canary`: what the consistency canary (`spec.canary`)
//! costs the ensemble, in one run on a three-voter cluster by zkop: the
//! requests ZooKeeper counts (`mntr`'s `zk_packets_received`, pings
//! included) over an idle window with the canary off and again on, and the
//! ensemble's capacity (reads and writes a second, several clients at
//! once) with it off and on. The canary's share must stay under 1 percent.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::operated::Session;
use super::{BenchError, BenchOptions, connect, ensure_znode, io, round};

/// The idle window the requests are counted over.
const WINDOW: Duration = Duration::from_secs(30);
/// How long the capacity load runs.
const LOAD: Duration = Duration::from_secs(5);
/// Clients of the capacity load.
const CLIENTS: usize = 8;

/// The canary's cost.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCost {
    /// `spec.canary.every`, seconds.
    pub every_s: u64,
    /// Requests a second the ensemble received, idle, canary off.
    pub idle_requests_per_second_off: f64,
    /// The same with the canary on.
    pub idle_requests_per_second_on: f64,
    /// The canary's: on less off.
    pub canary_requests_per_second: f64,
    /// Requests a second the ensemble served under load, canary off.
    pub capacity_off: f64,
    /// The same with the canary on.
    pub capacity_on: f64,
    /// The canary's requests over the capacity, percent.
    pub share_percent: f64,
    /// The canary's median write (compare-and-set), ms (bucket bound).
    pub write_p50_ms: f64,
}

/// The run: the example spec without its canary, then with it.
pub async fn run(opts: &BenchOptions, spec_text: &str) -> Result<CanaryCost, BenchError> {
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-canary-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let canary = "  canary:\n    every: 10s\n";
    if !spec_text.contains(canary) {
        return Err(BenchError::Setup(
            "the example spec runs no canary every 10s".into(),
        ));
    }
    let off = spec_text.replace(canary, "");
    let (session, _) = Session::start(opts, &off, 3, &work.path().join("zkop")).await?;
    let result = measure(&session, canary).await;
    session.stop().await;
    result
}

async fn measure(session: &Session, canary: &str) -> Result<CanaryCost, BenchError> {
    let status = zkop::cli::client::fetch(session.api()).await?;
    let endpoints: Vec<String> = status
        .members
        .iter()
        .map(|m| format!("{}:{}", m.address, m.client_port))
        .collect();
    // A first load warms the JVMs up, untimed: both sides then run warm.
    capacity(&status.connect_string).await?;
    let idle_off = idle_rate(&endpoints).await?;
    let capacity_off = capacity(&status.connect_string).await?;
    session.edit_spec(
        "    maxClientCnxns: \"100\"\n",
        &format!("    maxClientCnxns: \"100\"\n{canary}"),
    )?;
    let on = session
        .wait("two canary rounds", |s| {
            s.canary.as_ref().is_some_and(|c| c.rounds >= 2)
        })
        .await?;
    let every_s = on.canary.as_ref().map_or(0, |c| c.every_s);
    let idle_on = idle_rate(&endpoints).await?;
    let capacity_on = capacity(&status.connect_string).await?;
    let last = zkop::cli::client::fetch(session.api()).await?;
    let write_p50_ms = last
        .canary
        .as_ref()
        .map_or(0.0, |c| median_ms(&c.write_seconds));
    let canary_rps = (idle_on - idle_off).max(0.0);
    Ok(CanaryCost {
        every_s,
        idle_requests_per_second_off: round(idle_off),
        idle_requests_per_second_on: round(idle_on),
        canary_requests_per_second: round(canary_rps),
        capacity_off: round(capacity_off),
        capacity_on: round(capacity_on),
        share_percent: round(100.0 * canary_rps / capacity_off.max(f64::EPSILON)),
        write_p50_ms,
    })
}

/// The smallest bucket bound holding half the observations, in ms.
fn median_ms(h: &zkop_spec::canary::Histogram) -> f64 {
    let half = h.count.div_ceil(2);
    zkop_spec::canary::WRITE_BUCKETS
        .iter()
        .zip(&h.buckets)
        .find(|(_, n)| **n >= half)
        .map_or(f64::NAN, |(b, _)| b * 1000.0)
}

/// Requests a second the servers received over `WINDOW`, nobody else
/// connected (`zk_packets_received` summed over the members).
async fn idle_rate(endpoints: &[String]) -> Result<f64, BenchError> {
    let before = packets(endpoints).await?;
    let started = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let after = packets(endpoints).await?;
    Ok(after.saturating_sub(before) as f64 / started.elapsed().as_secs_f64())
}

async fn packets(endpoints: &[String]) -> Result<u64, BenchError> {
    let mut total = 0;
    for e in endpoints {
        let mntr = zkop_zk::probe::four_letter_word(e, "mntr")
            .await
            .map_err(|err| BenchError::ZooKeeper(format!("mntr on {e}: {err}")))?;
        total += mntr
            .lines()
            .find_map(|l| l.strip_prefix("zk_packets_received\t"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| BenchError::ZooKeeper(format!("{e}: no zk_packets_received in mntr")))?;
    }
    Ok(total)
}

/// Requests a second `CLIENTS` sessions get answered for `LOAD`, each
/// alternating a write and a read of its own znode.
async fn capacity(hosts: &str) -> Result<f64, BenchError> {
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let c = connect(hosts, Duration::from_secs(10)).await?;
        let path = format!("/bench-canary-{i}");
        ensure_znode(&c, &path, b"").await?;
        clients.push((c, path));
    }
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for (c, path) in clients {
        load.spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < LOAD {
                if c.set_data(&path, b"x", None).await.is_ok() {
                    n += 1;
                }
                if c.get_data(&path).await.is_ok() {
                    n += 1;
                }
            }
            n
        });
    }
    let mut done = 0;
    while let Some(n) = load.join_next().await {
        done += n.unwrap_or(0);
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// The table.
pub fn render(c: &CanaryCost) -> String {
    format!(
        "{:<40} {:>12} {:>12}\n{:<40} {:>12.1} {:>12.1}\n{:<40} {:>12.0} {:>12.0}\n\
the canary (every {}s): {:.2} requests a second, {:.3} % of the ensemble's capacity (want < 1 %); its median write {} ms.\n\
Three voters by zkop; requests counted by ZooKeeper (mntr zk_packets_received, pings included) over {}s with no other client; capacity: {CLIENTS} clients each alternating a setData and a getData for {}s. See docs/performance.md.\n",
        "",
        "canary off",
        "canary on",
        "idle requests a second",
        c.idle_requests_per_second_off,
        c.idle_requests_per_second_on,
        "capacity (requests a second)",
        c.capacity_off,
        c.capacity_on,
        c.every_s,
        c.canary_requests_per_second,
        c.share_percent,
        c.write_p50_ms,
        WINDOW.as_secs(),
        LOAD.as_secs()
    )
}
