//! `zkop bench`: how long zkop's automatic operations take, each next to the
//! same operation done by hand on plain ZooKeeper servers in the same run.
//!
//! Operations, for 3 and 5 voters: bootstrap to the first leader, adding a
//! member, removing a follower and the leader (each replaced: a new member
//! takes its vote), a rolling restart, and quorum-loss recovery (detection
//! apart, then from the lost voters fenced to every voter serving again).

pub mod backup_load;
mod by_hand;
pub mod canary;
pub mod clusters;
pub mod explain;
pub mod load;
mod operated;
pub mod standby;
pub mod tls;
pub mod upgrade;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use zkop_spec::ValidatedCluster;

use zkop::cli::client::StatusError;

/// The spec both sides use: the local example, under its own name.
const SPEC: &str = include_str!("../../../../../examples/local-3.yaml");

/// How long any one wait of the bench may take before it gives up.
const WAIT_LIMIT: Duration = Duration::from_secs(180);

/// Options of `zkop bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Loopback range for the zkop-run cluster's agents.
    pub zkop_network: String,
    /// Loopback range for the plain servers run by hand.
    pub hand_network: String,
    /// The `zkop-agent` binary, if not beside `zkop`.
    pub agent_bin: Option<PathBuf>,
    /// The `java` binary.
    pub java: PathBuf,
    /// ZooKeeper's classpath.
    pub classpath: String,
    /// Only 3 voters, and only bootstrap, adding a member and removing a
    /// follower (for the test suite).
    pub quick: bool,
}

/// One measured operation, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figure {
    /// What was done.
    pub operation: String,
    /// Voters in the ensemble.
    pub voters: usize,
    /// Seconds zkop took.
    pub zkop_seconds: f64,
    /// Seconds the same operation took by hand.
    pub hand_seconds: f64,
    /// zkop over hand; above 1, zkop is slower.
    pub ratio: f64,
    /// Further figures of the zkop run that have no hand-run counterpart.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, f64>,
    /// The controller's steps during the zkop run, from the user's action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<explain::StepTime>,
    /// Each run's `[zkop, hand]` seconds, when several ran (`--runs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<[f64; 2]>,
}

