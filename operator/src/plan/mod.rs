//! The planner: a pure function from (spec, observed, persisted) to the steps
//! still needed, first step first. No I/O, no clock, no async: everything it
//! knows comes in through its arguments, so it is tested from known inputs.
//!
//! Membership rules it never breaks (see `../shared/ARCHITECTURE.md`):
//! - at most one reconfig in flight;
//! - every config a reconfig produces has an odd number of voters, and enough
//!   serving voters for a majority of both the old and the new config;
//! - a fresh ensemble is bootstrapped only when the persisted state never held one;
//! - a member leaves the config before its instance is terminated by us;
//! - joiners start as observers of the current config, and no more of them are
//!   started than the next reconfig adds.

use std::time::Duration;

use zkop_spec::ValidatedCluster;
use zkop_spec::cluster::{QuorumLossPolicy, TotalLossPolicy};
use zkop_spec::wire::{AgentReport, ReconfigOrder};
use zkop_spec::zk::{DynamicConfig, MemberRole, Server, ServerId, ServerMode, Zxid};

use crate::desired::spec_settings;

use crate::model::{InstanceState, MemberRecord, Observed, PendingReconfig, Persisted};

#[cfg(test)]
mod tests;

/// How long an agent may take to answer a reconfig order before it is abandoned.
pub const RECONFIG_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the cluster stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Never bootstrapped; waiting for instances.
    Pending,
    /// Bootstrapped; the first leader is not there yet.
    Bootstrapping,
    /// Membership equals the spec and every member is healthy.
    Running,
    /// Working toward the spec.
    Reconciling,
    /// No leader: nothing can be reconfigured (yet within `healing.detectAfter`).
    Degraded,
    /// No leader for `healing.detectAfter` with fewer than a majority of the
    /// voters reachable: the quorum is lost.
    QuorumLost,
}

impl Phase {
    /// The phase as `zkop status` and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Bootstrapping => "Bootstrapping",
            Phase::Running => "Running",
            Phase::Reconciling => "Reconciling",
            Phase::Degraded => "Degraded",
            Phase::QuorumLost => "QuorumLost",
        }
    }

    /// Every phase, for metrics.
    pub const ALL: [Phase; 6] = [
        Phase::Pending,
        Phase::Bootstrapping,
        Phase::Running,
        Phase::Reconciling,
        Phase::Degraded,
        Phase::QuorumLost,
    ];
}

/// One thing to do to the fleet, the ledger, the persisted state or ZooKeeper.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A member reports a newer committed config than the one persisted.
    RecordConfig {
        /// The newer config.
        config: DynamicConfig,
    },
    /// The reconfig in flight succeeded.
    CompleteReconfig {
        /// Its seq.
        seq: u64,
        /// The config it produced.
        config: DynamicConfig,
    },
    /// The reconfig in flight failed or went unanswered; re-observe and retry later.
    FailReconfig {
        /// Its seq.
        seq: u64,
        /// Why.
        error: String,
    },
    /// Ask the fleet for this many instances.
    SetDesiredCapacity {
        /// Instances wanted.
        capacity: u32,
    },
    /// Claim the next free server id for an instance.
    ClaimId {
        /// The instance.
        instance: String,
        /// The address its agent advertises.
        address: String,
    },
    /// Start a fresh ensemble of these servers (all participants).
    Bootstrap {
        /// The initial config.
        config: DynamicConfig,
    },
    /// Start a member as a joiner: the current config plus itself as an observer.
    StartJoiner {
        /// The member.
        id: ServerId,
        /// Its initial config.
        initial_config: DynamicConfig,
    },
    /// Hand a reconfig order to an agent.
    Reconfig {
        /// The order and where it goes.
        pending: PendingReconfig,
    },
    /// Terminate an instance (its member has left the config, or it has none),
    /// lowering the fleet's desired capacity by one.
    TerminateInstance {
        /// The instance.
        instance: String,
    },
    /// Tag a member's instance with its cluster and id, and protect it from
    /// scale-in.
    AdoptInstance {
        /// The member.
        id: ServerId,
    },
    /// A member outside the config that is no longer wanted (the spec shrank
    /// before it joined): it stops, and its instance is terminated next.
    RetireMember {
        /// The member.
        id: ServerId,
    },
    /// Let an instance held by a termination lifecycle hook go: its member (if
    /// any) has left the config.
    CompleteLifecycleAction {
        /// The instance.
        instance: String,
    },
    /// Fence a lost voter off: terminate its instance (it is replaced).
    FenceInstance {
        /// The instance.
        instance: String,
    },
    /// Restart the survivors of a lost quorum under a config of their own.
    ForceConfig {
        /// The survivors' config, versioned just above the last committed one.
        config: DynamicConfig,
        /// Reachable voters left out (an even survivor count): they retire.
        left_out: Vec<ServerId>,
        /// What the event says: survivors, their zxids, what may be lost.
        summary: String,
    },
    /// Drop a member whose instance is gone and that is no longer in the config,
    /// releasing its id.
    ForgetMember {
        /// The member.
        id: ServerId,
    },
    /// Restart one member under the spec's settings (a rolling restart).
    RestartMember {
        /// The member.
        id: ServerId,
        /// The leader's zxid now: the member must reach it before the next.
        leader_zxid: Option<Zxid>,
        /// Its role, for the event.
        role: String,
        /// Members still to restart after it.
        left: usize,
    },
    /// `zkop roll`: raise the restart generation so every member restarts.
    BeginRoll,
    /// `zkop replace`: record that the member on this instance is replaced.
    ReplaceInstance {
        /// The instance.
        instance: String,
    },
    /// The last member of a rolling restart serves again: the roll-out is done.
    FinishRollout,
    /// No member survived and `healing.onTotalLoss: bootstrap` allows it: give
    /// the lost ensemble up, so that a fresh, empty one is bootstrapped next.
    DiscardEnsemble {
        /// The lost members (all fenced).
        lost: Vec<ServerId>,
    },
}

