//! The consistency canary as status shows it (`spec.canary`): what its
//! rounds found, per kind of violation, and each member's last read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::zk::ServerId;

/// Where the canary keeps its counter; only zkop may write under it.
pub const CANARY_PATH: &str = "/zkop/canary";

/// The counter the canary writes with compare-and-set.
pub const COUNTER_PATH: &str = "/zkop/canary/counter";

/// The kinds of violation the canary counts (`zkop_canary_violations_total{kind}`).
pub const VIOLATION_KINDS: [&str; 4] = [
    "cas-old-version",
    "read-your-writes",
    "monotonic-reads",
    "stale-read",
];

/// Upper bounds of `zkop_canary_write_seconds`' buckets.
pub const WRITE_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A latency histogram, cumulative as Prometheus renders it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Histogram {
    /// Observations at most each of `WRITE_BUCKETS`.
    pub buckets: Vec<u64>,
    /// Their sum, in seconds.
    pub sum: f64,
    /// How many.
    pub count: u64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&mut self, seconds: f64) {
        self.buckets.resize(WRITE_BUCKETS.len(), 0);
        for (n, bound) in self.buckets.iter_mut().zip(WRITE_BUCKETS) {
            if seconds <= bound {
                *n += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The canary's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStatus {
    /// Seconds between rounds.
    pub every_s: u64,
    /// Rounds run.
    pub rounds: u64,
    /// When the last round that wrote and found nothing wrong ended (ms
    /// since the Unix epoch).
    #[serde(default)]
    pub last_good_round_ms: Option<u64>,
    /// The counter's value last written.
    #[serde(default)]
    pub counter: u64,
    /// Violations found, by kind (every kind listed, 0 when none).
    pub violations: BTreeMap<String, u64>,
    /// The last violation, said in words.
    #[serde(default)]
    pub last_violation: Option<String>,
    /// Why the last round could not write, if it could not.
    #[serde(default)]
    pub write_error: Option<String>,
    /// Write latency (the compare-and-set).
    pub write_seconds: Histogram,
    /// The last round's write, seconds.
    #[serde(default)]
    pub last_write_seconds: Option<f64>,
    /// Each member's last read through it.
    pub members: Vec<CanaryRead>,
}

/// The canary's last read through one member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryRead {
    /// The member.
    pub id: ServerId,
    /// `sync` and `getData` took this long (seconds), when it answered.
    #[serde(default)]
    pub read_seconds: Option<f64>,
    /// The counter it showed.
    #[serde(default)]
    pub counter: Option<u64>,
    /// It answered as a read-only server (cut off from the quorum).
    #[serde(default)]
    pub read_only: bool,
    /// Why it did not answer.
    #[serde(default)]
    pub error: Option<String>,
}

impl CanaryStatus {
    /// A fresh canary's status: every kind at 0.
    pub fn new(every_s: u64) -> Self {
        Self {
            every_s,
            violations: VIOLATION_KINDS.iter().map(|k| (k.to_string(), 0)).collect(),
            ..Self::default()
        }
    }

    /// Violations of every kind together.
    pub fn violations_total(&self) -> u64 {
        self.violations.values().sum()
    }
}

/// One point of the status page's plots (`GET /v1/timeline`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimelineSample {
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// The canary's write in the round just before, ms.
    #[serde(default)]
    pub canary_write_ms: Option<f64>,
    /// Each member's canary read, ms, by member id.
    #[serde(default)]
    pub read_ms: BTreeMap<String, f64>,
    /// Each serving member's transactions behind the leader, by member id.
    #[serde(default)]
    pub zxid_lag: BTreeMap<String, u64>,
}

/// The last hour, for the status page: samples and the events beside them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeline {
    /// Oldest first.
    pub samples: Vec<TimelineSample>,
    /// The controller's events (restarts, reconfigs, faults it saw).
    pub events: Vec<crate::wire::Event>,
}
