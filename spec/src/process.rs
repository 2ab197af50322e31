//! The ZooKeeper JVM as an agent reports it.

use serde::{Deserialize, Serialize};

/// The ZooKeeper JVM as its agent supervises it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessReport {
    /// Whether the JVM is running.
    pub running: bool,
    /// Its PID when running.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Starts since the agent started (1 after the first start).
    pub starts: u32,
    /// How the last run ended, if one did.
    #[serde(default)]
    pub last_exit: Option<String>,
    /// Whether this JVM (this PID) has answered a probe since it started.
    /// Running without having answered is starting (loading its database);
    /// running after having answered and silent since is hung or paused.
    #[serde(default)]
    pub answered: bool,
    /// Why ZooKeeper refused this node's data directory when it last
    /// exited (its transaction log has a hole: ZooKeeper 3.9 checks the
    /// committed log it loads), until a run outlasts the crash backoff.
    /// The data cannot be trusted; the quorum's can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_refused: Option<String>,
}