impl Step {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::RecordConfig { .. } => "record_config",
            Step::CompleteReconfig { .. } => "complete_reconfig",
            Step::FailReconfig { .. } => "fail_reconfig",
            Step::SetDesiredCapacity { .. } => "set_desired_capacity",
            Step::ClaimId { .. } => "claim_id",
            Step::Bootstrap { .. } => "bootstrap",
            Step::StartJoiner { .. } => "start_joiner",
            Step::Reconfig { .. } => "reconfig",
            Step::TerminateInstance { .. } => "terminate_instance",
            Step::AdoptInstance { .. } => "adopt_instance",
            Step::RetireMember { .. } => "retire_member",
            Step::CompleteLifecycleAction { .. } => "complete_lifecycle_action",
            Step::FenceInstance { .. } => "fence_instance",
            Step::ForceConfig { .. } => "force_config",
            Step::ForgetMember { .. } => "forget_member",
            Step::DiscardEnsemble { .. } => "discard_ensemble",
            Step::RestartMember { .. } => "restart_member",
            Step::BeginRoll => "begin_roll",
            Step::ReplaceInstance { .. } => "replace_instance",
            Step::FinishRollout => "finish_rollout",
        }
    }

    /// Every kind, for metrics.
    pub const KINDS: [&'static str; 20] = [
        "record_config",
        "complete_reconfig",
        "fail_reconfig",
        "set_desired_capacity",
        "claim_id",
        "bootstrap",
        "start_joiner",
        "reconfig",
        "terminate_instance",
        "adopt_instance",
        "retire_member",
        "complete_lifecycle_action",
        "fence_instance",
        "force_config",
        "forget_member",
        "discard_ensemble",
        "restart_member",
        "begin_roll",
        "finish_rollout",
        "replace_instance",
    ];
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where the cluster stands.
    pub phase: Phase,
    /// Why, in words.
    pub reason: String,
    /// What to do, first step first; empty when there is nothing to do now.
    pub steps: Vec<Step>,
}

impl Plan {
    fn new(phase: Phase, reason: impl Into<String>, steps: Vec<Step>) -> Plan {
        Plan {
            phase,
            reason: reason.into(),
            steps,
        }
    }
}

/// Inputs bundled with the questions every rule asks of them.
struct Ctx<'a> {
    spec: &'a ValidatedCluster,
    obs: &'a Observed,
    p: &'a Persisted,
    /// Time the controller has been observing; a member with no report is not
    /// called dead before this reaches `memberDeadAfter`.
    uptime: Duration,
}

/// Plans the next steps. `uptime` is how long this controller has been observing.
pub fn plan(spec: &ValidatedCluster, obs: &Observed, p: &Persisted, uptime: Duration) -> Plan {
    let c = Ctx {
        spec,
        obs,
        p,
        uptime,
    };
    if let Some(config) = c.newer_config() {
        let reason = format!("a member reports config version {}", version_text(&config));
        return Plan::new(
            Phase::Reconciling,
            reason,
            vec![Step::RecordConfig { config }],
        );
    }
    if let Some(pending) = &p.reconfig {
        return c.follow_reconfig(pending);
    }
    let mut steps = c.housekeeping();
    if !p.ever_bootstrapped {
        return c.bootstrap(steps);
    }
    let Some(config) = p.config.as_ref() else {
        return Plan::new(
            Phase::Degraded,
            "bootstrapped, but no config is known",
            steps,
        );
    };
    let leader = c.leader(config);
    if config.version.is_none() {
        return Plan::new(Phase::Bootstrapping, "waiting for the first leader", steps);
    }
    if leader.is_none() {
        return c.leaderless(config, steps);
    }
    let (membership, reason) = c.membership(config, leader);
    steps.extend(membership);
    if steps.is_empty()
        && reason.is_empty()
        && let Some(plan) = c.rollout(config)
    {
        return plan;
    }
    if steps.is_empty() {
        let healthy = config.servers.keys().all(|id| c.serving_id(*id));
        if healthy && reason.is_empty() {
            return Plan::new(Phase::Running, "membership matches the spec", steps);
        }
        let reason = if reason.is_empty() {
            "waiting for members to serve".to_string()
        } else {
            reason
        };
        return Plan::new(Phase::Reconciling, reason, steps);
    }
    let reason = if reason.is_empty() {
        format!("next: {}", steps[0].kind())
    } else {
        reason
    };
    Plan::new(Phase::Reconciling, reason, steps)
}