/// Why the bench could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("timed out after {limit:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        limit: Duration,
    },
    /// The zkop-run cluster's controller could not be asked.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// A ZooKeeper operation of the hand run failed.
    #[error("{0}")]
    ZooKeeper(String),
    /// A run failed; its work directory is kept.
    #[error("{error} (logs and configs kept in {})", work_dir.display())]
    Failed {
        /// What failed.
        error: Box<BenchError>,
        /// The kept directory.
        work_dir: PathBuf,
    },
    /// The bench's own spec or flags are wrong.
    #[error("{0}")]
    Setup(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Polls `f` every 100 ms until it answers, for at most `WAIT_LIMIT`.
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> Result<T, BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                what: what.to_string(),
                limit: WAIT_LIMIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bench's spec text and its validated form.
pub fn spec() -> Result<(String, ValidatedCluster), BenchError> {
    let text = SPEC.replace("name: local-3", "name: bench");
    let spec = zkop_spec::parse_spec(&text)
        .map_err(|e| BenchError::Setup(format!("the bench spec is invalid: {e}")))?;
    Ok((text, spec))
}

/// Runs every operation and returns its figures.
pub async fn run(opts: &BenchOptions) -> Result<Vec<Figure>, BenchError> {
    let (text, spec) = spec()?;
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let sizes: &[usize] = if opts.quick { &[3] } else { &[3, 5] };
    let mut figures = Vec::new();
    for &n in sizes {
        let root = work.path().join(format!("{n}-voters"));
        match run_size(opts, &text, &spec, n, &root).await {
            Ok(f) => figures.extend(f),
            Err(e) => {
                // Keep the servers' logs and configs for a look.
                let kept = work.keep();
                return Err(BenchError::Failed {
                    error: Box::new(e),
                    work_dir: kept,
                });
            }
        }
    }
    Ok(figures)
}

/// The operations on `n` voters: by hand on plain servers first, then zkop.
async fn run_size(
    opts: &BenchOptions,
    text: &str,
    spec: &ValidatedCluster,
    n: usize,
    root: &std::path::Path,
) -> Result<Vec<Figure>, BenchError> {
    let ops = [
        "bootstrap to first leader".to_string(),
        "add a member (joins as an observer)".to_string(),
        "remove a follower (a new member takes its vote)".to_string(),
        "remove the leader (a new member takes its vote)".to_string(),
        "rolling restart of every member".to_string(),
        format!("quorum-loss recovery ({} of {n} voters lost)", n / 2 + 1),
    ];
    let count = if opts.quick { 3 } else { ops.len() };

    let mut hand = by_hand::HandEnsemble::new(opts, spec, &root.join("hand"));
    let mut hand_times = Vec::new();
    let result = async {
        hand_times.push(hand.bootstrap(n).await?);
        hand_times.push(hand.add_observer().await?);
        hand_times.push(hand.replace_voter(false).await?);
        if !opts.quick {
            hand_times.push(hand.replace_voter(true).await?);
            hand_times.push(hand.rolling_restart().await?);
            hand.remove_observers().await?;
            hand_times.push(hand.quorum_loss_recovery().await?);
        }
        Ok::<_, BenchError>(())
    }
    .await;
    hand.stop().await?;
    result?;

    let zkop_times = run_zkop(opts, text, spec, n, root).await?;
    Ok(ops
        .into_iter()
        .take(count)
        .zip(hand_times)
        .zip(zkop_times)
        .map(|((operation, hand), (zkop, details, steps))| Figure {
            operation,
            voters: n,
            zkop_seconds: round(zkop.as_secs_f64()),
            hand_seconds: round(hand.as_secs_f64()),
            ratio: round(zkop.as_secs_f64() / hand.as_secs_f64().max(f64::EPSILON)),
            details,
            steps,
            runs: Vec::new(),
        })
        .collect())
}

/// One zkop-run operation: its time, its details, the controller's steps.
type Timed = (Duration, BTreeMap<String, f64>, Vec<explain::StepTime>);

/// The same operations on `n` voters run by zkop.
async fn run_zkop(
    opts: &BenchOptions,
    text: &str,
    spec: &ValidatedCluster,
    n: usize,
    root: &std::path::Path,
) -> Result<Vec<Timed>, BenchError> {
    let wall = || zkop::clock::Clock::wall_ms(&zkop::clock::SystemClock);
    let from = wall();
    let (session, bootstrap) = operated::Session::start(opts, text, n, &root.join("zkop")).await?;
    let mut zkop_times: Vec<Timed> = Vec::new();
    let rss = |s: &operated::Session| {
        let mut d = BTreeMap::new();
        if let Some(mib) = s.controller_rss_mib() {
            d.insert("controllerRssMiB".to_string(), (mib * 10.0).round() / 10.0);
        }
        d
    };
    let steps = session.steps_between(from, from + millis(bootstrap)).await;
    zkop_times.push((bootstrap, rss(&session), steps));
    let result = async {
        let mut ops: Vec<operated::Op> =
            vec![operated::Op::AddMember, operated::Op::Replace(false)];
        if !opts.quick {
            ops.extend([operated::Op::Replace(true), operated::Op::Roll]);
        }
        for op in ops {
            let from = wall();
            let took = session.run(op).await?;
            let steps = session.steps_between(from, wall()).await;
            zkop_times.push((took, rss(&session), steps));
        }
        if !opts.quick {
            session.remove_observer().await?;
            let from = wall();
            let m = session.quorum_loss().await?;
            let mut details = rss(&session);
            details.insert("detectionSeconds".to_string(), m.detection.as_secs_f64());
            details.insert(
                "detectAfterSeconds".to_string(),
                spec.healing.detect_after.as_secs_f64(),
            );
            let steps = session.steps_between(from, wall()).await;
            zkop_times.push((m.recovery, details, steps));
        }
        Ok::<_, BenchError>(())
    }
    .await;
    session.stop().await;
    result.map(|()| zkop_times)
}

/// A session on `hosts` with the given session timeout.
async fn connect(
    hosts: &str,
    session_timeout: Duration,
) -> Result<zookeeper_client::Client, BenchError> {
    zookeeper_client::Client::connector()
        .with_session_timeout(session_timeout)
        .connect(hosts)
        .await
        .map_err(|e| BenchError::ZooKeeper(format!("connect to {hosts}: {e}")))
}

/// Creates `path` holding `data`, open to anyone, unless it exists.
async fn ensure_znode(
    client: &zookeeper_client::Client,
    path: &str,
    data: &[u8],
) -> Result<(), BenchError> {
    let mode =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    match client.create(path, data, &mode).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
        Err(e) => Err(BenchError::ZooKeeper(format!("create {path}: {e}"))),
    }
}

