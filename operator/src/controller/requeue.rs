//! When the next pass runs, and what a failed pass does: kube-runtime's
//! `Action` and `error_policy`, as values the loop acts on.

use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use crate::act::ActError;
use crate::adapters::{FleetError, StoreError};
use crate::clock::on_grid;
use crate::metrics::Metrics;

/// The grid idle timers wait on to (the spec file's tick too).
pub const GRID: Duration = Duration::from_millis(100);

/// When to run the next pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requeue {
    after: Duration,
    /// Waits on to the grid ([`Requeue::idle`]).
    on_grid: bool,
}

impl Requeue {
    /// Work remains: run the next pass almost at once.
    #[must_use]
    pub fn soon() -> Self {
        Self {
            after: Duration::from_millis(100),
            on_grid: false,
        }
    }

    /// Nothing to do now: look again after `after` (agents report every second).
    #[must_use]
    pub fn after(after: Duration) -> Self {
        Self {
            after,
            on_grid: false,
        }
    }

    /// Nothing to do: look again within `after`, at its last point on the
    /// process's 100 ms grid ([`on_grid`]), so that the idle passes of many
    /// clusters run on one wake-up of the runtime.
    #[must_use]
    pub fn idle(after: Duration) -> Self {
        Self {
            after,
            on_grid: true,
        }
    }

    /// When the next pass runs, from `now`.
    pub fn deadline(self, now: Instant) -> Instant {
        match self.on_grid {
            true => on_grid(now + self.after.saturating_sub(GRID), GRID),
            false => now + self.after,
        }
    }
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The fleet could not be observed (expected; retried).
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A step failed (see [`ActError`]).
    #[error(transparent)]
    Act(#[from] ActError),
    /// The new state could not be saved; the step's effect is re-planned.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The lease ran out before (or while) a call that needs it ran: this
    /// controller acts no more until it holds the lease again.
    #[error("the leader lease lapsed: acting no more until it is held again")]
    LeaseLapsed,
    /// The cluster's state record holds a higher epoch than this
    /// controller's: another controller took the cluster over (expected
    /// when two controllers run it; this one acts on it no more).
    #[error("another controller took this cluster over (epoch {0} stored): acting on it no more")]
    Fenced(u64),
}

impl ReconcileError {
    /// A short category for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::Fleet(_) => "fleet",
            ReconcileError::Act(e) => e.category(),
            ReconcileError::Store(_) => "store",
            ReconcileError::LeaseLapsed => "lease",
            ReconcileError::Fenced(_) => "fenced",
        }
    }
}

/// The first wait after a failed pass.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest wait after failed passes.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Backoff for failing passes: 500 ms doubling to 10 s, reset by a good pass.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: BACKOFF_FIRST,
        }
    }
}

/// What to do after a failed pass: count it, log it, back off.
pub fn error_policy(err: &ReconcileError, backoff: &mut Backoff, metrics: &Metrics) -> Requeue {
    metrics.error(err.category());
    warn!(category = err.category(), error = %err, "reconcile failed; retrying");
    let r = Requeue::after(backoff.next);
    backoff.next = (backoff.next * 2).min(BACKOFF_MAX);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_passes_wait_on_to_the_grid_never_past_their_delay_and_work_never_waits() {
        let half = Duration::from_millis(500);
        for offset in [0, 13, 50, 99] {
            let now = Instant::now() + Duration::from_millis(offset);
            let idle = Requeue::idle(half).deadline(now);
            assert!(idle >= now + half - GRID && idle <= now + half, "{offset}");
            assert_eq!(on_grid(idle, GRID), idle, "on the grid");
            assert_eq!(Requeue::after(half).deadline(now), now + half);
            assert_eq!(Requeue::soon().deadline(now), now + GRID);
        }
    }
}
