//! Membership changes: following the reconfig in flight, and choosing the
//! next one (heal, scale, replace), one at a time.

use zkop_spec::wire::ReconfigOrder;
use zkop_spec::zk::{DynamicConfig, MemberRole, Server, ServerId};

use super::{
    ChangeReason, Ctx, MembershipChange, Phase, Plan, RECONFIG_TIMEOUT, Step, reconfig_is_safe,
};
use crate::model::{MemberRecord, PendingReconfig};

impl Ctx<'_> {
    /// The newest config serving members report, if newer than the
    /// persisted one and ZooKeeper's quorums confirm it: a majority of its
    /// voters and of the known config's serve under that very config, the
    /// same version with the same servers (one agent's word, true or forged,
    /// is not enough, and a forged config under a real version is no
    /// confirmation).
    pub(super) fn newer_config(&self) -> Option<DynamicConfig> {
        let known = self.p.config.as_ref().and_then(|c| c.version);
        let reported = |m: &MemberRecord| -> Option<&DynamicConfig> {
            self.serving_report(&m.instance)?
                .probe
                .as_ref()?
                .config
                .as_ref()
        };
        let serving: Vec<&MemberRecord> = self
            .p
            .members
            .values()
            .filter(|m| self.serving(m))
            .collect();
        let mut candidates: Vec<&DynamicConfig> = serving
            .iter()
            .filter_map(|m| reported(m))
            .filter(|c| c.version.is_some() && c.version > known)
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.version));
        candidates
            .into_iter()
            .find(|c| {
                // A majority of `of`'s voters serve under `c` itself.
                let confirmed_by = |of: &DynamicConfig| {
                    of.quorum_where(|id| {
                        serving.iter().any(|m| m.id == id && reported(m) == Some(c))
                    })
                };
                // ZooKeeper commits a reconfig with a quorum of the old
                // config and of the new one.
                confirmed_by(c) && self.p.config.as_ref().is_none_or(confirmed_by)
            })
            .cloned()
    }

    pub(super) fn follow_reconfig(&self, pending: &PendingReconfig) -> Plan {
        let seq = pending.order.seq;
        let answer = self
            .fresh_report(&pending.via)
            .and_then(|r| r.reconfig.as_ref())
            .filter(|r| r.seq == seq);
        let step = match answer {
            Some(r) => match (&r.config, &r.error) {
                (Some(config), _) => Step::CompleteReconfig {
                    seq,
                    config: config.clone(),
                },
                (None, error) => Step::FailReconfig {
                    seq,
                    error: error.clone().unwrap_or_else(|| "no reason given".into()),
                },
            },
            None if !self.obs.instance_up(&pending.via) => Step::FailReconfig {
                seq,
                error: format!("instance {} is gone", pending.via),
            },
            None if self.obs.now_ms.saturating_sub(pending.issued_at_ms)
                >= RECONFIG_TIMEOUT.as_millis() as u64 =>
            {
                Step::FailReconfig {
                    seq,
                    error: format!("no answer from {} within {RECONFIG_TIMEOUT:?}", pending.via),
                }
            }
            None => {
                let reason = format!("reconfig {seq} in flight: {}", pending.purpose);
                return Plan::new(Phase::Reconciling, reason, vec![]);
            }
        };
        Plan::new(
            Phase::Reconciling,
            format!("reconfig {seq} answered"),
            vec![step],
        )
    }
    /// Who is where, for the membership rules: dead and live voters and
    /// observers of the config, and members outside it.
    fn roster<'c>(&'c self, config: &DynamicConfig) -> Roster<'c> {
        let dead_voters: Vec<ServerId> = config
            .voters()
            .map(|s| s.id)
            .filter(|id| self.dead_id(*id))
            .collect();
        let dead_observers: Vec<ServerId> = config
            .observers()
            .map(|s| s.id)
            .filter(|id| self.dead_id(*id))
            .collect();
        let live_observers: Vec<ServerId> = config
            .observers()
            .map(|s| s.id)
            .filter(|id| self.serving_id(*id))
            .collect();
        let active = config
            .servers
            .keys()
            .filter(|id| !self.dead_id(**id))
            .count();
        let outside: Vec<&MemberRecord> = self
            .p
            .members
            .values()
            .filter(|m| !m.retiring && m.role_in(Some(config)).is_none() && !self.dead(m))
            .collect();
        let joiners = outside
            .iter()
            .copied()
            .filter(|m| m.initial_config.is_some() && self.serving(m))
            .collect();
        Roster {
            dead_voters,
            dead_observers,
            live_observers,
            active,
            outside,
            joiners,
        }
    }

    /// The next membership change, or why there is none.
    pub(super) fn membership(
        &self,
        config: &DynamicConfig,
        leader: Option<ServerId>,
    ) -> (Vec<Step>, String) {
        let r = self.roster(config);
        let reconfig_allowed = self.obs.now_ms >= self.p.reconfig_not_before_ms;
        if reconfig_allowed
            && let Some(change) = self.choose_reconfig(config, leader, &r)
            && let Some(step) =
                self.reconfig_step(config, leader, self.rejoin_instead(config, change))
        {
            return (vec![step], String::new());
        }
        self.grow_or_shrink(config, &r)
    }

    /// Without a reconfig to run: retire members beyond the spec, start the
    /// joiners the next reconfig needs, claim ids for new instances.
    fn grow_or_shrink(&self, config: &DynamicConfig, r: &Roster<'_>) -> (Vec<Step>, String) {
        let v = config.voter_count();
        let target = self.target_voters();
        let replicas = self.replicas() as usize;
        let active = r.active;
        let started = r
            .outside
            .iter()
            .filter(|m| m.initial_config.is_some())
            .count();
        let unstarted: Vec<&MemberRecord> = r
            .outside
            .iter()
            .copied()
            .filter(|m| m.initial_config.is_none())
            .collect();
        let mut steps = Vec::new();
        // Members outside the config beyond what the spec and the dead voters'
        // replacements need: the newest, unstarted ones first, leave.
        if active + r.outside.len() > replicas + r.dead_voters.len()
            && let Some(m) = unstarted.last().or(r.outside.last())
        {
            steps.push(Step::RetireMember { id: m.id });
            return (
                steps,
                format!("{active} members are enough; member {} is not needed", m.id),
            );
        }
        // Joiners needed by the next reconfig, and no more.
        let needed = if !r.dead_voters.is_empty() {
            r.dead_voters.len()
        } else if v < target {
            2usize.saturating_sub(r.live_observers.len())
        } else if active < replicas {
            1
        } else {
            0
        };
        if started < needed
            && let Some(m) = unstarted.first()
        {
            let initial_config = config.with(
                self.as_configured(&m.server)
                    .with_role(MemberRole::Observer),
            );
            steps.push(Step::StartJoiner {
                id: m.id,
                initial_config,
            });
        }
        if active + r.outside.len() < replicas
            && let Some(claim) = self.claim_candidate()
        {
            steps.push(claim);
        }
        let mut reason = String::new();
        if !r.dead_voters.is_empty() && steps.is_empty() {
            let dead_voters = &r.dead_voters;
            reason = format!("voters {dead_voters:?} are dead; waiting for replacements");
        } else if steps.is_empty() && (active != replicas || v != target || !r.outside.is_empty()) {
            reason = format!(
                "{active} of {replicas} members and {v} of {target} voters; waiting for instances"
            );
        }
        if steps.is_empty()
            && r.dead_voters.is_empty()
            && let Some(progress) = self.replacement_progress(config)
        {
            reason = progress;
        }
        (steps, reason)
    }

    /// Picks one reconfig, in a fixed order: heal (dead members), replace
    /// (rolling replacement), scale in, then the voter count.
    fn choose_reconfig(
        &self,
        config: &DynamicConfig,
        leader: Option<ServerId>,
        r: &Roster<'_>,
    ) -> Option<MembershipChange> {
        // Non-leader voters, newest first: the ones to demote or remove first.
        let mut followers: Vec<ServerId> = config
            .voters()
            .map(|s| s.id)
            .filter(|id| Some(*id) != leader)
            .collect();
        followers.reverse();
        if !r.dead_observers.is_empty() || !r.dead_voters.is_empty() {
            return self.heal(config, r, &followers);
        }
        if let Some(swap) = self.replacement(config, &r.live_observers, r.active) {
            return Some(swap);
        }
        // Voters leave from the most crowded zones first.
        let followers = self.crowded_first(config, &followers);
        if r.active > self.replicas() as usize {
            return self.scale_in(config, r, &followers);
        }
        self.voter_count_change(config, r, &followers)
            .or_else(|| self.zone_rebalance(config, &r.live_observers, &followers))
    }

    /// Dead members first: a dead observer leaves; a dead voter's vote goes
    /// to a joiner, or the count drops by two, or an observer rejoins for it.
    fn heal(
        &self,
        config: &DynamicConfig,
        r: &Roster<'_>,
        followers: &[ServerId],
    ) -> Option<MembershipChange> {
        if let Some(&dead) = r.dead_observers.first() {
            return Some(MembershipChange::new(
                vec![],
                vec![dead],
                ChangeReason::RemoveDeadObserver { dead },
            ));
        }
        let &dead = r.dead_voters.first()?;
        let joiners = r.joiners.iter().map(|m| m.server.clone()).collect();
        if let Some(j) = self.spread_over_zones(config, joiners).first() {
            return Some(MembershipChange::new(
                vec![j.with_role(MemberRole::Participant)],
                vec![dead],
                ChangeReason::ReplaceDeadVoter { dead, with: j.id },
            ));
        }
        // More voters than the spec wants: drop the dead one and demote a
        // live follower, keeping the count odd.
        let live_follower = followers.iter().copied().find(|id| !self.dead_id(*id));
        if config.voter_count() >= self.target_voters() + 2
            && let Some(f) = live_follower.and_then(|id| config.servers.get(&id).cloned())
        {
            return Some(MembershipChange::new(
                vec![f.with_role(MemberRole::Observer)],
                vec![dead],
                ChangeReason::RemoveDeadVoterDemote {
                    dead,
                    demoted: f.id,
                },
            ));
        }
        // No joiner is coming when no more members are wanted: an observer
        // becomes the replacement. Promoting it while a voter is down can
        // fail, so it leaves first and rejoins as a participant next.
        // Only standbys that have served a while, when there are any
        // (raft-autopilot's rule).
        let mut observers: Vec<_> = r
            .live_observers
            .iter()
            .filter_map(|id| config.servers.get(id).cloned())
            .collect();
        if observers.iter().any(|s| self.stable_standby(s.id)) {
            observers.retain(|s| self.stable_standby(s.id));
        }
        let standing_in = !self.p.voters_down.is_empty();
        if (r.active >= self.replicas() as usize || standing_in)
            && let Some(observer) = self
                .spread_over_zones(config, observers)
                .first()
                .map(|s| s.id)
        {
            return Some(MembershipChange::new(
                vec![],
                vec![observer],
                ChangeReason::ObserverRejoinsForDeadVoter { observer, dead },
            ));
        }
        None
    }

    /// More members than wanted: an observer leaves, else a voter leaves and
    /// another is demoted (two votes: only while that leaves the target).
    fn scale_in(
        &self,
        config: &DynamicConfig,
        r: &Roster<'_>,
        followers: &[ServerId],
    ) -> Option<MembershipChange> {
        if let Some(&observer) = r.live_observers.iter().max() {
            return Some(MembershipChange::new(
                vec![],
                vec![observer],
                ChangeReason::ScaleInObserver { observer },
            ));
        }
        // An observer that is not serving yet (one just demoted re-syncs) is
        // waited for, not replaced by another voter's removal.
        if config.voter_count() >= self.target_voters() + 2 && followers.len() >= 2 {
            let (gone, demoted) = (followers[0], followers[1]);
            let joining = vec![
                config
                    .servers
                    .get(&demoted)?
                    .with_role(MemberRole::Observer),
            ];
            return Some(MembershipChange::new(
                joining,
                vec![gone],
                ChangeReason::ScaleInVoter { gone, demoted },
            ));
        }
        None
    }

    /// Voters in pairs toward the target; then a joiner as an observer.
    fn voter_count_change(
        &self,
        config: &DynamicConfig,
        r: &Roster<'_>,
        followers: &[ServerId],
    ) -> Option<MembershipChange> {
        let v = config.voter_count();
        let target = self.target_voters();
        let server = |id: &ServerId| config.servers.get(id).cloned();
        if v < target {
            let mut candidates: Vec<Server> = r.live_observers.iter().filter_map(server).collect();
            candidates.extend(r.joiners.iter().map(|m| m.server.clone()));
            let candidates = self.spread_over_zones(config, candidates);
            if candidates.len() < 2 {
                return None;
            }
            let joining: Vec<Server> = candidates[..2]
                .iter()
                .map(|s| s.with_role(MemberRole::Participant))
                .collect();
            let ids = joining.iter().map(|s| s.id).collect();
            return Some(MembershipChange::new(
                joining,
                vec![],
                ChangeReason::AddVoters { ids },
            ));
        }
        if v > target && followers.len() >= 2 {
            let joining: Vec<Server> = followers[..2]
                .iter()
                .filter_map(server)
                .map(|s| s.with_role(MemberRole::Observer))
                .collect();
            let ids = joining.iter().map(|s| s.id).collect();
            return Some(MembershipChange::new(
                joining,
                vec![],
                ChangeReason::DemoteVoters { ids },
            ));
        }
        let j = r.joiners.first()?;
        (r.active < self.replicas() as usize).then(|| {
            MembershipChange::new(
                vec![j.server.with_role(MemberRole::Observer)],
                vec![],
                ChangeReason::AddObserver { id: j.id },
            )
        })
    }

    /// A change promoting an observer whose promotion ZooKeeper refused
    /// before becomes that observer's removal: it rejoins as a participant.
    fn rejoin_instead(&self, config: &DynamicConfig, change: MembershipChange) -> MembershipChange {
        let refused = change.joining.iter().find(|j| {
            j.role == MemberRole::Participant
                && config.role_of(j.id) == Some(MemberRole::Observer)
                && self.p.promote_by_rejoining.contains(&j.id)
        });
        match refused {
            Some(j) => MembershipChange::new(
                vec![],
                vec![j.id],
                ChangeReason::ObserverRejoinsForPromotion { observer: j.id },
            ),
            None => change,
        }
    }

    /// Builds the step, refusing any change that would break the membership rules.
    pub(super) fn reconfig_step(
        &self,
        config: &DynamicConfig,
        leader: Option<ServerId>,
        change: MembershipChange,
    ) -> Option<Step> {
        let MembershipChange {
            joining,
            leaving,
            why,
        } = change;
        let from_version = config.version?;
        // Lines as the config lists them at this TLS stage (member records
        // keep the client part they were claimed with).
        let joining: Vec<_> = joining.iter().map(|s| self.as_configured(s)).collect();
        if !reconfig_is_safe(config, &joining, &leaving, |id| self.serving_id(id)) {
            return None;
        }
        let after = config.apply(&joining, &leaving);
        // Run it through a serving voter that stays a voter; the leader if it stays.
        let stays = |id: ServerId| after.role_of(id) == Some(MemberRole::Participant);
        let via = leader
            .filter(|l| stays(*l))
            .or_else(|| {
                config
                    .voters()
                    .map(|s| s.id)
                    .find(|id| stays(*id) && self.serving_id(*id))
            })
            .and_then(|id| self.p.members.get(&id))?;
        // Observers that leave while a voter is dead come back as its
        // replacement, and those whose promotion was refused as participants.
        let voter_dead = config.voters().any(|s| self.dead_id(s.id));
        let rejoining = leaving
            .iter()
            .copied()
            .filter(|id| {
                (voter_dead || self.p.promote_by_rejoining.contains(id))
                    && config.role_of(*id) == Some(MemberRole::Observer)
                    && self.serving_id(*id)
            })
            .collect();
        Some(Step::Reconfig {
            pending: PendingReconfig {
                order: ReconfigOrder {
                    seq: self.p.next_seq,
                    from_version,
                    joining,
                    leaving,
                },
                via: via.instance.clone(),
                purpose: why.to_string(),
                rejoining,
                issued_at_ms: self.obs.now_ms,
            },
        })
    }
}

/// Members by where they stand in the config (see [`Ctx::roster`]).
struct Roster<'c> {
    dead_voters: Vec<ServerId>,
    dead_observers: Vec<ServerId>,
    live_observers: Vec<ServerId>,
    /// Members of the config not dead.
    active: usize,
    /// Live members outside the config, not retiring.
    outside: Vec<&'c MemberRecord>,
    /// Of those, started joiners that serve.
    joiners: Vec<&'c MemberRecord>,
}
