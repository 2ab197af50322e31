//! Rolling restarts: one member at a time, observers first, the leader last.

use std::time::Duration;

use zkop_spec::wire::AgentReport;
use zkop_spec::zk::{DynamicConfig, ServerId, ServerMode};

use super::{Ctx, Phase, Plan, Step};
use crate::desired::spec_settings;
use crate::model::{MemberRecord, RolloutStep};

/// How a halted roll-out's reason begins (status, and `zkop_rollout_halted`).
pub const ROLLOUT_HALTED: &str = "roll-out halted";

impl Ctx<'_> {
    /// A rolling restart: members whose settings differ from the spec's restart
    /// one at a time (observers, then followers, the leader last), each once
    /// the previous one serves again and has caught up with the leader.
    pub(super) fn rollout(&self, config: &DynamicConfig) -> Option<Plan> {
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
        // The member it restarted last may have left the config (replaced:
        // its data failed): then it goes on with the next, as if it were back.
        let restarted_last = self.p.rollout.as_ref().and_then(|last| {
            self.p
                .members
                .get(&last.member)
                .filter(|m| listed.iter().any(|l| l.id == m.id))
                .map(|m| (last, m))
        });
        if self.p.rollout.is_some() && restarted_last.is_none() && stale == 0 {
            return finish();
        }
        if let Some((last, m)) = restarted_last {
            let report = self.fresh_report(&m.instance);
            let zxid = report.and_then(|r| r.probe.as_ref()?.zxid);
            let back = self.serving(m)
                && report.and_then(|r| r.settings.as_ref()) == m.settings.as_ref()
                && zxid >= last.leader_zxid;
            if !back {
                let label = self.rollout_label(&listed);
                return Some(self.restarted_not_back(m, last, stale, runs_wanted(m), &label));
            }
            if stale == 0 {
                return finish();
            }
        }
        if stale == 0 || !listed.iter().all(|m| self.serving(m)) {
            return None;
        }
        if let Some(plan) = self
            .upgrade_refused(&listed)
            .or_else(|| self.canary_waiting(&listed))
        {
            return Some(plan);
        }
        let next = listed
            .iter()
            .filter(|m| !runs_wanted(m))
            .min_by_key(|m| (self.rank(config, m).0, m.id))?;
        let role = self.rank(config, next).1;
        Some(Plan::new(
            Phase::Reconciling,
            format!(
                "{}: restarting member {} ({role}), {stale} to go",
                self.rollout_label(&listed),
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

    /// `roll-out`, or while members change release, where the upgrade stands.
    fn rollout_label(&self, listed: &[&MemberRecord]) -> String {
        match listed.iter().any(|m| self.changes_release(m)) {
            true => self.upgrade_progress(listed),
            false => "roll-out".into(),
        }
    }

    /// The member restarted last has not served again yet: restart it again
    /// with newer settings, halt past `rollout.timeout`, or wait.
    pub(super) fn restarted_not_back(
        &self,
        m: &MemberRecord,
        last: &RolloutStep,
        stale: usize,
        wanted: bool,
        label: &str,
    ) -> Plan {
        let report = self.fresh_report(&m.instance);
        if !wanted {
            // The spec changed again while it was down: it takes the
            // new settings at once (it is down already).
            return Plan::new(
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
            );
        }
        let waited = Duration::from_millis(self.obs.now_ms.saturating_sub(last.at_ms));
        if waited >= self.spec.rollout_timeout {
            let of = match label {
                "roll-out" => String::new(),
                upgrade => format!(" ({upgrade})"),
            };
            let why = report
                .and_then(|r| r.errors.last().cloned().or(r.process.last_exit.clone()))
                .unwrap_or_else(|| "no report from its agent".into());
            return Plan::new(
                Phase::Degraded,
                format!(
                    "{ROLLOUT_HALTED}{of}: member {} on {} did not serve again within rollout.timeout ({}s) after its restart ({why}); {stale} member(s) not restarted and left untouched",
                    m.id,
                    m.instance,
                    self.spec.rollout_timeout.as_secs()
                ),
                vec![],
            );
        }
        Plan::new(
            Phase::Reconciling,
            format!(
                "{label}: waiting for member {} to serve again and catch up ({}s so far)",
                m.id,
                waited.as_secs()
            ),
            vec![],
        )
    }
}

impl Ctx<'_> {
    /// A member whose secure client port still shows an older certificate
    /// than its agent holds, while every member runs the current restart
    /// generation: ZooKeeper 3.8 shows a renewed certificate on the client
    /// port only after a restart (and zkop leaves the quorum's reload off),
    /// so the renewal asks for a roll (one member at a time, as `zkop roll`).
    pub(super) fn serves_old_certificate(&self) -> Option<ServerId> {
        self.spec.tls.as_ref()?;
        let members: Vec<_> = self
            .p
            .members
            .values()
            .filter(|m| !m.retiring && m.initial_config.is_some())
            .collect();
        let reports: Vec<_> = members
            .iter()
            .map(|m| self.fresh_report(&m.instance))
            .collect();
        // A roll under way (or a member not heard from) restarts them anyway, or must come first.
        let current = |r: &Option<&AgentReport>| {
            r.and_then(|r| r.settings.as_ref())
                .is_some_and(|s| s.roll == self.p.roll)
        };
        if !reports.iter().all(current) {
            return None;
        }
        members.iter().zip(reports).find_map(|(m, r)| {
            let r = r?;
            let older = r.served_certificate_not_after_ms? < r.certificate_not_after_ms?;
            older.then_some(m.id)
        })
    }
}
