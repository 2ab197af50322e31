//! Rolling replacement: members on outdated instances (another launch
//! template version, or `zkop replace`) hand their place to new instances one
//! at a time, the leader last.

use zkop_spec::zk::{DynamicConfig, MemberRole, ServerId, ServerMode};

use super::{ChangeReason, Ctx, MembershipChange};
use crate::model::MemberRecord;

impl Ctx<'_> {
    /// Members of `config` on instances launched from another launch template
    /// version than the fleet launches from now.
    pub(super) fn outdated_members(&self, config: &DynamicConfig) -> Vec<&MemberRecord> {
        config
            .servers
            .keys()
            .filter_map(|id| self.p.members.get(id))
            .filter(|m| !m.retiring && self.outdated(m))
            .collect()
    }

    /// To be replaced: launched from another launch template version than
    /// the fleet launches from now, or named by `zkop replace`.
    pub(super) fn outdated(&self, m: &MemberRecord) -> bool {
        self.obs.outdated(&m.instance) || self.p.replace.contains(&m.instance)
    }

    /// 1 while a rolling replacement is under way: a member of the config is
    /// on an outdated instance, no roll-out is in progress, and the last
    /// replaced member's instance is gone (one replacement at a time). The
    /// extra member is the new instance's, joining before the old one leaves.
    pub(super) fn surge(&self) -> u32 {
        let replacing = !self.spec.externally_scaled()
            && self.p.rollout.is_none()
            && self.p.members.values().all(|m| !m.retiring)
            && self
                .p
                .config
                .as_ref()
                .is_some_and(|c| !self.outdated_members(c).is_empty());
        u32::from(replacing)
    }

    /// The order members are restarted or replaced in: observers, followers,
    /// the leader last; with the word for each.
    pub(super) fn rank(&self, config: &DynamicConfig, m: &MemberRecord) -> (u8, &'static str) {
        match self.mode(m) {
            Some(ServerMode::Observer) => (0, "observer"),
            Some(ServerMode::Leader) => (2, "leader"),
            _ if config.role_of(m.id) == Some(MemberRole::Observer) => (0, "observer"),
            _ => (1, "follower"),
        }
    }

    /// Why a member is replaced, for events: the launch template version its
    /// instance was launched from, or `zkop replace`.
    pub(super) fn replaced_because(&self, instance: &str) -> String {
        if self.p.replace.contains(instance) && !self.obs.outdated(instance) {
            return "zkop replace".into();
        }
        let from = self
            .obs
            .instance(instance)
            .and_then(|i| i.launch_template.as_deref())
            .unwrap_or("unknown");
        format!("launch template {from}")
    }
    /// Where a rolling replacement stands, while one is under way.
    pub(super) fn replacement_progress(&self, config: &DynamicConfig) -> Option<String> {
        let outdated = self.outdated_members(config);
        let ids: Vec<String> = outdated.iter().map(|m| m.id.to_string()).collect();
        let head = format!(
            "rolling replacement: members [{}] to replace",
            ids.join(", ")
        );
        if outdated.is_empty() && !self.p.members.values().any(|m| m.retiring) {
            return None;
        }
        if self.surge() == 1 {
            return Some(format!(
                "{head}; a new instance joins before the next one leaves"
            ));
        }
        let leaving: Vec<String> = self
            .p
            .members
            .values()
            .filter(|m| m.retiring && !self.obs.instance_gone(&m.instance))
            .map(|m| format!("{} ({})", m.id, m.instance))
            .collect();
        (!outdated.is_empty() && !leaving.is_empty()).then(|| {
            format!(
                "{head}; waiting for the replaced member's instance to terminate: [{}]",
                leaving.join(", ")
            )
        })
    }
    /// A rolling replacement's swap, once the new instance's member serves as
    /// an observer: the next outdated member leaves the config, a voter handing
    /// its vote to a member on the current launch template version. Only on a
    /// healthy ensemble: every member serves and the voter count is the spec's.
    pub(super) fn replacement(
        &self,
        config: &DynamicConfig,
        live_observers: &[ServerId],
        active: usize,
    ) -> Option<MembershipChange> {
        if self.surge() == 0
            || active < self.replicas() as usize
            || config.voter_count() != self.target_voters()
            || !config.servers.keys().all(|id| self.serving_id(*id))
        {
            return None;
        }
        let old = self
            .outdated_members(config)
            .into_iter()
            .min_by_key(|m| (self.rank(config, m).0, m.id))?;
        let role = self.rank(config, old).1;
        let because = self.replaced_because(&old.instance);
        if config.role_of(old.id) == Some(MemberRole::Observer) {
            let why = ChangeReason::ReplaceObserver {
                id: old.id,
                instance: old.instance.clone(),
                because,
            };
            return Some(MembershipChange::new(vec![], vec![old.id], why));
        }
        let new = live_observers
            .iter()
            .filter_map(|id| self.p.members.get(id))
            .filter(|m| !self.outdated(m))
            .min_by_key(|m| m.id)?;
        let why = ChangeReason::HandOverVote {
            role,
            old: old.id,
            old_instance: old.instance.clone(),
            because,
            new: new.id,
            new_instance: new.instance.clone(),
            to: self.obs.launch_template.clone(),
        };
        let joining = config
            .servers
            .get(&new.id)?
            .with_role(MemberRole::Participant);
        Some(MembershipChange::new(vec![joining], vec![old.id], why))
    }
}
