//! A lost state (an empty store while an ensemble runs): rebuilt from the
//! agents' reports and ZooKeeper's own config, never by stopping everyone.

use zkop_spec::zk::DynamicConfig;

use super::{Ctx, Phase, Plan, Step};
use crate::model::MemberRecord;

impl Ctx<'_> {
    /// With no member recorded and no bootstrap ever stored, agents that
    /// report a myid and serve under one config mean the state was lost:
    /// rebuild it from them. The config is believed only when a majority of
    /// its voters report serving under it, by content, not version alone
    /// (ZooKeeper's quorum confirms it).
    pub(super) fn rebuild_from_reports(&self) -> Option<Plan> {
        if self.p.ever_bootstrapped || !self.p.members.is_empty() {
            return None;
        }
        let serving = || {
            self.obs
                .instances
                .iter()
                .filter(|i| self.obs.instance_up(&i.id))
                .filter_map(|i| self.serving_report(&i.id).map(|r| (i, r)))
                .filter(|(_, r)| {
                    r.server_id.is_some() && r.probe.as_ref().is_some_and(|p| p.serving)
                })
        };
        // A config a majority of its own voters serve under, by content; of
        // several, the one most members serve under, then the newest: one
        // agent's forged config naming only itself confirms itself, but
        // never outnumbers the members serving ZooKeeper's real one.
        let serving_under = |config: &DynamicConfig| {
            serving()
                .filter(|(_, r)| r.probe.as_ref().and_then(|p| p.config.as_ref()) == Some(config))
                .filter_map(|(_, r)| r.server_id)
                .filter(|id| config.servers.contains_key(id))
                .count()
        };
        let mut candidates: Vec<DynamicConfig> = serving()
            .filter_map(|(_, r)| r.probe.as_ref()?.config.clone())
            .filter(|c| c.version.is_some())
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse((serving_under(c), c.version)));
        let config = candidates.into_iter().find(|config| {
            config.quorum_where(|id| {
                serving().any(|(_, r)| {
                    r.server_id == Some(id)
                        && r.probe.as_ref().and_then(|p| p.config.as_ref()) == Some(config)
                })
            })
        })?;
        // Every server of the config whose agent reports its id, serving or not.
        let members: Vec<MemberRecord> = self
            .obs
            .instances
            .iter()
            .filter(|i| self.obs.instance_up(&i.id))
            .filter_map(|i| {
                let r = self.fresh_report(&i.id)?;
                let id = r.server_id?;
                let server = config.servers.get(&id)?.clone();
                Some(MemberRecord {
                    id,
                    instance: i.id.clone(),
                    server,
                    initial_config: Some(config.clone()),
                    retiring: false,
                    adopted: false,
                    recovery: None,
                    settings: r.settings.clone(),
                    restore: None,
                })
            })
            .collect();
        // Wait for every server's agent, for a while: one left out would be
        // taken for dead and replaced.
        let missing: Vec<String> = config
            .servers
            .keys()
            .filter(|id| !members.iter().any(|m| m.id == **id))
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() && self.uptime < self.dead_after() {
            let reason = format!(
                "no state stored, yet agents report serving config version {}: waiting for members [{}] to report before rebuilding the state from them",
                config.version.map(|v| v.to_string()).unwrap_or_default(),
                missing.join(", ")
            );
            return Some(Plan::new(Phase::Pending, reason, vec![]));
        }
        let reason = format!(
            "no state stored, yet {} agents report serving config version {}: rebuilding the state from them",
            members.len(),
            config.version.map(|v| v.to_string()).unwrap_or_default()
        );
        Some(Plan::new(
            Phase::Reconciling,
            reason,
            vec![Step::RebuildState { config, members }],
        ))
    }
}
