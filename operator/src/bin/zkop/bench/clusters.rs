//! `zkop bench --clusters N`: the controller's memory and CPU with N
//! clusters under one `zkop local up DIR`, each a one-voter ensemble on its
//! own /29 of `--network`, measured once every cluster serves and while
//! they idle.

use std::time::Duration;

use serde::Serialize;
use zkop::cli::client::{fetch, read_api_file};

use super::operated::{LocalUp, rss_mib};
use super::{BenchError, BenchOptions, io, wait_for};

/// How long the idle CPU is counted over.
const WINDOW: Duration = Duration::from_secs(30);

/// The controller's footprint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Footprint {
    /// Clusters under the one controller.
    pub clusters: usize,
    /// Seconds from the start until every cluster's voter served.
    pub up_seconds: f64,
    /// The controller process's resident memory, MiB.
    pub controller_rss_mib: f64,
    /// Its CPU while every cluster idles, percent of one core.
    pub controller_cpu_percent: f64,
}

/// The CPU time `pid` has used (user and system).
pub(super) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf(3) reads a constant.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    Some(Duration::from_millis(ticks * 1000 / per_second.max(1)))
}

/// Runs `clusters` one-voter clusters from one directory and measures.
pub async fn run(
    opts: &BenchOptions,
    spec_text: &str,
    clusters: usize,
) -> Result<Footprint, BenchError> {
    let (base, prefix) =
        zkop_spec::network::parse_cidr(&opts.zkop_network).map_err(BenchError::Setup)?;
    if prefix > 24 || clusters > 32 {
        return Err(BenchError::Setup(format!(
            "--clusters {clusters} on --network {}: at most 32 clusters, on a /24 or wider (one /29 each)",
            opts.zkop_network
        )));
    }
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-clusters-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let specs = work.path().join("specs");
    std::fs::create_dir_all(&specs).map_err(io("creating the specs directory"))?;
    let names: Vec<String> = (0..clusters).map(|i| format!("bench-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let network = std::net::Ipv4Addr::from(u32::from(base) + 8 * i as u32);
        let text = spec_text
            .replace("name: bench", &format!("name: {name}"))
            .replace("replicas: 3", "replicas: 1")
            .replace("min: 3", "min: 1")
            .replace(
                "fleet:\n    local: {}",
                &format!("fleet:\n    local:\n      network: {network}/29"),
            );
        let path = specs.join(format!("{name}.yaml"));
        std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
    }
    let state = work.path().join("state");
    let started = std::time::Instant::now();
    let up = LocalUp::start(opts, &specs, &state)?;
    let mut apis = Vec::with_capacity(names.len());
    for name in &names {
        let dir = state.join(name);
        let api = wait_for(&format!("{name}'s api.json"), || async {
            read_api_file(&dir).ok()
        })
        .await?;
        wait_for(&format!("{name}'s voter serving"), || async {
            fetch(&api)
                .await
                .ok()
                .filter(|s| s.phase == "Running" && s.members.iter().any(|m| m.healthy))
        })
        .await?;
        apis.push(api);
    }
    let up_seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    // Idle means settled: every cluster's canary (when its spec has one)
    // through a good round, so its sessions are made and its znodes there.
    for (name, api) in names.iter().zip(&apis) {
        wait_for(&format!("{name}'s first good canary round"), || async {
            fetch(api).await.ok().filter(|s| {
                s.canary
                    .as_ref()
                    .is_none_or(|k| k.last_good_round_ms.is_some())
            })
        })
        .await?;
    }
    let pid = up
        .child
        .id()
        .ok_or_else(|| BenchError::Setup("zkop local up exited".into()))?;
    let before = cpu_time(pid);
    tokio::time::sleep(WINDOW).await;
    let after = cpu_time(pid);
    let rss = rss_mib(pid);
    up.stop().await;
    let (Some(before), Some(after), Some(rss)) = (before, after, rss) else {
        return Err(BenchError::Setup(format!("cannot read /proc/{pid}")));
    };
    let cpu = (after - before).as_secs_f64() / WINDOW.as_secs_f64() * 100.0;
    Ok(Footprint {
        clusters,
        up_seconds,
        controller_rss_mib: rss,
        controller_cpu_percent: (cpu * 10.0).round() / 10.0,
    })
}

/// The row as a table.
pub fn render(f: &Footprint) -> String {
    format!(
        "{:<9} {:>10} {:>9} {:>9}\n{:<9} {:>10.1} {:>9.1} {:>9.1}\none `zkop local up DIR`, each cluster one voter on its own /29; memory once all serve, CPU over {}s of idling. See docs/performance.md.\n",
        "clusters",
        "up s",
        "RSS MiB",
        "CPU %",
        f.clusters,
        f.up_seconds,
        f.controller_rss_mib,
        f.controller_cpu_percent,
        WINDOW.as_secs()
    )
}
