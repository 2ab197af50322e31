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
    /// An agent the last look at the fleet did not list reported: look again.
    pub refresh_fleet: bool,
}

/// An agent's latest report and what this controller saw of it over time.
#[derive(Debug, Clone)]
struct Heard {
    report: AgentReport,
    /// When the latest report arrived.
    at: Instant,
    /// When a report last said its server serves.
    served_at: Option<Instant>,
    /// When a report last said its JVM runs.
    running_at: Option<Instant>,
    /// Since when its reports say its server serves, without a gap.
    serving_since: Option<Instant>,
    /// Since when its reports say its server answers probes, without a gap.
    answering_since: Option<Instant>,
    /// The ZooKeeper release its server last said it runs.
    version: Option<String>,
    /// The highest zxid its reports ever gave.
    zxid_seen: Option<Zxid>,
}

/// The latest report of each agent and when it arrived, when each server
/// last served and each JVM last ran, and when a member was last seen leading.
#[derive(Debug, Clone)]
pub struct ReportCache {
    reports: BTreeMap<InstanceId, Heard>,
    leader_seen_at: Instant,
    /// Since when this controller observes: what it has not seen since
    /// counts as not seen for that long.
    since: Instant,
}

impl ReportCache {
    /// An empty cache; the leader clock starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            reports: BTreeMap::new(),
            leader_seen_at: now,
            since: now,
        }
    }

    /// Whether an agent of a running instance in `view` has not reported
    /// for `after` (agents report every second): it may be gone.
    pub fn any_quiet(&self, view: &FleetView, now: Instant, after: Duration) -> bool {
        view.instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .any(|i| {
                let at = self
                    .reports
                    .get(&i.id)
                    .map_or(self.since, |h| h.at.max(self.since));
                now.saturating_duration_since(at) >= after
            })
    }

    /// Keeps a report received at `now`; true when it is news (it differs
    /// from the last one in more than its zxid).
    pub fn record(&mut self, report: AgentReport, now: Instant) -> bool {
        let last = self.reports.get(&report.instance);
        let news = last.is_none_or(|h| report.differs_from(&h.report));
        let serving = report.probe.as_ref().is_some_and(|p| p.serving);
        let heard = Heard {
            served_at: if serving {
                Some(now)
            } else {
                last.and_then(|h| h.served_at)
            },
            serving_since: match serving {
                true => last.and_then(|h| h.serving_since).or(Some(now)),
                false => None,
            },
            answering_since: match report.probe.is_some() {
                true => last.and_then(|h| h.answering_since).or(Some(now)),
                false => None,
            },
            running_at: if report.process.running {
                Some(now)
            } else {
                last.and_then(|h| h.running_at)
            },
            version: report
                .probe
                .as_ref()
                .and_then(|p| p.version.clone())
                .or_else(|| last.and_then(|h| h.version.clone())),
            zxid_seen: [
                last.and_then(|h| h.zxid_seen),
                report.probe.as_ref().and_then(|p| p.zxid),
                report.disk_zxid,
            ]
            .into_iter()
            .flatten()
            .max(),
            at: now,
            report,
        };
        self.reports.insert(heard.report.instance.clone(), heard);
        news
    }

    /// Starts observing anew (a takeover): what was seen before, under
    /// another leader or before a lapse, no longer counts toward a death.
    pub fn restart_observation(&mut self, now: Instant) {
        self.since = now;
        self.leader_seen_at = now;
        for h in self.reports.values_mut() {
            h.served_at = None;
            h.running_at = None;
            h.serving_since = None;
            h.answering_since = None;
        }
    }

    /// How long the server on `instance` has served without a gap.
    pub fn serving_for(&self, instance: &str, now: Instant) -> Option<Duration> {
        let since = self.reports.get(instance)?.serving_since?;
        Some(now.saturating_duration_since(since))
    }

    /// The highest controller epoch any agent reported seeing.
    pub fn max_epoch_seen(&self) -> u64 {
        self.reports
            .values()
            .map(|h| h.report.epoch_seen)
            .max()
            .unwrap_or_default()
    }

    /// The ZooKeeper release the server on `instance` last said it runs.
    pub fn version(&self, instance: &str) -> Option<&str> {
        self.reports.get(instance)?.version.as_deref()
    }

    /// Keeps only the reports of instances the fleet lists: memory stays
    /// bounded by the fleet.
    pub fn keep_only(&mut self, instances: &[crate::model::Instance]) {
        self.reports
            .retain(|id, _| instances.iter().any(|i| &i.id == id));
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
            .filter(|h| now.saturating_duration_since(h.at) < within)
            .map(|h| &h.report)
    }

    /// When the next report fresh now turns stale after `within`.
    pub fn next_stale(&self, within: Duration, now: Instant) -> Option<Instant> {
        self.reports
            .values()
            .map(|h| h.at + within)
            .filter(|t| *t > now)
            .min()
    }

    /// The highest zxid fresh reports carry (served, else read from disk).
    pub fn newest_zxid(&self, now: Instant) -> Option<Zxid> {
        self.reports
            .values()
            .filter(|h| now.saturating_duration_since(h.at) < ZXID_FRESH)
            .map(|h| &h.report)
            .filter_map(|r| r.probe.as_ref().and_then(|p| p.zxid).or(r.disk_zxid))
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
            instances.iter().any(|i| {
                i.id == id
                    && matches!(
                        i.state,
                        InstanceState::Pending
                            | InstanceState::Running
                            | InstanceState::Terminating
                    )
            })
        };
        let leading = self.reports.iter().any(|(id, h)| {
            now.saturating_duration_since(h.at) < LEADER_FRESH
                && up(id)
                && h.report
                    .probe
                    .as_ref()
                    .is_some_and(|p| p.serving && p.mode == Some(ServerMode::Leader))
        });
        if leading {
            self.leader_seen_at = now;
        }
        let reports = self
            .reports
            .iter()
            .map(|(k, h)| {
                let ago =
                    |t: Option<Instant>| now.saturating_duration_since(t.unwrap_or(self.since));
                let seen = SeenReport {
                    report: h.report.clone(),
                    age: now.saturating_duration_since(h.at),
                    silent_for: now.saturating_duration_since(h.at.max(self.since)),
                    served_ago: Some(ago(h.served_at)),
                    running_ago: Some(ago(h.running_at)),
                    serving_for: h.serving_since.map(|t| now.saturating_duration_since(t)),
                    answering_for: h.answering_since.map(|t| now.saturating_duration_since(t)),
                    zxid_seen: h.zxid_seen,
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
