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

//!
//! One file per concern: [`bootstrap`](self::bootstrap), `membership` (the
//! reconfig in flight and the next one, as a typed [`MembershipChange`]),
//! `recovery` (no leader, lost quorum, total loss), `rollout` (rolling
//! restarts), `tls` (switching TLS on or off live), `replacement` (rolling replacement), `housekeeping` (fleet and
//! ledger hygiene), `backup` (the shipping member, a bootstrap's restore);
//! `health` answers the questions they share and `safety` is
//! the gate every reconfig passes.

use std::time::Duration;

use zkop_spec::ValidatedCluster;
use zkop_spec::zk::DynamicConfig;

use crate::model::{Observed, Persisted};

mod backup;
mod bootstrap;
mod change;
mod health;
mod housekeeping;
mod membership;
mod phase;
mod rebuild;
mod recovery;
mod replacement;
mod rollout;
mod safety;
mod standby;
mod step;
mod tls;
mod upgrade;
mod zones;

pub use change::{ChangeReason, MembershipChange};
pub use health::SERVING_FRESH;
pub use phase::Phase;
pub use rollout::ROLLOUT_HALTED;
pub use safety::reconfig_is_safe;
pub use step::Step;
pub use zones::{failure_tolerance, zone_failure_tolerance};

#[cfg(test)]
pub(crate) mod tests;

/// How long an agent may take to answer a reconfig order before it is abandoned.
pub const RECONFIG_TIMEOUT: Duration = Duration::from_secs(60);
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
    if let Some(plan) = c.rebuild_from_reports() {
        return plan;
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
    if let Some(step) = c.shipper_step(config, leader) {
        steps.insert(0, step);
    }
    if let Some(plan) = c.down_voter_back(config) {
        return plan;
    }
    if let Some(plan) = c.standby_takes_over(config, &steps) {
        return plan;
    }
    let (membership, reason) = c.membership(config, leader);
    steps.extend(membership);
    if steps.is_empty()
        && reason.is_empty()
        && let Some(plan) = c.rollout(config).or_else(|| c.tls_switch(config, leader))
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
