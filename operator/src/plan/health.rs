//! The questions every rule asks of a member: is it dead, serving, leading;
//! and how many members and voters the spec wants.

use std::time::Duration;

use zkop_spec::wire::AgentReport;
use zkop_spec::zk::{DynamicConfig, ServerId, ServerMode};

use super::Ctx;
use crate::model::MemberRecord;

/// How old a report may be and still show its member serving or leading: a
/// few report intervals (agents report every second). An older report only
/// shows its agent alive: a hung server must not count toward a quorum.
pub const SERVING_FRESH: Duration = Duration::from_secs(5);

impl Ctx<'_> {
    /// Members wanted: the spec's, plus one while a rolling replacement lets a
    /// new instance join before an outdated one leaves.
    pub(super) fn replicas(&self) -> u32 {
        self.spec_replicas() + self.spec.standby + self.surge()
    }

    /// Members of the config that are dead while their instance is up (a
    /// hung server whose agent reports), standbys' voters apart: the
    /// instances they hold until they leave the config.
    pub(super) fn held_by_dead(&self) -> u32 {
        let Some(config) = self.p.config.as_ref() else {
            return 0;
        };
        self.p
            .members
            .values()
            .filter(|m| {
                m.role_in(Some(config)).is_some()
                    && self.obs.instance_up(&m.instance)
                    && !self.p.voters_down.contains(&m.id)
                    && self.dead(m)
            })
            .count() as u32
    }

    /// Members the spec wants: `spec.replicas`, or with an externally scaled
    /// group, every instance it has.
    pub(super) fn spec_replicas(&self) -> u32 {
        if self.spec.externally_scaled() {
            self.obs
                .instances
                .iter()
                .filter(|i| self.obs.instance_up(&i.id))
                .count() as u32
        } else {
            self.spec.replicas
        }
    }

    /// Voters wanted for that many members (never fewer than `voters.min`).
    pub(super) fn target_voters(&self) -> usize {
        self.spec
            .target_voters_for(self.spec_replicas().max(self.spec.voters_min))
    }
    pub(super) fn dead_after(&self) -> Duration {
        self.spec.member_dead_after()
    }

    pub(super) fn fresh_report(&self, instance: &str) -> Option<&AgentReport> {
        self.obs
            .reports
            .get(instance)
            .filter(|r| r.age < self.dead_after())
            .map(|r| &r.report)
    }

    /// The instance's report, if recent enough to say what its server does now.
    pub(super) fn serving_report(&self, instance: &str) -> Option<&AgentReport> {
        self.obs
            .reports
            .get(instance)
            .filter(|r| r.age < SERVING_FRESH.min(self.dead_after()))
            .map(|r| &r.report)
    }

    pub(super) fn record_of_instance(&self, instance: &str) -> Option<&MemberRecord> {
        self.p.members.values().find(|m| m.instance == instance)
    }

    /// Restarting: the member a roll-out restarted last, within
    /// `rollout.timeout` of its restart. Loading a few GB of snapshot may
    /// take longer than `memberDeadAfter`: until the timeout it is the
    /// roll-out's business (which halts past it), not dead.
    pub(super) fn restarting(&self, id: ServerId) -> bool {
        self.restarted_ago(id)
            .is_some_and(|ago| ago < self.spec.rollout_timeout)
    }

    /// How long ago a roll-out restarted `id`, when it is the member it
    /// restarted last.
    fn restarted_ago(&self, id: ServerId) -> Option<Duration> {
        let r = self.p.rollout.as_ref().filter(|r| r.member == id)?;
        Some(Duration::from_millis(
            self.obs.now_ms.saturating_sub(r.at_ms),
        ))
    }

    /// Whether the not-serving rule may count `id` dead: not while a
    /// roll-out's restart of it is under way, nor once its roll-out halted
    /// (past `rollout.timeout`) until it has not served for
    /// `memberDeadAfter` more: the halt is said first (phase, event,
    /// alert), and only then do the normal rules replace it. Never a member
    /// halted on a new ZooKeeper release: the release failed, not the
    /// instance, and a replacement would start on it too.
    ///
    /// A member whose server refuses its own data directory (a hole in its
    /// transaction log) counts at once, roll-out or not: neither the release
    /// nor the instance failed, its copy of the data did, and waiting only
    /// keeps a voter away.
    fn not_serving_counts(&self, id: ServerId, after: Duration) -> bool {
        self.refuses_its_data(id)
            || self.restarted_ago(id).is_none_or(|ago| {
                ago >= self.spec.rollout_timeout + after && !self.alone_on_its_release(id)
            })
    }

    /// Whether `id`'s agent reports its server refused its data directory.
    pub(super) fn refuses_its_data(&self, id: ServerId) -> bool {
        self.p
            .members
            .get(&id)
            .and_then(|m| self.fresh_report(&m.instance))
            .is_some_and(|r| r.process.data_refused.is_some())
    }

    /// Dead: its instance is gone; or, while a majority of the config's
    /// voters serve, its agent has been silent or (a member of the config,
    /// not restarting) its server has not served for `memberDeadAfter`:
    /// crash-looping or hung. Without a serving majority, silence and not
    /// serving may be the quorum loss's, not the member's: then only a JVM
    /// its agent has reported not running for `memberDeadAfter` is dead.
    /// Before the first config, silence for `memberDeadAfter`.
    pub(super) fn dead(&self, m: &MemberRecord) -> bool {
        if !self.obs.instance_up(&m.instance) {
            return true;
        }
        // A down voter a standby replaces: dead to the membership rules.
        if self.p.voters_down.contains(&m.id) {
            return true;
        }
        let after = self.dead_after();
        let seen = self.obs.reports.get(&m.instance);
        let silent = || seen.map_or(self.uptime, |r| r.silent_for) >= after;
        let Some(config) = self.p.config.as_ref() else {
            return silent();
        };
        if self.majority_serves(config) {
            let not_serving = m.role_in(Some(config)).is_some()
                && self.not_serving_counts(m.id, after)
                && seen.is_some_and(|r| r.served_ago.is_some_and(|d| d >= after));
            silent() || not_serving
        } else {
            seen.is_some_and(|r| {
                !r.report.process.running && r.running_ago.is_some_and(|d| d >= after)
            })
        }
    }

    /// Whether a majority of `config`'s voters serve.
    pub(super) fn majority_serves(&self, config: &DynamicConfig) -> bool {
        config.quorum_where(|id| self.serving_id(id))
    }

    pub(super) fn dead_id(&self, id: ServerId) -> bool {
        self.p.members.get(&id).is_none_or(|m| self.dead(m))
    }

    /// Serving: its instance runs (a termination hook may hold it), its
    /// agent runs this id, and its server has a quorum, as a recent report
    /// says.
    pub(super) fn serving(&self, m: &MemberRecord) -> bool {
        self.obs.instance_alive(&m.instance)
            && self.serving_report(&m.instance).is_some_and(|r| {
                r.server_id == Some(m.id) && r.probe.as_ref().is_some_and(|p| p.serving)
            })
    }

    pub(super) fn serving_id(&self, id: ServerId) -> bool {
        self.p.members.get(&id).is_some_and(|m| self.serving(m))
    }

    pub(super) fn mode(&self, m: &MemberRecord) -> Option<ServerMode> {
        self.serving_report(&m.instance)
            .filter(|r| r.server_id == Some(m.id))
            .and_then(|r| r.probe.as_ref())
            .and_then(|p| p.mode)
    }

    pub(super) fn leader(&self, config: &DynamicConfig) -> Option<ServerId> {
        config
            .voters()
            .filter_map(|s| self.p.members.get(&s.id))
            .find(|m| self.serving(m) && self.mode(m) == Some(ServerMode::Leader))
            .map(|m| m.id)
    }
}
