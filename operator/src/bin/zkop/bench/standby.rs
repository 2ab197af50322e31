//! `zkop bench --standby`: how long voter redundancy takes to come back after
//! a voter's ZooKeeper hangs (SIGSTOP: its agent and instance live, as in a
//! stuck JVM), with one standby voter and without, in one run.
//!
//! A hang, not a crash: a SIGKILLed server is restarted by its own agent in
//! seconds with or without a standby; a hung one is where the standby's
//! `healing.voterDownAfter` beats `memberDeadAfter` and a replacement.

use serde::Serialize;

use super::operated::Session;
use super::{BenchError, BenchOptions, io};

/// One configuration's figure.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// `voters.standby`.
    pub standby: usize,
    /// Seconds from the hang to three voters serving again without it.
    pub seconds: f64,
}

/// Runs both configurations on three voters.
pub async fn run(opts: &BenchOptions, spec_text: &str) -> Result<Vec<Restored>, BenchError> {
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-standby-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let mut out = Vec::new();
    for standby in [1, 0] {
        let text = spec_text.replace(
            "    max: 5\n",
            &format!("    max: 5\n    standby: {standby}\n"),
        );
        let dir = work.path().join(format!("standby-{standby}"));
        let (session, _) = Session::start_with(opts, &text, 3, standby, &dir).await?;
        let took = session.voter_hangs(standby).await;
        session.stop().await;
        out.push(Restored {
            standby,
            seconds: (took?.as_secs_f64() * 10.0).round() / 10.0,
        });
    }
    Ok(out)
}

/// The rows as a table.
pub fn render(rows: &[Restored]) -> String {
    let mut out = format!("{:<10} {:>10}\n", "standby", "restored s");
    for r in rows {
        out.push_str(&format!("{:<10} {:>10.1}\n", r.standby, r.seconds));
    }
    out.push_str("a follower's ZooKeeper SIGSTOPped in a 3-voter cluster run by zkop (healing.voterDownAfter 10s, memberDeadAfter 60s): seconds until three voters serve again without it. See docs/performance.md.\n");
    out
}
