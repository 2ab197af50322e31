//! Turning TLS on or off in a running ensemble, one stage at a time
//! ([`TlsStage`]): a stage's settings roll out (the roll-out planner), then
//! the stage's own reconfig runs if it has one, then the next stage begins.

use zkop_spec::tls_stage::TlsStage;
use zkop_spec::zk::{DynamicConfig, Server, ServerId};

use super::change::{ChangeReason, MembershipChange};
use super::{Ctx, Phase, Plan, Step};
use crate::desired::{spec_settings, tls_stage};

impl Ctx<'_> {
    /// The TLS stage the servers are at.
    pub(super) fn tls_stage(&self) -> TlsStage {
        tls_stage(self.spec, self.p)
    }

    /// `server` as the config at the current stage lists it: without a
    /// plaintext client part once those were dropped.
    pub(super) fn as_configured(&self, server: &Server) -> Server {
        Server {
            client_port: self.tls_stage().config_client_port(self.spec),
            ..server.clone()
        }
    }

    /// The next step of a TLS switch, once nothing else is under way: the
    /// stage's reconfig, or the move to the next stage once every listed
    /// member serves under the current stage's settings.
    pub(super) fn tls_switch(
        &self,
        config: &DynamicConfig,
        leader: Option<ServerId>,
    ) -> Option<Plan> {
        let stage = self.tls_stage();
        let target = TlsStage::target(self.spec);
        let next = stage.toward(target);
        let drop_parts = stage >= TlsStage::ClientPartsDropped;
        let parts_differ = config
            .servers
            .values()
            .any(|s| s.has_client_part() == drop_parts);
        if next.is_none() && !parts_differ {
            return None;
        }
        let want = spec_settings(self.spec, self.p);
        let settled = self.p.rollout.is_none()
            && config.servers.keys().all(|id| {
                self.p.members.get(id).is_some_and(|m| {
                    self.serving(m) && m.settings.as_ref().is_none_or(|s| *s == want)
                })
            });
        if !settled {
            return None;
        }
        if parts_differ {
            // The whole membership in one (non-incremental) reconfig, each
            // line with or without its client part as the stage says.
            let joining: Vec<Server> = config
                .servers
                .values()
                .map(|s| self.as_configured(s))
                .collect();
            let why = ChangeReason::TlsClientParts {
                dropped: drop_parts,
            };
            let change = MembershipChange::new(joining, Vec::new(), why);
            let step = self.reconfig_step(config, leader, change)?;
            return Some(Plan::new(
                Phase::Reconciling,
                format!("TLS: {}", stage.describe()),
                vec![step],
            ));
        }
        let to = next?;
        Some(Plan::new(
            Phase::Reconciling,
            format!(
                "TLS: {} ({}), next {} ({})",
                stage.as_ref(),
                stage.describe(),
                to.as_ref(),
                to.describe()
            ),
            vec![Step::AdvanceTlsStage { from: stage, to }],
        ))
    }
}
