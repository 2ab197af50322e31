//! No leader: a pause, a lost quorum recovered from its survivors, or a
//! total loss.

use zkop_spec::cluster::{QuorumLossPolicy, TotalLossPolicy};
use zkop_spec::zk::{ConfigVersion, DynamicConfig, MemberRole, ServerId, Zxid};

use super::{Ctx, Phase, Plan, Step};

/// How long every survivor must have answered probes before a recovery
/// acts on them: a few report intervals.
pub const RECOVERY_SETTLE: std::time::Duration = super::health::SERVING_FRESH;
use crate::model::{InstanceState, MemberRecord};

impl Ctx<'_> {
    /// Its agent, reporting for this id, says its server answers probes.
    fn answers_probes(&self, m: &MemberRecord) -> bool {
        self.fresh_report(&m.instance)
            .is_some_and(|r| r.server_id == Some(m.id) && r.probe.is_some())
    }

    /// Not lost: its instance is up and its agent, reporting for this id,
    /// says its server answers probes or is starting (its JVM runs and has
    /// not answered yet: a server loading its database has not opened its
    /// client port; one that answered and went silent is hung or paused, and
    /// lost); or this controller has
    /// not heard from its agent at all yet (just started, as after a whole
    /// restart) and has not observed for `memberDeadAfter`. Only a voter
    /// known to be down is lost.
    fn alive_member(&self, m: &MemberRecord) -> bool {
        if !self.obs.instance_up(&m.instance) {
            return false;
        }
        match self.fresh_report(&m.instance) {
            Some(r) => {
                let starting = r.process.running && !r.process.answered;
                r.server_id == Some(m.id) && (r.probe.is_some() || starting)
            }
            None => !self.obs.reports.contains_key(&m.instance) && self.uptime < self.dead_after(),
        }
    }

    /// No leader: within `detectAfter` a pause; after it, with fewer than a
    /// majority of voters alive, a lost quorum (reported, or recovered from
    /// the survivors).
    pub(super) fn leaderless(&self, config: &DynamicConfig, steps: Vec<Step>) -> Plan {
        let detect_after = self.spec.healing.detect_after;
        let waited = self.obs.leaderless_for;
        // Every alive member of the config may be a survivor: an observer
        // receives every commit and may be ahead of the surviving voters.
        let alive: Vec<&MemberRecord> = config
            .servers
            .keys()
            .filter_map(|id| self.p.members.get(id))
            .filter(|m| self.alive_member(m))
            .collect();
        let reachable: Vec<&MemberRecord> = alive
            .iter()
            .copied()
            .filter(|m| config.voters().any(|s| s.id == m.id))
            .collect();
        let starting = reachable.iter().filter(|m| !self.answers_probes(m)).count();
        let lost: Vec<ServerId> = config
            .voters()
            .map(|s| s.id)
            .filter(|id| !reachable.iter().any(|m| m.id == *id))
            .collect();
        if waited < detect_after || reachable.len() >= config.majority() {
            let reason = format!(
                "no leader for {}s: {} of {} voters reachable{}",
                waited.as_secs(),
                reachable.len(),
                config.voter_count(),
                if starting > 0 {
                    format!(" ({starting} starting: JVM loading, not answering yet)")
                } else {
                    String::new()
                }
            );
            return Plan::new(Phase::Degraded, reason, steps);
        }
        if alive.is_empty() && config.servers.keys().all(|id| self.dead_id(*id)) {
            return self.total_loss(config, steps);
        }
        let lost_text: Vec<String> = lost.iter().map(ServerId::to_string).collect();
        let survivors: Vec<String> = alive
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
                QuorumLossPolicy::Recover | QuorumLossPolicy::RecoverLosing if alive.is_empty() =>
                    ": no member answers, so there is no survivor to recover from yet",
                QuorumLossPolicy::Recover | QuorumLossPolicy::RecoverLosing => "",
            }
        );
        if alive.is_empty() || policy == QuorumLossPolicy::Wait {
            return Plan::new(Phase::QuorumLost, reason, steps);
        }
        if policy == QuorumLossPolicy::Recover
            && let Some(ahead) = self.lost_voter_ahead(&alive, &lost)
        {
            return Plan::new(Phase::QuorumLost, format!("{reason}: {ahead}"), steps);
        }
        if let Some(settling) = self.survivor_settling(&alive) {
            return Plan::new(Phase::QuorumLost, format!("{reason}: {settling}"), steps);
        }
        self.recover(config, &alive, &lost, steps)
    }

    /// Why recovery waits: a survivor answers again only since moments ago.
    /// Members back from a stall (a paused host, a healed partition) come
    /// back one report apart, and a majority back elects its own leader:
    /// recovering from the first few would fence the rest as they return.
    fn survivor_settling(&self, alive: &[&MemberRecord]) -> Option<String> {
        alive.iter().find_map(|m| {
            let answering = self.obs.reports.get(&m.instance)?.answering_for?;
            (answering < RECOVERY_SETTLE).then(|| {
                format!(
                    "member {} answers again only since {:.1}s: recovery waits until every survivor has answered for {}s, as the members back from a stall come back together",
                    m.id,
                    answering.as_secs_f64(),
                    RECOVERY_SETTLE.as_secs()
                )
            })
        })
    }

    /// The highest zxid this controller saw from a member, however old.
    fn last_seen_zxid(&self, m: &MemberRecord) -> Option<zkop_spec::zk::Zxid> {
        let seen = self.obs.reports.get(&m.instance)?;
        let r = &seen.report;
        [
            seen.zxid_seen,
            r.probe.as_ref().and_then(|p| p.zxid),
            r.disk_zxid,
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// Why recovery waits: a lost voter whose instance is still up was seen
    /// at a higher zxid than every survivor (a GC pause or a disk stall
    /// after it acknowledged), so forcing the survivors' config would
    /// discard transactions zkop has seen acknowledged. None when no lost
    /// voter is ahead, or when its instance is gone (its data with it).
    fn lost_voter_ahead(&self, survivors: &[&MemberRecord], lost: &[ServerId]) -> Option<String> {
        let best = survivors
            .iter()
            .filter_map(|m| self.last_seen_zxid(m))
            .max();
        let (id, zxid) = lost
            .iter()
            .filter_map(|id| self.p.members.get(id))
            .filter(|m| self.obs.instance_up(&m.instance))
            .filter_map(|m| Some((m.id, self.last_seen_zxid(m)?)))
            .filter(|(_, z)| best.is_none_or(|b| *z > b))
            .max_by_key(|(_, z)| *z)?;
        let by = match best {
            Some(b) if b.epoch == zxid.epoch => {
                format!("{} transaction(s)", zxid.counter.saturating_sub(b.counter))
            }
            Some(_) => "a later epoch".to_string(),
            None => "every transaction (no survivor's zxid is known)".to_string(),
        };
        Some(format!(
            "lost voter {id} was seen at zxid {zxid}, ahead of every survivor{} by {by}: nothing is forced until it comes back or its instance is gone (healing.quorumLoss: recoverLosing recovers anyway, losing them)",
            best.map(|b| format!(" (best {b})")).unwrap_or_default()
        ))
    }

    /// Recovery from the survivors (voters and observers): fence every lost
    /// voter, then restart the survivors under a config of their own, those
    /// with the highest zxids as voters (an odd number), the rest as
    /// observers.
    pub(super) fn recover(
        &self,
        config: &DynamicConfig,
        survivors: &[&MemberRecord],
        lost: &[ServerId],
        mut steps: Vec<Step>,
    ) -> Plan {
        if let Some(plan) = self.fence_first(lost, "recovering", &mut steps) {
            return plan;
        }
        let mut known = Vec::new();
        for m in survivors {
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
        let keep = zkop_spec::zk::largest_odd_at_most(known.len() as u32) as usize;
        let (chosen, left) = known.split_at(keep);
        let version = chosen
            .iter()
            .map(|k| k.1)
            .max()
            .map(|v| zkop_spec::zk::ConfigVersion(v.0 + 1));
        // The spare survivors (an even count) stay, as observers: never a
        // copy of the data thrown away while the ensemble is short; the
        // normal rules promote them as it grows back.
        let line = |m: &MemberRecord, role| {
            config
                .servers
                .get(&m.id)
                .cloned()
                .unwrap_or_else(|| m.server.clone())
                .with_role(role)
        };
        let forced = DynamicConfig {
            version,
            ..DynamicConfig::of(
                chosen
                    .iter()
                    .map(|k| line(k.2, MemberRole::Participant))
                    .chain(left.iter().map(|k| line(k.2, MemberRole::Observer))),
            )
        };
        let summary = self.recovery_summary(chosen, left, lost, &forced);
        steps.insert(
            0,
            Step::ForceConfig {
                config: forced,
                left_out: left.iter().map(|k| k.2.id).collect(),
                summary,
                fork: chosen.iter().map(|k| k.0).max(),
            },
        );
        Plan::new(
            Phase::QuorumLost,
            "quorum lost: restarting the survivors under their own config",
            steps,
        )
    }

    /// What a forced config's event says: the survivors that vote, the
    /// spare ones kept as observers, the lost voters, and how many
    /// transactions may have been lost.
    fn recovery_summary(
        &self,
        chosen: &[(Zxid, ConfigVersion, &MemberRecord)],
        left: &[(Zxid, ConfigVersion, &MemberRecord)],
        lost: &[ServerId],
        forced: &DynamicConfig,
    ) -> String {
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
        let spares = match left {
            [] => String::new(),
            _ => format!(
                "; survivors [{}] kept as observers",
                left.iter()
                    .map(|k| format!("{} (zxid {})", k.2.id, k.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!(
            "quorum recovered from survivors [{}] under config version {}{spares}; lost voters [{}] fenced; transactions possibly lost: {lost_txns}",
            survivors.join(", "),
            forced.version.map(|v| v.to_string()).unwrap_or_default(),
            lost_text.join(", ")
        )
    }

    /// Fences the first of `lost` whose instance is not confirmed gone; `None`
    /// once all are. A fenced instance a termination hook holds has its hook
    /// completed at once; one EC2 is still terminating is waited for.
    pub(super) fn fence_first(
        &self,
        lost: &[ServerId],
        before: &str,
        steps: &mut Vec<Step>,
    ) -> Option<Plan> {
        let unfenced: Vec<&MemberRecord> = lost
            .iter()
            .filter_map(|id| self.p.members.get(id))
            .filter(|m| !self.obs.instance_gone(&m.instance))
            .collect();
        let ids: Vec<String> = unfenced.iter().map(|m| m.id.to_string()).collect();
        let state = |m: &MemberRecord| self.obs.instance(&m.instance).map(|i| i.state);
        let next = unfenced.iter().find_map(|m| match state(m) {
            Some(InstanceState::ShuttingDown) => None,
            Some(InstanceState::Terminating) => Some(Step::CompleteLifecycleAction {
                instance: m.instance.clone(),
            }),
            _ => Some(Step::FenceInstance {
                instance: m.instance.clone(),
            }),
        });
        let first = unfenced.first()?;
        let reason = match &next {
            Some(_) => format!(
                "quorum lost: fencing lost members [{}] before {before}",
                ids.join(", ")
            ),
            None => format!(
                "quorum lost: waiting for EC2 to terminate the fenced instance {} (lost members [{}]) before {before}",
                first.instance,
                ids.join(", ")
            ),
        };
        if let Some(step) = next {
            steps.insert(0, step);
        }
        Some(Plan::new(Phase::QuorumLost, reason, std::mem::take(steps)))
    }

    /// No member of the config survives: report (`onTotalLoss: wait`), or fence
    /// them all and give the ensemble up for a fresh one (`bootstrap`).
    pub(super) fn total_loss(&self, config: &DynamicConfig, mut steps: Vec<Step>) -> Plan {
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
            TotalLossPolicy::Bootstrap | TotalLossPolicy::Restore => {
                let restore = match self.spec.healing.on_total_loss {
                    TotalLossPolicy::Restore => self.own_newest_point(),
                    _ => None,
                };
                let (doing, replacement) = match &restore {
                    Some(r) => (
                        "restoring a new ensemble from the backup",
                        format!(
                            "restore: a new ensemble restored from the newest backup point at {} replaces it",
                            r.target
                        ),
                    ),
                    None => (
                        "bootstrapping a fresh ensemble",
                        "bootstrap: a fresh, empty ensemble replaces it".to_string(),
                    ),
                };
                if let Some(plan) = self.fence_first(&lost, doing, &mut steps) {
                    return plan;
                }
                steps.insert(0, Step::DiscardEnsemble { lost, restore });
                Plan::new(
                    Phase::QuorumLost,
                    format!(
                        "total loss: no member of the ensemble survives (lost [{}]); healing.onTotalLoss: {replacement}",
                        lost_text.join(", ")
                    ),
                    steps,
                )
            }
        }
    }
}
