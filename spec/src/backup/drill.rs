//! A restore drill's record, as kept in the backup (`drills/<ms>.json`) and
//! reported by the agent that ran it.

use serde::{Deserialize, Serialize};

use crate::zk::Zxid;

/// The outcome of one drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillRecord {
    /// When it ran (ms since the Unix epoch).
    pub at_ms: u64,
    /// Whether the backup proved restorable.
    pub ok: bool,
    /// The point restored, when one was.
    pub point: Option<String>,
    /// The zxid it restored to.
    pub zxid: Option<Zxid>,
    /// The tree digest checked at that zxid, when one was recorded.
    #[serde(default)]
    pub digest: Option<String>,
    /// What was checked, or what failed (naming the object).
    pub detail: String,
}

/// Where a drill run at `at_ms` is recorded.
pub fn drill_key(at_ms: u64) -> String {
    format!("drills/{at_ms:013}.json")
}
