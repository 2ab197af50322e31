//! Observation: the agents' latest reports (with when they arrived) and the
//! leader clock, turned with the fleet's view into the planner's
//! [`Observed`]. Every age is counted on the clock handed in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;
use zkop_spec::InstanceId;
use zkop_spec::wire::AgentReport;
use zkop_spec::zk::{ServerMode, Zxid};

use crate::adapters::FleetView;
use crate::model::{InstanceState, Observed, SeenReport};

/// Agents report at least every second: a leader not heard of for this long
/// leads no more (quorum-loss detection counts from there).
pub const LEADER_FRESH: Duration = Duration::from_millis(2_500);
/// Reports younger than this count toward the highest zxid ever seen: a dead
/// member's last report must not outlive a discarded ensemble.
pub const ZXID_FRESH: Duration = Duration::from_secs(5);

/// What a person asked for, carried into the next pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    /// `zkop roll` asked for a restart of every member.
    pub roll: bool,
    /// `zkop replace` asked to replace these instances.
    pub replace: BTreeSet<InstanceId>,
}

/// The latest report of each agent and when it arrived, and when a member
/// was last seen leading.
#[derive(Debug, Clone)]
pub struct ReportCache {
    reports: BTreeMap<InstanceId, (AgentReport, Instant)>,
    leader_seen_at: Instant,
}

impl ReportCache {
    /// An empty cache; the leader clock starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            reports: BTreeMap::new(),
            leader_seen_at: now,
        }
    }

    /// Keeps a report received at `now`; true when it is news (it differs
    /// from the last one in more than its zxid).
    pub fn record(&mut self, report: AgentReport, now: Instant) -> bool {
        let news = self
            .reports
            .get(&report.instance)
            .is_none_or(|(last, _)| report.differs_from(last));
        self.reports.insert(report.instance.clone(), (report, now));
        news
    }

    /// Restarts the leader clock: observations made before (under another
    /// controller, or before a forced config) do not count toward detection.
    pub fn restart_leader_clock(&mut self, now: Instant) {
        self.leader_seen_at = now;
    }

    /// The instance's report, if it arrived within `within` of `now`.
    pub fn fresh(&self, instance: &str, within: Duration, now: Instant) -> Option<&AgentReport> {
        self.reports
            .get(instance)
            .filter(|(_, at)| now.saturating_duration_since(*at) < within)
            .map(|(r, _)| r)
    }

    /// The highest zxid fresh reports carry (served, else read from disk).
    pub fn newest_zxid(&self, now: Instant) -> Option<Zxid> {
        self.reports
            .values()
            .filter(|(_, at)| now.saturating_duration_since(*at) < ZXID_FRESH)
            .filter_map(|(r, _)| r.probe.as_ref().and_then(|p| p.zxid).or(r.disk_zxid))
            .max()
    }

    /// This pass's observation from the fleet's `view`, at `now` (`wall_ms`
    /// on the wall clock). Moves the leader clock when a fresh report on an
    /// instance the fleet still lists says it leads.
    pub fn observe(
        &mut self,
        view: FleetView,
        requests: &Requests,
        now: Instant,
        wall_ms: u64,
    ) -> Observed {
        let FleetView {
            instances,
            desired_capacity,
            launch_template,
        } = view;
        let up = |id: &str| {
            instances
                .iter()
                .any(|i| i.id == id && i.state != InstanceState::Terminated)
        };
        let leading = self.reports.iter().any(|(id, (r, at))| {
            now.saturating_duration_since(*at) < LEADER_FRESH
                && up(id)
                && r.probe
                    .as_ref()
                    .is_some_and(|p| p.serving && p.mode == Some(ServerMode::Leader))
        });
        if leading {
            self.leader_seen_at = now;
        }
        let reports = self
            .reports
            .iter()
            .map(|(k, (r, at))| {
                let age = now.saturating_duration_since(*at);
                let seen = SeenReport {
                    report: r.clone(),
                    age,
                };
                (k.clone(), seen)
            })
            .collect();
        Observed {
            instances,
            desired_capacity,
            reports,
            now_ms: wall_ms,
            leaderless_for: now.saturating_duration_since(self.leader_seen_at),
            roll_requested: requests.roll,
            replace_requested: requests.replace.clone(),
            launch_template,
        }
    }
}
