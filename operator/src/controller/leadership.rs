//! Who may act: exactly one controller per cluster. Local mode has one
//! controller and always leads; on AWS a lease decides, renewed every third of
//! its time to live, and a controller that cannot renew stops acting before
//! its lease can have expired. Ages are counted on the controller's clock.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::adapters::{Lease, LeaseState, StoreError};
use crate::clock::SharedClock;

/// How long before its lease runs out a controller that cannot renew stops
/// acting.
pub const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// Answers "do I lead, and under which epoch?" before every pass.
pub trait Leadership: Send {
    /// This controller's standing now.
    fn check(&mut self, now_ms: u64)
    -> impl Future<Output = Result<LeaseState, StoreError>> + Send;
}

/// The only controller there is (local mode).
#[derive(Debug, Clone, Copy)]
pub struct AlwaysLeader {
    /// The epoch it leads under.
    pub epoch: u64,
}

impl Leadership for AlwaysLeader {
    async fn check(&mut self, _now_ms: u64) -> Result<LeaseState, StoreError> {
        Ok(LeaseState::Leader { epoch: self.epoch })
    }
}

/// A lease, renewed only as often as needed.
pub struct LeaseKeeper<L> {
    lease: L,
    clock: SharedClock,
    held: Option<(u64, Instant)>,
}

impl<L: Lease> LeaseKeeper<L> {
    /// Keeps `lease`, counting its age on `clock`.
    pub fn new(lease: L, clock: SharedClock) -> Self {
        Self {
            lease,
            clock,
            held: None,
        }
    }

    /// Time since `renewed`, on the controller's clock.
    fn age(&self, renewed: Instant) -> Duration {
        self.clock.now().saturating_duration_since(renewed)
    }
}

impl<L: Lease> Leadership for LeaseKeeper<L> {
    async fn check(&mut self, now_ms: u64) -> Result<LeaseState, StoreError> {
        let ttl = self.lease.ttl();
        if let Some((epoch, renewed)) = self.held
            && self.age(renewed) < ttl / 3
        {
            return Ok(LeaseState::Leader { epoch });
        }
        match self.lease.round(now_ms).await {
            Ok(LeaseState::Leader { epoch }) => {
                self.held = Some((epoch, self.clock.now()));
                Ok(LeaseState::Leader { epoch })
            }
            Ok(other) => {
                self.held = None;
                Ok(other)
            }
            Err(e) => {
                // Could not renew: keep leading only while the lease surely holds.
                match self.held {
                    Some((epoch, renewed)) if self.age(renewed) + LEASE_MARGIN < ttl => {
                        Ok(LeaseState::Leader { epoch })
                    }
                    _ => {
                        self.held = None;
                        Err(e)
                    }
                }
            }
        }
    }
}
