//! Test points: `ZKOP_TEST_KILL_AT` makes a controller die at a chosen point
//! of a pass, exactly as a SIGKILL would, so crash-recovery tests can stop it
//! between an effect and its record. Read once, when the controller is built.

use tracing::warn;

use crate::model::Persisted;
use crate::plan::Step;

/// Where a test asked this controller to die, if anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestPoints {
    kill_at: Option<String>,
}

impl TestPoints {
    /// The points `ZKOP_TEST_KILL_AT` names (none when unset).
    pub fn from_env() -> Self {
        Self {
            kill_at: std::env::var("ZKOP_TEST_KILL_AT").ok(),
        }
    }

    /// Whether to die here: `reconfig-outcome` before acting on a reconfig's
    /// outcome, so it is never persisted; `claim-outcome` once an id is
    /// claimed for a scale-out but before the claim is saved. `acted` says
    /// which side of the act.
    pub fn kills_at(&self, step: &Step, p: &Persisted, acted: bool) -> bool {
        let Some(at) = self.kill_at.as_deref() else {
            return false;
        };
        match (at, step) {
            ("reconfig-outcome", Step::CompleteReconfig { .. } | Step::RecordConfig { .. }) => {
                !acted && p.reconfig.is_some()
            }
            ("claim-outcome", Step::ClaimId { .. }) => acted && p.ever_bootstrapped,
            _ => false,
        }
    }

    /// Dies here if asked to.
    pub fn check(&self, step: &Step, p: &Persisted, acted: bool) {
        if self.kills_at(step, p, acted) {
            warn!(
                step = step.kind(),
                "ZKOP_TEST_KILL_AT: killing this controller"
            );
            // SAFETY: kill(2) on our own PID.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
