//! `zkop bench`: how long zkop's automatic operations take, each next to the
//! same operation done by hand on plain ZooKeeper servers in the same run.
//!
//! Operations: losing two of three voters at once (detection, then recovery
//! from the moment the lost voters are fenced to three voters serving again).

mod by_hand;
mod operated;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use zkop_spec::ValidatedCluster;

use crate::status::StatusError;

/// The spec both sides use: the local example, under its own name.
const SPEC: &str = include_str!("../../../examples/local-3.yaml");

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
fn spec() -> Result<(String, ValidatedCluster), BenchError> {
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
    let runs = async {
        let hand = by_hand::quorum_loss_recovery(opts, &spec, &work.path().join("hand")).await?;
        let zkop = operated::quorum_loss_recovery(opts, &text, &work.path().join("zkop")).await?;
        Ok::<_, BenchError>((hand, zkop))
    };
    let (hand, zkop) = match runs.await {
        Ok(r) => r,
        Err(e) => {
            // Keep the servers' logs and configs for a look.
            let kept = work.keep();
            return Err(BenchError::Failed {
                error: Box::new(e),
                work_dir: kept,
            });
        }
    };
    let mut details = BTreeMap::new();
    details.insert("detectionSeconds".to_string(), zkop.detection.as_secs_f64());
    details.insert(
        "detectAfterSeconds".to_string(),
        spec.healing.detect_after.as_secs_f64(),
    );
    Ok(vec![Figure {
        operation: "quorum-loss recovery (2 of 3 voters lost)".into(),
        voters: 3,
        zkop_seconds: zkop.recovery.as_secs_f64(),
        hand_seconds: hand.as_secs_f64(),
        ratio: zkop.recovery.as_secs_f64() / hand.as_secs_f64().max(f64::EPSILON),
        details,
    }])
}

/// The figures as a table, with what each one measures.
pub fn render(figures: &[Figure]) -> String {
    let mut out = format!(
        "{:<44} {:>6} {:>9} {:>9} {:>6}\n",
        "operation", "voters", "zkop s", "hand s", "ratio"
    );
    for f in figures {
        out.push_str(&format!(
            "{:<44} {:>6} {:>9.2} {:>9.2} {:>6.2}\n",
            f.operation, f.voters, f.zkop_seconds, f.hand_seconds, f.ratio
        ));
        if let Some(d) = f.details.get("detectionSeconds") {
            let after = f.details.get("detectAfterSeconds").copied().unwrap_or(0.0);
            out.push_str(&format!(
                "  detection: {d:.2} s from the kill to phase QuorumLost (healing.detectAfter {after:.0} s); not part of either recovery time\n"
            ));
        }
    }
    out.push_str(
        "recovery: from the lost voters fenced to three voters serving; by hand: stop the survivor, rewrite its dynamic config to itself at version+1, restart it, start two fresh servers as observers, reconfig them in, as a script does it (a person at a prompt takes longer)\n",
    );
    out
}
