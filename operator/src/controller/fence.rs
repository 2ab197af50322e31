//! The per-cluster fence: at most one controller acts on a cluster, however
//! each was started and whichever lease each holds. A controller takes the
//! cluster over by a conditional write of its state record under an epoch
//! above every stored one (`Controller::take_over`); a higher epoch found
//! in that record later means another controller took it over since. This
//! controller then acts on the cluster no more (its agents get 503s naming
//! the other), never adopts that epoch, and says so in an event and in
//! `zkop_controller_fenced`. It is looked for before every step, on every
//! save that conflicts, when an agent reports an epoch above this
//! controller's (at most every `FENCE_CHECK`), and every `IDLE_FENCE_CHECK`
//! regardless (a controller of another group may have taken over while
//! every agent still talks to this one).
//!
//! A fenced controller stays off the cluster while it keeps the lease it
//! held then; it may take the cluster over again only after a new lease
//! epoch (it lost its lease and won it back) or a restart.

use std::time::Duration;

use tokio::time::Instant;

use super::{Controller, ReconcileError, Standing};
use crate::adapters::{Fleet, IdLedger, StateStore};
use crate::model::Persisted;

/// How often agents' reports of a higher epoch may make the controller read
/// its state record.
pub const FENCE_CHECK: Duration = Duration::from_secs(5);

/// How often an idle controller reads its state record anyway: a
/// controller of another group (its lease in another table) may have taken
/// the cluster over without any agent telling this one, since agents talk
/// to the controller they know. It must yield well within the other's
/// `memberDeadAfter` (60 s by default): past it, the other takes members
/// it never heard from for lost. Two reads a minute, which with the
/// lease's renewals (2.7 a minute, `RENEW_AFTER`) and the idle group look
/// (one a minute, `IDLE_FLEET_REFRESH`) keeps an idle cluster within six
/// AWS calls a minute.
pub const IDLE_FENCE_CHECK: Duration = Duration::from_secs(30);

/// Another controller's takeover, seen in the cluster's state record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fenced {
    /// The lease epoch this controller held when it saw it.
    pub lease_epoch: u64,
    /// The other controller's API URL, when it wrote one.
    pub leader_url: Option<String>,
}

impl<F: Fleet, L: IdLedger, S: StateStore, E: super::Leadership> Controller<F, L, S, E> {
    /// The standing to act on for a lease standing: a fenced controller
    /// follows the cluster's new leader while it keeps the lease epoch it
    /// was fenced under; a new lease epoch (or losing the lease) lifts it.
    pub(super) fn fenced_standing(&mut self, lease: Standing) -> Standing {
        match (&self.fenced, &lease) {
            (Some(f), Standing::Leader { epoch, .. }) if f.lease_epoch == *epoch => {
                Standing::Follower {
                    leader_url: f.leader_url.clone(),
                }
            }
            (Some(_), _) => {
                self.fenced = None;
                self.shared.set_fenced(None);
                lease
            }
            (None, _) => lease,
        }
    }

    /// Whether `stored` shows another controller's takeover; if so, this
    /// controller stops acting on the cluster at once.
    pub(super) fn deposed_by(&mut self, stored: &Persisted) -> bool {
        let Some(mine) = self.cluster_epoch.filter(|mine| stored.epoch > *mine) else {
            return false;
        };
        let lease_epoch = self.epoch.take().unwrap_or_default();
        let leader_url = stored.leader_url.clone();
        self.fenced = Some(Fenced {
            lease_epoch,
            leader_url: leader_url.clone(),
        });
        self.cluster_epoch = None;
        self.idle_view = None;
        self.shared.set_standing(Standing::Follower {
            leader_url: leader_url.clone(),
        });
        self.shared.set_fenced(Some(stored.epoch));
        self.shared.event(
            "fenced",
            format!(
                "another controller{} took cluster {} over (epoch {} stored, this controller's {mine}): acting on it no more",
                leader_url.map(|u| format!(" ({u})")).unwrap_or_default(),
                stored.cluster,
                stored.epoch
            ),
        );
        true
    }

    /// Reads the state record and fences this controller off if another
    /// took the cluster over.
    pub(super) async fn check_fence(&mut self) -> Result<(), ReconcileError> {
        self.fence_checked = Some(self.shared.clock.now());
        let stored = Self::within_lease(&self.shared, self.store.load()).await?;
        match stored {
            Some(stored) if self.deposed_by(&stored) => Err(ReconcileError::Fenced(stored.epoch)),
            _ => Ok(()),
        }
    }

    /// Whether to read the state record for another controller's takeover:
    /// an agent reported an epoch above this controller's and it was not
    /// read for `FENCE_CHECK`, or it was not read for `IDLE_FENCE_CHECK`.
    pub(super) fn fence_check_due(&self, now: Instant) -> bool {
        let Some(mine) = self.cluster_epoch else {
            return false;
        };
        let since = |after: Duration| {
            self.fence_checked
                .is_none_or(|at| now.saturating_duration_since(at) >= after)
        };
        since(IDLE_FENCE_CHECK)
            || (since(FENCE_CHECK) && self.shared.lock().reports.max_epoch_seen() > mine)
    }
}
