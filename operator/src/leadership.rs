//! Who may act: exactly one controller per cluster. Local mode has one
//! controller and always leads; on AWS a DynamoDB lease decides, renewed every
//! third of its time to live, and a controller that cannot renew stops acting
//! before its lease can have expired.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::adapters::StoreError;
use crate::adapters::aws::{DynamoLease, LeaseState};

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

/// A DynamoDB lease, renewed only as often as needed.
pub struct LeaseKeeper {
    lease: DynamoLease,
    held: Option<(u64, Instant)>,
}

impl LeaseKeeper {
    /// Keeps `lease`.
    pub fn new(lease: DynamoLease) -> Self {
        Self { lease, held: None }
    }
}

impl Leadership for LeaseKeeper {
    async fn check(&mut self, now_ms: u64) -> Result<LeaseState, StoreError> {
        let ttl = self.lease.ttl();
        if let Some((epoch, renewed)) = self.held
            && renewed.elapsed() < ttl / 3
        {
            return Ok(LeaseState::Leader { epoch });
        }
        match self.lease.round(now_ms).await {
            Ok(LeaseState::Leader { epoch }) => {
                self.held = Some((epoch, Instant::now()));
                Ok(LeaseState::Leader { epoch })
            }
            Ok(other) => {
                self.held = None;
                Ok(other)
            }
            Err(e) => {
                // Could not renew: keep leading only while the lease surely holds.
                match self.held {
                    Some((epoch, renewed)) if renewed.elapsed() + Duration::from_secs(2) < ttl => {
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
