//! Standby voters (`voters.standby`): synced observers kept ready. A voter
//! that has not served for `healing.voterDownAfter` (hung, say: its agent
//! and instance live, so it is not dead for `memberDeadAfter`) is marked
//! down once a standby has served a while; the membership rules then treat
//! it as dead, and the standby takes its vote by the path ZooKeeper accepts
//! while a voter is down (it leaves the config, then one reconfig removes
//! the down voter and adds it as a participant). The down voter is retired
//! and its instance replaced, which brings a new standby.

use std::time::Duration;

use zkop_spec::zk::{DynamicConfig, MemberRole, ServerId};

use super::{Ctx, Phase, Plan, Step};

/// How long a standby must have served, without a gap, before it may take
/// a vote (raft-autopilot's server stabilization time).
pub const STANDBY_STABLE: Duration = Duration::from_secs(10);

impl Ctx<'_> {
    /// Whether `id` is an observer of the config that has served for
    /// [`STANDBY_STABLE`] without a gap.
    pub(super) fn stable_standby(&self, id: ServerId) -> bool {
        let Some(m) = self.p.members.get(&id) else {
            return false;
        };
        let config = self.p.config.as_ref();
        m.role_in(config) == Some(MemberRole::Observer)
            && self.serving(m)
            && self
                .obs
                .reports
                .get(&m.instance)
                .and_then(|r| r.serving_for)
                .is_some_and(|d| d >= STANDBY_STABLE)
    }

    /// A voter marked down that serves again while the config is still the
    /// one it was marked under (the standby's swap has not begun): unmark it.
    pub(super) fn down_voter_back(&self, config: &DynamicConfig) -> Option<Plan> {
        if config.version.is_none() || self.p.voter_down_config != config.version {
            return None;
        }
        let id = self.p.voters_down.iter().copied().find(|id| {
            config.voters().any(|s| s.id == *id)
                && self.p.members.get(id).is_some_and(|m| self.serving(m))
        })?;
        Some(Plan::new(
            Phase::Reconciling,
            format!("voter {id} serves again before the standby's swap began"),
            vec![Step::ClearVoterDown { id }],
        ))
    }

    /// A voter down for `healing.voterDownAfter` while a majority serves and
    /// a standby is stable: mark it down (one at a time).
    pub(super) fn standby_takes_over(
        &self,
        config: &DynamicConfig,
        steps: &[Step],
    ) -> Option<Plan> {
        if self.spec.standby == 0 || !self.p.voters_down.is_empty() || !self.majority_serves(config)
        {
            return None;
        }
        let after = self.spec.healing.voter_down_after;
        let (id, down_for) = config
            .voters()
            .filter(|s| !self.dead_id(s.id) && !self.restarting(s.id))
            .find_map(|s| {
                let m = self.p.members.get(&s.id)?;
                let down = self.obs.reports.get(&m.instance)?.served_ago?;
                (down >= after).then_some((s.id, down))
            })?;
        let standby = config
            .observers()
            .map(|s| s.id)
            .find(|o| self.stable_standby(*o))?;
        let mut steps = steps.to_vec();
        steps.insert(
            0,
            Step::MarkVoterDown {
                id,
                standby,
                down_for_s: down_for.as_secs(),
            },
        );
        Some(Plan::new(
            Phase::Reconciling,
            format!(
                "voter {id} has not served for {}s: standby {standby} takes its vote",
                down_for.as_secs()
            ),
            steps,
        ))
    }
}
