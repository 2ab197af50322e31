//! A fresh ensemble: ids claimed, then the first voters bootstrapped together.

use zkop_spec::backup::{RestoreFrom, RestorePoint};
use zkop_spec::zk::{DynamicConfig, MemberRole};

use super::{Ctx, Phase, Plan, Step};
use crate::model::MemberRecord;

impl Ctx<'_> {
    pub(super) fn bootstrap(&self, mut steps: Vec<Step>) -> Plan {
        // A node that holds a member's data the state does not know means a
        // lost state, not a fresh start: never bootstrap over it.
        let holding: Vec<String> = self
            .obs
            .instances
            .iter()
            .filter(|i| self.obs.instance_up(&i.id) && self.record_of_instance(&i.id).is_none())
            .filter(|i| {
                self.fresh_report(&i.id)
                    .is_some_and(|r| r.server_id.is_some())
            })
            .map(|i| i.id.to_string())
            .collect();
        if !holding.is_empty() {
            let reason = format!(
                "instances [{}] hold members' data the stored state does not know (a lost state): waiting for a majority of their config's voters to report serving, to rebuild the state from them; never bootstrapping over them",
                holding.join(", ")
            );
            return Plan::new(Phase::Pending, reason, steps);
        }
        // A restore seeds one voter; the others join it as after any scale-out.
        let restore = self.bootstrap_restore();
        let want = if restore.is_some() {
            1
        } else {
            self.target_voters()
        };
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
            let reason = match &restore {
                Some(r) => format!(
                    "bootstrapping 1 voter restored from the backup at {} ({}); the others join it",
                    r.target,
                    point_text(r)
                ),
                None => format!("bootstrapping {want} voters"),
            };
            steps.push(Step::Bootstrap { config, restore });
            return Plan::new(Phase::Pending, reason, steps);
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

/// The restore point in words.
fn point_text(r: &RestoreFrom) -> String {
    match r.to {
        RestorePoint::Newest => "its newest point".into(),
        RestorePoint::Zxid { zxid } => format!("exactly to zxid {zxid}"),
        RestorePoint::Time { unix_ms } => {
            format!("to the last transaction at or before {unix_ms} ms")
        }
    }
}
