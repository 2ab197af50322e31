//! A fresh ensemble: ids claimed, then the first voters bootstrapped together.

use zkop_spec::zk::{DynamicConfig, MemberRole};

use super::{Ctx, Phase, Plan, Step};
use crate::model::MemberRecord;

impl Ctx<'_> {
    pub(super) fn bootstrap(&self, mut steps: Vec<Step>) -> Plan {
        let want = self.target_voters();
        let ready: Vec<&MemberRecord> = self
            .p
            .members
            .values()
            .filter(|m| !m.retiring && !self.dead(m) && self.fresh_report(&m.instance).is_some())
            .collect();
        if ready.len() >= want {
            let config = DynamicConfig::of(
                ready
                    .iter()
                    .take(want)
                    .map(|m| m.server.with_role(MemberRole::Participant)),
            );
            steps.push(Step::Bootstrap { config });
            return Plan::new(
                Phase::Pending,
                format!("bootstrapping {want} voters"),
                steps,
            );
        }
        if let Some(claim) = self.claim_candidate() {
            steps.push(claim);
        }
        let reason = format!(
            "waiting for instances: {} of {want} voters have ids",
            ready.len()
        );
        Plan::new(Phase::Pending, reason, steps)
    }
}