/// Each run's pair of figures, `a/b, a/b, ...`.
fn pairs(runs: &[[f64; 2]]) -> String {
    let each: Vec<String> = runs.iter().map(|[a, b]| format!("{a:.2}/{b:.2}")).collect();
    each.join(", ")
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The figures as a table, with what each one measures; with `explain`,
/// each zkop run's steps under its row.
pub fn render(figures: &[Figure], explain: bool) -> String {
    let mut out = format!(
        "{:<52} {:>6} {:>8} {:>8} {:>6} {:>8}\n",
        "operation", "voters", "zkop s", "hand s", "ratio", "RSS MiB"
    );
    for f in figures {
        let rss = f
            .details
            .get("controllerRssMiB")
            .map(|r| format!("{r:.1}"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<52} {:>6} {:>8.2} {:>8.2} {:>6.2} {:>8}\n",
            f.operation, f.voters, f.zkop_seconds, f.hand_seconds, f.ratio, rss
        ));
        if let Some(d) = f.details.get("detectionSeconds") {
            let after = f.details.get("detectAfterSeconds").copied().unwrap_or(0.0);
            out.push_str(&format!(
                "  detection: {d:.2} s from the kill to phase QuorumLost (healing.detectAfter {after:.0} s); in neither time\n"
            ));
        }
        if f.runs.len() > 1 {
            out.push_str(&format!(
                "  {} runs, zkop/hand s: {} (medians above)\n",
                f.runs.len(),
                pairs(&f.runs)
            ));
        }
        if explain {
            out.push_str(&explain::render_steps(f));
        }
    }
    out.push_str(
        "zkop: from the user's action (start, spec edit, zkop replace, zkop roll; for a quorum loss, the lost voters fenced) to the cluster settled, read from its status; by hand: the same ZooKeeper steps scripted on plain servers (config files, starts and stops, reconfig as the super user), with no waiting for a person. RSS: the zkop local up process (controller and local fleet) after the operation. See docs/performance.md.\n",
    );
    out
}

/// One operation's AWS API call rate, as `--aws-calls --json` prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRate {
    /// The AWS service (`all` for the total).
    pub service: String,
    /// The API operation (`all` for the total).
    pub operation: String,
    /// Calls per minute over the window.
    pub calls_per_minute: f64,
}

/// `zkop_aws_calls_total` from Prometheus text, by (service, operation).
fn parse_calls(text: &str) -> BTreeMap<(String, String), f64> {
    let label = |line: &str, key: &str| -> Option<String> {
        let start = line.find(&format!("{key}=\""))? + key.len() + 2;
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_string())
    };
    text.lines()
        .filter(|l| l.starts_with("zkop_aws_calls_total{"))
        .filter_map(|l| {
            let value = l.rsplit(' ').next()?.parse().ok()?;
            Some(((label(l, "service")?, label(l, "operation")?), value))
        })
        .collect()
}

/// Every cluster's call counters, summed, by (service, operation).
async fn sum_calls(
    apis: &[zkop::cli::client::ApiFile],
) -> Result<BTreeMap<(String, String), f64>, BenchError> {
    let mut sum = BTreeMap::new();
    for api in apis {
        for (k, n) in parse_calls(&zkop::cli::client::metrics(api).await?) {
            *sum.entry(k).or_insert(0.0) += n;
        }
    }
    Ok(sum)
}

/// Reads the call counters of every cluster in `apis` twice, `window`
/// apart: the rate of each operation over all of them, the total (`all`),
/// and with several clusters the total per cluster (`per cluster`), which
/// shares a controller group's one lease among its clusters.
pub async fn aws_call_rates(
    apis: &[zkop::cli::client::ApiFile],
    window: Duration,
) -> Result<Vec<CallRate>, BenchError> {
    let before = sum_calls(apis).await?;
    tokio::time::sleep(window).await;
    let after = sum_calls(apis).await?;
    let per_minute = 60.0 / window.as_secs_f64();
    let mut rates: Vec<CallRate> = after
        .iter()
        .map(|(k, n)| CallRate {
            service: k.0.clone(),
            operation: k.1.clone(),
            calls_per_minute: round((n - before.get(k).copied().unwrap_or(0.0)) * per_minute),
        })
        .filter(|r| r.calls_per_minute > 0.0)
        .collect();
    let total: f64 = rates.iter().map(|r| r.calls_per_minute).sum();
    rates.push(CallRate {
        service: "all".into(),
        operation: "all".into(),
        calls_per_minute: round(total),
    });
    if apis.len() > 1 {
        rates.push(CallRate {
            service: "per cluster".into(),
            operation: format!("all, {} clusters", apis.len()),
            calls_per_minute: round(total / apis.len() as f64),
        });
    }
    Ok(rates)
}

/// The call rates as a table.
pub fn render_rates(rates: &[CallRate], window: Duration) -> String {
    let mut out = format!(
        "AWS API calls per minute over {} s\n{:<20} {:<36} {:>10}\n",
        window.as_secs(),
        "service",
        "operation",
        "calls/min"
    );
    for r in rates {
        out.push_str(&format!(
            "{:<20} {:<36} {:>10.1}\n",
            r.service, r.operation, r.calls_per_minute
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn call_counters_are_read_from_prometheus_text() {
        let text = "# HELP x\nzkop_aws_calls_total{cluster=\"c\",service=\"Auto Scaling\",operation=\"DescribeAutoScalingGroups\"} 42\nzkop_passes 3\n";
        let calls = super::parse_calls(text);
        assert_eq!(
            calls.get(&(
                "Auto Scaling".to_string(),
                "DescribeAutoScalingGroups".to_string()
            )),
            Some(&42.0)
        );
        assert_eq!(calls.len(), 1);
    }
}