fn version_text(config: &DynamicConfig) -> String {
    config
        .version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl Ctx<'_> {
    /// Members wanted: the spec's, plus one while a rolling replacement lets a
    /// new instance join before an outdated one leaves.
    fn replicas(&self) -> u32 {
        self.spec_replicas() + self.surge()
    }

    /// Members the spec wants: `spec.replicas`, or with an externally scaled
    /// group, every instance it has.
    fn spec_replicas(&self) -> u32 {
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
    fn target_voters(&self) -> usize {
        self.spec
            .target_voters_for(self.spec_replicas().max(self.spec.voters_min))
    }

    /// Members of `config` on instances launched from another launch template
    /// version than the fleet launches from now.
    fn outdated_members(&self, config: &DynamicConfig) -> Vec<&MemberRecord> {
        config
            .servers
            .keys()
            .filter_map(|id| self.p.members.get(id))
            .filter(|m| !m.retiring && self.outdated(m))
            .collect()
    }

    /// To be replaced: launched from another launch template version than
    /// the fleet launches from now, or named by `zkop replace`.
    fn outdated(&self, m: &MemberRecord) -> bool {
        self.obs.outdated(&m.instance) || self.p.replace.contains(&m.instance)
    }

    /// 1 while a rolling replacement is under way: a member of the config is
    /// on an outdated instance, no roll-out is in progress, and the last
    /// replaced member's instance is gone (one replacement at a time). The
    /// extra member is the new instance's, joining before the old one leaves.
    fn surge(&self) -> u32 {
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
    fn rank(&self, config: &DynamicConfig, m: &MemberRecord) -> (u8, &'static str) {
        match self.mode(m) {
            Some(ServerMode::Observer) => (0, "observer"),
            Some(ServerMode::Leader) => (2, "leader"),
            _ if config.role_of(m.id) == Some(MemberRole::Observer) => (0, "observer"),
            _ => (1, "follower"),
        }
    }

    /// Why a member is replaced, for events: the launch template version its
    /// instance was launched from, or `zkop replace`.
    fn replaced_because(&self, instance: &str) -> String {
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

    fn dead_after(&self) -> Duration {
        self.spec.member_dead_after()
    }

    fn fresh_report(&self, instance: &str) -> Option<&AgentReport> {
        self.obs
            .reports
            .get(instance)
            .filter(|r| r.age < self.dead_after())
            .map(|r| &r.report)
    }

    fn record_of_instance(&self, instance: &str) -> Option<&MemberRecord> {
        self.p.members.values().find(|m| m.instance == instance)
    }

    /// Dead: its instance is gone, or its agent has been silent for `memberDeadAfter`.
    fn dead(&self, m: &MemberRecord) -> bool {
        if !self.obs.instance_up(&m.instance) {
            return true;
        }
        match self.obs.reports.get(&m.instance) {
            Some(r) => r.age >= self.dead_after(),
            None => self.uptime >= self.dead_after(),
        }
    }

    fn dead_id(&self, id: ServerId) -> bool {
        self.p.members.get(&id).is_none_or(|m| self.dead(m))
    }

    /// Serving: alive, its agent runs this id, and its server has a quorum.
    fn serving(&self, m: &MemberRecord) -> bool {
        self.obs.instance_up(&m.instance)
            && self.fresh_report(&m.instance).is_some_and(|r| {
                r.server_id == Some(m.id) && r.probe.as_ref().is_some_and(|p| p.serving)
            })
    }

    fn serving_id(&self, id: ServerId) -> bool {
        self.p.members.get(&id).is_some_and(|m| self.serving(m))
    }

    fn mode(&self, m: &MemberRecord) -> Option<ServerMode> {
        self.fresh_report(&m.instance)
            .filter(|r| r.server_id == Some(m.id))
            .and_then(|r| r.probe.as_ref())
            .and_then(|p| p.mode)
    }

    fn leader(&self, config: &DynamicConfig) -> Option<ServerId> {
        config
            .voters()
            .filter_map(|s| self.p.members.get(&s.id))
            .find(|m| self.serving(m) && self.mode(m) == Some(ServerMode::Leader))
            .map(|m| m.id)
    }

    /// No leader: within `detectAfter` a pause; after it, with fewer than a
    /// majority of voters reachable, a lost quorum (reported, nothing changed).
    fn leaderless(&self, config: &DynamicConfig, steps: Vec<Step>) -> Plan {
        let detect_after = self.spec.healing.detect_after;
        let waited = self.obs.leaderless_for;
        let reachable: Vec<&MemberRecord> = config
            .voters()
            .filter_map(|s| self.p.members.get(&s.id))
            // Reachable: its agent reports and its server answers probes (a
            // paused server does not).
            .filter(|m| {
                self.obs.instance_up(&m.instance)
                    && self
                        .fresh_report(&m.instance)
                        .is_some_and(|r| r.server_id == Some(m.id) && r.probe.is_some())
            })
            .collect();
        let lost: Vec<ServerId> = config
            .voters()
            .map(|s| s.id)
            .filter(|id| !reachable.iter().any(|m| m.id == *id))
            .collect();
        if waited < detect_after || reachable.len() >= config.majority() {
            let reason = format!(
                "no leader for {}s: {} of {} voters reachable",
                waited.as_secs(),
                reachable.len(),
                config.voter_count()
            );
            return Plan::new(Phase::Degraded, reason, steps);
        }
        if reachable.is_empty() && config.servers.keys().all(|id| self.dead_id(*id)) {
            return self.total_loss(config, steps);
        }
        let lost_text: Vec<String> = lost.iter().map(ServerId::to_string).collect();
        let survivors: Vec<String> = reachable
            .iter()
            .map(|m| {
                let r = self.fresh_report(&m.instance);
                let zxid = r
                    .and_then(|r| r.probe.as_ref().and_then(|p| p.zxid).or(r.disk_zxid))
                    .map(|z| z.to_string())
                    .unwrap_or_else(|| "unknown".into());
                format!("{} (zxid {zxid})", m.id)
            })
            .collect();
        let policy = self.spec.healing.quorum_loss;
        let reason = format!(
            "quorum lost: {} of {} voters reachable, survivors [{}], lost voters [{}], no leader for {}s; healing.quorumLoss: {}{}",
            reachable.len(),
            config.voter_count(),
            survivors.join(", "),
            lost_text.join(", "),
            waited.as_secs(),
            format!("{policy:?}").to_lowercase(),
            match policy {
                QuorumLossPolicy::Wait => ": nothing is changed until a person acts",
                QuorumLossPolicy::Recover if reachable.is_empty() =>
                    ": no voter answers, so there is no survivor to recover from yet",
                QuorumLossPolicy::Recover => "",
            }
        );
        if reachable.is_empty() || policy == QuorumLossPolicy::Wait {
            return Plan::new(Phase::QuorumLost, reason, steps);
        }
        self.recover(config, &reachable, &lost, steps)
    }

    /// Recovery from the survivors: fence every lost voter, then restart the
    /// survivors with the highest zxids under a config of their own.
    fn recover(
        &self,
        config: &DynamicConfig,
        reachable: &[&MemberRecord],
        lost: &[ServerId],
        mut steps: Vec<Step>,
    ) -> Plan {
        if let Some(plan) = self.fence_first(lost, "recovering", &mut steps) {
            return plan;
        }
        let mut known = Vec::new();
        for m in reachable {
            let r = self.fresh_report(&m.instance);
            let zxid = r.and_then(|r| r.probe.as_ref().and_then(|p| p.zxid).or(r.disk_zxid));
            let version = r.and_then(|r| r.disk_config_version);
            match (zxid, version) {
                (Some(z), Some(v)) => known.push((z, v, *m)),
                _ => {
                    let reason = format!(
                        "quorum lost: waiting for survivor {} to report its zxid and config version",
                        m.id
                    );
                    return Plan::new(Phase::QuorumLost, reason, steps);
                }
            }
        }
        // The highest zxids first; an odd number of them.
        known.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.id.cmp(&b.2.id)));
        let keep = zkop_spec::validate::largest_odd_at_most(known.len() as u32) as usize;
        let (chosen, left) = known.split_at(keep);
        let version = chosen
            .iter()
            .map(|k| k.1)
            .max()
            .map(|v| zkop_spec::zk::ConfigVersion(v.0 + 1));
        let forced = DynamicConfig {
            version,
            ..DynamicConfig::of(chosen.iter().map(|k| {
                config
                    .servers
                    .get(&k.2.id)
                    .cloned()
                    .unwrap_or_else(|| k.2.server.clone())
                    .with_role(MemberRole::Participant)
            }))
        };
        let best = chosen[0].0;
        let lost_txns = match self.p.max_zxid_seen {
            Some(max) if max <= best => "none".to_string(),
            Some(max) => max
                .lead_over(best)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "unknown".into()),
            None => "unknown".into(),
        };
        let survivors: Vec<String> = chosen
            .iter()
            .map(|k| format!("{} (zxid {})", k.2.id, k.0))
            .collect();
        let lost_text: Vec<String> = lost.iter().map(ServerId::to_string).collect();
        let summary = format!(
            "quorum recovered from survivors [{}] under config version {}; lost voters [{}] fenced; transactions possibly lost: {lost_txns}",
            survivors.join(", "),
            forced.version.map(|v| v.to_string()).unwrap_or_default(),
            lost_text.join(", ")
        );
        steps.insert(
            0,
            Step::ForceConfig {
                config: forced,
                left_out: left.iter().map(|k| k.2.id).collect(),
                summary,
            },
        );
        Plan::new(
            Phase::QuorumLost,
            "quorum lost: restarting the survivors under their own config",
            steps,
        )
    }

    /// Fences the first of `lost` whose instance is not confirmed gone; `None`
    /// once all are.
    fn fence_first(&self, lost: &[ServerId], before: &str, steps: &mut Vec<Step>) -> Option<Plan> {
        let unfenced: Vec<&MemberRecord> = lost
            .iter()
            .filter_map(|id| self.p.members.get(id))
            .filter(|m| !self.obs.instance_gone(&m.instance))
            .collect();
        let first = unfenced.first()?;
        steps.insert(
            0,
            Step::FenceInstance {
                instance: first.instance.clone(),
            },
        );
        let ids: Vec<String> = unfenced.iter().map(|m| m.id.to_string()).collect();
        Some(Plan::new(
            Phase::QuorumLost,
            format!(
                "quorum lost: fencing lost members [{}] before {before}",
                ids.join(", ")
            ),
            std::mem::take(steps),
        ))
    }

    /// No member of the config survives: report (`onTotalLoss: wait`), or fence
    /// them all and give the ensemble up for a fresh one (`bootstrap`).
    fn total_loss(&self, config: &DynamicConfig, mut steps: Vec<Step>) -> Plan {
        let lost: Vec<ServerId> = config.servers.keys().copied().collect();
        let lost_text: Vec<String> = lost.iter().map(ServerId::to_string).collect();
        match self.spec.healing.on_total_loss {
            TotalLossPolicy::Wait => Plan::new(
                Phase::QuorumLost,
                format!(
                    "total loss: no member of the ensemble survives (lost [{}]); bootstrapping a fresh ensemble would lose all data, so nothing is done (healing.onTotalLoss: wait)",
                    lost_text.join(", ")
                ),
                steps,
            ),
            TotalLossPolicy::Bootstrap => {
                if let Some(plan) =
                    self.fence_first(&lost, "bootstrapping a fresh ensemble", &mut steps)
                {
                    return plan;
                }
                steps.insert(0, Step::DiscardEnsemble { lost });
                Plan::new(
                    Phase::QuorumLost,
                    format!(
                        "total loss: no member of the ensemble survives (lost [{}]); healing.onTotalLoss: bootstrap: a fresh, empty ensemble replaces it",
                        lost_text.join(", ")
                    ),
                    steps,
                )
            }
        }
    }

    /// A rolling restart: members whose settings differ from the spec's restart
    /// one at a time (observers, then followers, the leader last), each once
    /// the previous one serves again and has caught up with the leader.
    fn rollout(&self, config: &DynamicConfig) -> Option<Plan> {
        let want = spec_settings(self.spec, self.p);
        let runs_wanted = |m: &MemberRecord| m.settings.as_ref().is_none_or(|s| *s == want);
        let listed: Vec<&MemberRecord> = config
            .servers
            .keys()
            .filter_map(|id| self.p.members.get(id))
            .collect();
        let stale = listed.iter().filter(|m| !runs_wanted(m)).count();
        // An epoch's opening zxid is no transaction to catch up to (a member
        // serves only once synced with the leader anyway).
        let leader_zxid = listed
            .iter()
            .find(|m| self.mode(m) == Some(ServerMode::Leader))
            .and_then(|m| self.fresh_report(&m.instance))
            .and_then(|r| r.probe.as_ref()?.zxid)
            .filter(|z| z.is_transaction());
        // A roll-out in progress lasts until its last member serves again;
        // a member that fails later is the ordinary health checks' business.
        let finish = || {
            Some(Plan::new(
                Phase::Reconciling,
                "roll-out: every member runs the new settings",
                vec![Step::FinishRollout],
            ))
        };
        if let Some(last) = &self.p.rollout {
            let Some(m) = self
                .p
                .members
                .get(&last.member)
                .filter(|m| listed.iter().any(|l| l.id == m.id))
            else {
                return if stale == 0 { finish() } else { None };
            };
            let report = self.fresh_report(&m.instance);
            let zxid = report.and_then(|r| r.probe.as_ref()?.zxid);
            let back = self.serving(m)
                && report.and_then(|r| r.settings.as_ref()) == m.settings.as_ref()
                && zxid >= last.leader_zxid;
            if !back {
                if !runs_wanted(m) {
                    // The spec changed again while it was down: it takes the
                    // new settings at once (it is down already).
                    return Some(Plan::new(
                        Phase::Reconciling,
                        format!(
                            "roll-out: member {} restarts again with the newer settings",
                            m.id
                        ),
                        vec![Step::RestartMember {
                            id: m.id,
                            leader_zxid: last.leader_zxid,
                            role: "again".into(),
                            left: stale.saturating_sub(1),
                        }],
                    ));
                }
                let waited = Duration::from_millis(self.obs.now_ms.saturating_sub(last.at_ms));
                if waited >= self.spec.rollout_timeout {
                    let why = report
                        .and_then(|r| r.errors.last().cloned().or(r.process.last_exit.clone()))
                        .unwrap_or_else(|| "no report from its agent".into());
                    return Some(Plan::new(
                        Phase::Degraded,
                        format!(
                            "roll-out halted: member {} on {} did not serve again within rollout.timeout ({}s) after its restart ({why}); {stale} member(s) not restarted and left untouched",
                            m.id,
                            m.instance,
                            self.spec.rollout_timeout.as_secs()
                        ),
                        vec![],
                    ));
                }
                return Some(Plan::new(
                    Phase::Reconciling,
                    format!(
                        "roll-out: waiting for member {} to serve again and catch up ({}s so far)",
                        m.id,
                        waited.as_secs()
                    ),
                    vec![],
                ));
            }
            if stale == 0 {
                return finish();
            }
        }
        if stale == 0 || !listed.iter().all(|m| self.serving(m)) {
            return None;
        }
        let next = listed
            .iter()
            .filter(|m| !runs_wanted(m))
            .min_by_key(|m| (self.rank(config, m).0, m.id))?;
        let role = self.rank(config, next).1;
        Some(Plan::new(
            Phase::Reconciling,
            format!(
                "roll-out: restarting member {} ({role}), {stale} to go",
                next.id
            ),
            vec![Step::RestartMember {
                id: next.id,
                leader_zxid,
                role: role.into(),
                left: stale - 1,
            }],
        ))
    }

    /// The newest config a serving member reports, if newer than the persisted one.
    fn newer_config(&self) -> Option<DynamicConfig> {
        let known = self.p.config.as_ref().and_then(|c| c.version);
        self.p
            .members
            .values()
            .filter(|m| self.serving(m))
            .filter_map(|m| {
                self.fresh_report(&m.instance)?
                    .probe
                    .as_ref()?
                    .config
                    .clone()
            })
            .filter(|c| c.version.is_some() && c.version > known)
            .max_by_key(|c| c.version)
    }

    fn follow_reconfig(&self, pending: &PendingReconfig) -> Plan {
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

    /// Fleet and ledger hygiene that is always safe.
    fn housekeeping(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.obs.roll_requested {
            steps.push(Step::BeginRoll);
        }
        for instance in &self.obs.replace_requested {
            steps.push(Step::ReplaceInstance {
                instance: instance.clone(),
            });
        }
        let config = self.p.config.as_ref();
        for m in self.p.members.values() {
            let listed = m.role_in(config).is_some();
            let up = self.obs.instance_up(&m.instance);
            if self.obs.instance_gone(&m.instance) && !listed {
                steps.push(Step::ForgetMember { id: m.id });
            } else if up && !listed && m.retiring {
                steps.push(Step::TerminateInstance {
                    instance: m.instance.clone(),
                });
            } else if up && !m.retiring && !m.adopted {
                steps.push(Step::AdoptInstance { id: m.id });
            }
        }
        // Instances a termination hook holds: let them go once no member of
        // theirs is in the config.
        for i in self
            .obs
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Terminating)
        {
            let listed = self
                .p
                .members
                .values()
                .any(|m| m.instance == i.id && m.role_in(config).is_some());
            if !listed {
                steps.push(Step::CompleteLifecycleAction {
                    instance: i.id.clone(),
                });
            }
        }
        let replicas = self.replicas();
        let up: Vec<&str> = self
            .obs
            .instances
            .iter()
            .filter(|i| self.obs.instance_up(&i.id))
            .map(|i| i.id.as_str())
            .collect();
        if self.spec.externally_scaled() {
            // The group's own policies size it.
        } else if self.obs.desired_capacity < replicas {
            steps.push(Step::SetDesiredCapacity { capacity: replicas });
        } else if self.obs.desired_capacity > replicas.max(up.len() as u32) {
            steps.push(Step::SetDesiredCapacity {
                capacity: replicas.max(up.len() as u32),
            });
        }
        // Spare instances that hold no member, beyond what the spec wants.
        let holding = up
            .iter()
            .filter(|i| self.record_of_instance(i).is_some_and(|m| !m.retiring))
            .count();
        let mut spare = (up.len() as u32).saturating_sub(replicas.max(holding as u32));
        for i in up.iter().rev() {
            if spare == 0 {
                break;
            }
            if self.record_of_instance(i).is_none() {
                steps.push(Step::TerminateInstance {
                    instance: i.to_string(),
                });
                spare -= 1;
            }
        }
        steps
    }

    /// An up instance with a report and no member, to claim an id for.
    fn claim_candidate(&self) -> Option<Step> {
        self.obs
            .instances
            .iter()
            .filter(|i| self.obs.instance_up(&i.id) && self.record_of_instance(&i.id).is_none())
            .find_map(|i| {
                let r = self.fresh_report(&i.id)?;
                Some(Step::ClaimId {
                    instance: i.id.clone(),
                    address: r.address.clone(),
                })
            })
    }

    fn bootstrap(&self, mut steps: Vec<Step>) -> Plan {
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

    /// The next membership change, or why there is none.
    fn membership(&self, config: &DynamicConfig, leader: Option<ServerId>) -> (Vec<Step>, String) {
        let v = config.voter_count();
        let target = self.target_voters();
        let replicas = self.replicas() as usize;
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
        let joiners: Vec<&MemberRecord> = outside
            .iter()
            .copied()
            .filter(|m| m.initial_config.is_some() && self.serving(m))
            .collect();
        let started = outside
            .iter()
            .filter(|m| m.initial_config.is_some())
            .count();
        let unstarted: Vec<&MemberRecord> = outside
            .iter()
            .copied()
            .filter(|m| m.initial_config.is_none())
            .collect();

        let reconfig_allowed = self.obs.now_ms >= self.p.reconfig_not_before_ms;
        let change = if reconfig_allowed {
            self.choose_reconfig(
                config,
                leader,
                &dead_voters,
                &dead_observers,
                &live_observers,
                &joiners,
                active,
            )
        } else {
            None
        };
        if let Some((joining, leaving, purpose)) = change
            && let Some(step) = self.reconfig_step(config, leader, joining, leaving, purpose)
        {
            return (vec![step], String::new());
        }

        let mut steps = Vec::new();
        // Members outside the config beyond what the spec and the dead voters'
        // replacements need: the newest, unstarted ones first, leave.
        if active + outside.len() > replicas + dead_voters.len()
            && let Some(m) = unstarted.last().or(outside.last())
        {
            steps.push(Step::RetireMember { id: m.id });
            return (
                steps,
                format!("{active} members are enough; member {} is not needed", m.id),
            );
        }
        // Joiners needed by the next reconfig, and no more.
        let needed = if !dead_voters.is_empty() {
            dead_voters.len()
        } else if v < target {
            2usize.saturating_sub(live_observers.len())
        } else if active < replicas {
            1
        } else {
            0
        };
        if started < needed
            && let Some(m) = unstarted.first()
        {
            let initial_config = config.with(m.server.with_role(MemberRole::Observer));
            steps.push(Step::StartJoiner {
                id: m.id,
                initial_config,
            });
        }
        if active + outside.len() < replicas
            && let Some(claim) = self.claim_candidate()
        {
            steps.push(claim);
        }
        let mut reason = String::new();
        if !dead_voters.is_empty() && steps.is_empty() {
            reason = format!("voters {dead_voters:?} are dead; waiting for replacements");
        } else if steps.is_empty() && (active != replicas || v != target || !outside.is_empty()) {
            reason = format!(
                "{active} of {replicas} members and {v} of {target} voters; waiting for instances"
            );
        }
        if steps.is_empty()
            && dead_voters.is_empty()
            && let Some(progress) = self.replacement_progress(config)
        {
            reason = progress;
        }
        (steps, reason)
    }

    /// Where a rolling replacement stands, while one is under way.
    fn replacement_progress(&self, config: &DynamicConfig) -> Option<String> {
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

    /// Picks one reconfig: (joining, leaving, purpose).
    #[allow(clippy::too_many_arguments)]
    fn choose_reconfig(
        &self,
        config: &DynamicConfig,
        leader: Option<ServerId>,
        dead_voters: &[ServerId],
        dead_observers: &[ServerId],
        live_observers: &[ServerId],
        joiners: &[&MemberRecord],
        active: usize,
    ) -> Option<(Vec<Server>, Vec<ServerId>, String)> {
        let v = config.voter_count();
        let target = self.target_voters();
        let replicas = self.replicas() as usize;
        let server = |id: ServerId| config.servers.get(&id).cloned();
        if let Some(&dead) = dead_observers.first() {
            return Some((vec![], vec![dead], format!("remove dead observer {dead}")));
        }
        if let (Some(&dead), Some(j)) = (dead_voters.first(), joiners.first()) {
            let joining = vec![j.server.with_role(MemberRole::Participant)];
            return Some((
                joining,
                vec![dead],
                format!("replace dead voter {dead} with {}", j.id),
            ));
        }
        // Non-leader voters, newest first: the ones to demote or remove first.
        let mut followers: Vec<ServerId> = config
            .voters()
            .map(|s| s.id)
            .filter(|id| Some(*id) != leader)
            .collect();
        followers.reverse();
        if let Some(&dead) = dead_voters.first() {
            // More voters than the spec wants: drop the dead one and demote a
            // live follower, keeping the count odd.
            let live_follower = followers.iter().copied().find(|id| !self.dead_id(*id));
            if v >= target + 2
                && let Some(f) = live_follower.and_then(server)
            {
                return Some((
                    vec![f.with_role(MemberRole::Observer)],
                    vec![dead],
                    format!("remove dead voter {dead}, demote {} to observer", f.id),
                ));
            }
            // No joiner is coming when no more members are wanted: an observer
            // becomes the replacement. Promoting it while a voter is down can
            // fail, so it leaves first and rejoins as a participant next.
            if active >= replicas
                && let Some(&o) = live_observers.iter().min()
            {
                return Some((
                    vec![],
                    vec![o],
                    format!(
                        "observer {o} leaves to rejoin as the replacement of dead voter {dead}"
                    ),
                ));
            }
            return None;
        }
        if let Some(swap) = self.replacement(config, live_observers, active) {
            return Some(swap);
        }
        if active > replicas {
            if let Some(&o) = live_observers.iter().max() {
                return Some((vec![], vec![o], format!("scale in: remove observer {o}")));
            }
            // Removing one voter and demoting another takes two votes: only
            // while that leaves the target. An observer that is not serving
            // yet (one just demoted re-syncs) is waited for, not replaced by
            // another voter's removal.
            if v >= target + 2 && followers.len() >= 2 {
                let (gone, demoted) = (followers[0], followers[1]);
                let joining = vec![server(demoted)?.with_role(MemberRole::Observer)];
                return Some((
                    joining,
                    vec![gone],
                    format!("scale in: remove voter {gone}, demote {demoted} to observer"),
                ));
            }
            return None;
        }
        if v < target {
            let mut candidates: Vec<Server> =
                live_observers.iter().filter_map(|id| server(*id)).collect();
            candidates.extend(joiners.iter().map(|m| m.server.clone()));
            if candidates.len() >= 2 {
                let joining: Vec<Server> = candidates[..2]
                    .iter()
                    .map(|s| s.with_role(MemberRole::Participant))
                    .collect();
                let ids: Vec<u64> = joining.iter().map(|s| s.id.0).collect();
                return Some((joining, vec![], format!("add voters {ids:?}")));
            }
            return None;
        }
        if v > target && followers.len() >= 2 {
            let joining: Vec<Server> = followers[..2]
                .iter()
                .filter_map(|id| server(*id))
                .map(|s| s.with_role(MemberRole::Observer))
                .collect();
            let ids: Vec<u64> = joining.iter().map(|s| s.id.0).collect();
            return Some((
                joining,
                vec![],
                format!("demote voters {ids:?} to observers"),
            ));
        }
        if let Some(j) = joiners.first()
            && active < replicas
        {
            let joining = vec![j.server.with_role(MemberRole::Observer)];
            return Some((joining, vec![], format!("add observer {}", j.id)));
        }
        None
    }

    /// A rolling replacement's swap, once the new instance's member serves as
    /// an observer: the next outdated member leaves the config, a voter handing
    /// its vote to a member on the current launch template version. Only on a
    /// healthy ensemble: every member serves and the voter count is the spec's.
    fn replacement(
        &self,
        config: &DynamicConfig,
        live_observers: &[ServerId],
        active: usize,
    ) -> Option<(Vec<Server>, Vec<ServerId>, String)> {
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
        let why = self.replaced_because(&old.instance);
        let to = self
            .obs
            .launch_template
            .as_deref()
            .map(|t| format!(" (launch template {t})"))
            .unwrap_or_default();
        if config.role_of(old.id) == Some(MemberRole::Observer) {
            let purpose = format!(
                "rolling replacement: observer {} on {} ({why}) leaves",
                old.id, old.instance
            );
            return Some((vec![], vec![old.id], purpose));
        }
        let new = live_observers
            .iter()
            .filter_map(|id| self.p.members.get(id))
            .filter(|m| !self.outdated(m))
            .min_by_key(|m| m.id)?;
        let purpose = format!(
            "rolling replacement: {role} {} on {} ({why}) hands its vote to {} on {}{to}",
            old.id, old.instance, new.id, new.instance
        );
        let joining = config
            .servers
            .get(&new.id)?
            .with_role(MemberRole::Participant);
        Some((vec![joining], vec![old.id], purpose))
    }

    /// Builds the step, refusing any change that would break the membership rules.
    fn reconfig_step(
        &self,
        config: &DynamicConfig,
        leader: Option<ServerId>,
        joining: Vec<Server>,
        leaving: Vec<ServerId>,
        purpose: String,
    ) -> Option<Step> {
        let from_version = config.version?;
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
        // Observers that leave while a voter is dead come back as its replacement.
        let rejoining = if config.voters().any(|s| self.dead_id(s.id)) {
            leaving
                .iter()
                .copied()
                .filter(|id| {
                    config.role_of(*id) == Some(MemberRole::Observer) && self.serving_id(*id)
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(Step::Reconfig {
            pending: PendingReconfig {
                order: ReconfigOrder {
                    seq: self.p.next_seq,
                    from_version,
                    joining,
                    leaving,
                },
                via: via.instance.clone(),
                purpose,
                rejoining,
                issued_at_ms: self.obs.now_ms,
            },
        })
    }
}

/// Whether an incremental reconfig keeps the membership rules: the new config has
/// an odd number of voters (at least one), and both the old and the new config keep
/// a majority of serving voters.
pub fn reconfig_is_safe(
    config: &DynamicConfig,
    joining: &[Server],
    leaving: &[ServerId],
    serving: impl Fn(ServerId) -> bool,
) -> bool {
    let after = config.apply(joining, leaving);
    let voters_after = after.voter_count();
    let serving_before = config.voters().filter(|s| serving(s.id)).count();
    let serving_after = after.voters().filter(|s| serving(s.id)).count();
    voters_after % 2 == 1
        && serving_before >= config.majority()
        && serving_after >= after.majority()
}
