//! Recorded histories of client operations and their checks, as etcd's
//! robustness tests do it: sessions read, write and compare-and-set a few
//! znodes while faults run; every operation is kept with its call and return
//! times on one monotonic clock, an unknown outcome (a connection lost after
//! the request went out) kept as such. The writes are then checked for
//! linearizability with Porcupine (one register per znode), and each session
//! for what ZooKeeper promises a session: it never reads older state than it
//! has seen or written.

mod clients;
mod porcupine;
mod sessions;

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use clients::{KEYS, create_keys, run_sessions};
pub use porcupine::{Linearizability, check_linearizable};
pub use sessions::{SessionViolation, check_sessions};

/// What an operation asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `getData`.
    Read,
    /// `setData` with version -1.
    Write,
    /// `setData` with the version the session last saw (compare-and-set).
    Cas,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Done: `read`, `version` and `mzxid` say what it saw or made.
    Ok,
    /// A compare-and-set refused: the version was not the expected one.
    BadVersion,
    /// The znode was not there (they are created before the history starts).
    NoNode,
    /// No answer: it may or may not have taken effect.
    Unknown,
}

/// One operation of a history: one line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The ZooKeeper session that sent it.
    pub session: i64,
    /// The znode.
    pub key: String,
    /// What it asked.
    pub op: Kind,
    /// The value written (writes and compare-and-sets).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The version a compare-and-set expected.
    #[serde(default)]
    pub expected: i64,
    /// Called, in nanoseconds since the history began.
    pub call: i64,
    /// Returned (or given up on), on the same clock.
    #[serde(rename = "return")]
    pub returned: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// The value read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub read: String,
    /// The znode's version after it (`Ok` only).
    #[serde(default)]
    pub version: i64,
    /// The zxid that last modified the znode, as its stat said (`Ok` only).
    #[serde(default)]
    pub mzxid: i64,
}

/// A history being recorded by many sessions at once.
#[derive(Debug)]
pub struct History {
    origin: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history whose clock starts now.
    pub fn new() -> Self {
        History {
            origin: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the history began (monotonic).
    pub fn now(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    /// Records one finished (or abandoned) operation.
    pub fn push(&self, op: Op) {
        if let Ok(mut ops) = self.ops.lock() {
            ops.push(op);
        }
    }

    /// The operations recorded so far, in call order.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self.ops.lock().map(|o| o.clone()).unwrap_or_default();
        ops.sort_by_key(|o| (o.call, o.session));
        ops
    }
}

/// Writes a history as JSON lines.
pub fn write_jsonl(ops: &[Op], path: &Path) -> std::io::Result<()> {
    let mut out = String::new();
    for op in ops {
        out.push_str(&serde_json::to_string(op).map_err(std::io::Error::other)?);
        out.push('\n');
    }
    std::fs::write(path, out)
}

/// Both checks' verdicts on one history.
#[derive(Debug)]
pub struct Verdicts {
    /// Operations recorded.
    pub operations: usize,
    /// Of which of unknown outcome.
    pub unknown: usize,
    /// Porcupine's verdict on the writes and reads, per znode.
    pub linearizable: Linearizability,
    /// What the sessions saw that ZooKeeper does not allow.
    pub sessions: Vec<SessionViolation>,
}

impl Verdicts {
    /// Both checks passed.
    pub fn passed(&self) -> bool {
        self.linearizable.result == "Ok" && self.sessions.is_empty()
    }

    /// The verdicts as the figure line says them.
    pub fn line(&self) -> String {
        let lin = match self.linearizable.result.as_str() {
            "Ok" => "yes".to_string(),
            "Illegal" => format!("NO (znode {})", self.linearizable.failing_key),
            other => format!("unknown ({other})"),
        };
        let sessions = if self.sessions.is_empty() {
            "sequentially consistent".to_string()
        } else {
            let mut kinds = std::collections::BTreeMap::new();
            for v in &self.sessions {
                *kinds.entry(v.kind).or_insert(0) += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("NOT sequentially consistent ({})", kinds.join(", "))
        };
        format!(
            "{} operations checked ({} of unknown outcome, Porcupine took {:.1} s), linearizable: {lin}, sessions: {sessions}",
            self.operations,
            self.unknown,
            self.linearizable.millis as f64 / 1000.0
        )
    }
}

/// Writes the history to `dir/history.jsonl` and checks it; a failed check
/// leaves `dir/failing-slice.jsonl`, `dir/failing-slice.html` (Porcupine's
/// drawing) and `dir/session-violations.txt` beside it.
pub fn check(history: &History, dir: &Path) -> Verdicts {
    let ops = history.ops();
    check_ops(&ops, dir)
}

/// `check` on operations already recorded.
pub fn check_ops(ops: &[Op], dir: &Path) -> Verdicts {
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join("history.jsonl");
    write_jsonl(ops, &path).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    let linearizable = check_linearizable(
        &path,
        &dir.join("failing-slice.jsonl"),
        &dir.join("failing-slice.html"),
    );
    let sessions = check_sessions(ops);
    if !sessions.is_empty() {
        let text: Vec<String> = sessions.iter().map(|v| format!("{v:?}")).collect();
        let _ = std::fs::write(dir.join("session-violations.txt"), text.join("\n"));
    }
    Verdicts {
        operations: ops.len(),
        unknown: ops.iter().filter(|o| o.outcome == Outcome::Unknown).count(),
        linearizable,
        sessions,
    }
}
