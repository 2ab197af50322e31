//! Who may act: exactly one controller per cluster. Local mode has one
//! controller and always leads; on AWS a lease decides. Every time here is
//! the controller's own monotonic clock, never a wall clock compared with
//! another machine's:
//!
//! - the holder's lease is valid until `LEASE_MARGIN` before its time to
//!   live runs out, counted from when the renewing round was SENT (the
//!   stored expiry cannot be older than that);
//! - another controller takes the lease over only after it has seen the very
//!   same record, unchanged, for a whole time to live, counted from when its
//!   read RETURNED (the record cannot be younger than that). The holder's
//!   renewal was sent before then, so it stopped acting `LEASE_MARGIN`
//!   before the takeover.
//!
//! The holder renews with one conditional write on the record it wrote
//! last, not a read and a write: the condition fails if anyone wrote since,
//! and only then is the record read. This halves the lease's calls.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::adapters::{Lease, LeaseRecord, StoreError};
use crate::clock::SharedClock;

/// How long before its lease runs out a controller that cannot renew stops
/// acting.
pub const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// The lease is renewed once `1 / RENEW_AFTER` of its time to live has gone
/// since the last renewal was sent: every half, so that an idle cluster's
/// calls stay within issue 15's six a minute (2.7 lease writes, 2 fence
/// reads, 1 group look on the default 45 s lease). A renewal that fails is
/// retried at every pass (every 500 ms) for the other half, less
/// `LEASE_MARGIN`: 20 s on the default lease, 5.5 s on the shortest (15 s).
pub const RENEW_AFTER: u32 = 2;

/// This controller's standing after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It leads under `epoch`, and may act until `until` (none: for good).
    Leader {
        /// The lease's epoch.
        epoch: u64,
        /// When its lease stops letting it act, on its monotonic clock.
        until: Option<Instant>,
    },
    /// Another controller leads.
    Follower {
        /// The leader's API URL, when known, for the 503s this one answers.
        leader_url: Option<String>,
    },
}

/// Answers "do I lead, and under which epoch?" before every pass.
pub trait Leadership: Send {
    /// This controller's standing now.
    fn check(&mut self) -> impl Future<Output = Result<Standing, StoreError>> + Send;
}

/// The only controller there is (local mode).
#[derive(Debug, Clone, Copy)]
pub struct AlwaysLeader {
    /// The epoch it leads under.
    pub epoch: u64,
}

impl Leadership for AlwaysLeader {
    async fn check(&mut self) -> Result<Standing, StoreError> {
        Ok(Standing::Leader {
            epoch: self.epoch,
            until: None,
        })
    }
}

/// A lease, renewed every half of its time to live (`RENEW_AFTER`).
pub struct LeaseKeeper<L> {
    lease: L,
    clock: SharedClock,
    /// The epoch held, and when the round that last renewed it was sent.
    held: Option<(u64, Instant)>,
    /// Another holder's record, and when this controller first read it.
    watched: Option<(LeaseRecord, Instant)>,
    /// The record this controller last wrote and knows is stored.
    mine: Option<LeaseRecord>,
}

impl<L: Lease> LeaseKeeper<L> {
    /// Keeps `lease`, counting on `clock`.
    pub fn new(lease: L, clock: SharedClock) -> Self {
        Self {
            lease,
            clock,
            held: None,
            watched: None,
            mine: None,
        }
    }

    /// When a lease renewed by a round sent at `sent` stops letting it act.
    fn until(&self, sent: Instant) -> Instant {
        sent + self.lease.ttl().saturating_sub(LEASE_MARGIN)
    }

    /// The lease held now, if it still lets this controller act.
    fn holding(&self) -> Option<Standing> {
        let (epoch, sent) = self.held?;
        let until = self.until(sent);
        (self.clock.now() < until).then_some(Standing::Leader {
            epoch,
            until: Some(until),
        })
    }

    /// Renews the lease held by one write conditional on the record written
    /// last. None when that record is no longer stored (read it then).
    async fn renew_unread(&mut self) -> Option<Result<Standing, StoreError>> {
        let mine = self.mine.take().filter(|_| self.held.is_some())?;
        let sent = self.clock.now();
        let expires_at_ms = self.clock.wall_ms() + self.lease.ttl().as_millis() as u64;
        match self
            .lease
            .write(Some(&mine), mine.epoch, expires_at_ms)
            .await
        {
            Ok(true) => Some(Ok(self.renewed(mine.epoch, sent, expires_at_ms))),
            Ok(false) => None,
            // The write may have happened: the next round reads.
            Err(e) => Some(Err(e)),
        }
    }

    /// Notes a write that holds the lease under `epoch`, sent at `sent`.
    fn renewed(&mut self, epoch: u64, sent: Instant, expires_at_ms: u64) -> Standing {
        self.held = Some((epoch, sent));
        self.watched = None;
        self.mine = Some(LeaseRecord {
            holder: self.lease.holder().to_string(),
            url: self.lease.url(),
            epoch,
            expires_at_ms,
        });
        Standing::Leader {
            epoch,
            until: Some(self.until(sent)),
        }
    }

    /// Renews the lease held without reading it; otherwise reads the record,
    /// then renews it, takes it, or follows its holder.
    async fn round(&mut self) -> Result<Standing, StoreError> {
        if let Some(outcome) = self.renew_unread().await {
            return outcome;
        }
        let sent = self.clock.now();
        let record = self.lease.read().await?;
        let read_at = self.clock.now();
        let ttl = self.lease.ttl();
        let (prev, epoch) = match &record {
            None => (None, 1),
            Some(r) if r.holder == self.lease.holder() => (Some(r), r.epoch),
            Some(r) => {
                let since = match &self.watched {
                    Some((seen, since)) if seen == r => *since,
                    _ => {
                        self.watched = Some((r.clone(), read_at));
                        read_at
                    }
                };
                if read_at.saturating_duration_since(since) < ttl {
                    self.held = None;
                    return Ok(Standing::Follower {
                        leader_url: r.url.clone(),
                    });
                }
                // Unchanged for a whole time to live: its holder stopped.
                (Some(r), r.epoch + 1)
            }
        };
        let expires_at_ms = self.clock.wall_ms() + ttl.as_millis() as u64;
        if !self.lease.write(prev, epoch, expires_at_ms).await? {
            self.held = None;
            return Ok(Standing::Follower { leader_url: None });
        }
        Ok(self.renewed(epoch, sent, expires_at_ms))
    }
}

impl<L: Lease> Leadership for LeaseKeeper<L> {
    async fn check(&mut self) -> Result<Standing, StoreError> {
        let now = self.clock.now();
        let ttl = self.lease.ttl();
        if let Some((_, sent)) = self.held
            && now.saturating_duration_since(sent) < ttl / RENEW_AFTER
            && let Some(standing) = self.holding()
        {
            return Ok(standing);
        }
        // A round may take no longer than the lease left (when none is held:
        // than a lease it took would last).
        let deadline = match self.holding() {
            Some(Standing::Leader {
                until: Some(until), ..
            }) => until,
            _ => self.until(now),
        };
        let outcome = match tokio::time::timeout_at(deadline, self.round()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the lease round outlasted the lease left",
            ))),
        };
        outcome.or_else(|e| {
            // Could not renew: keep leading only while the lease surely holds.
            self.holding().ok_or_else(|| {
                self.held = None;
                e
            })
        })
    }
}

/// One lease shared by every cluster a controller group runs (`zkop run
/// DIR`): each cluster's loop asks it, and whichever asks when a renewal is
/// due makes the round, so the lease costs the same for one cluster or
/// many. Each cluster still adopts its state under an epoch above its own
/// stored one (`Controller::take_over`), so agents never see an epoch fall.
pub struct SharedLease<L> {
    keeper: Arc<tokio::sync::Mutex<LeaseKeeper<L>>>,
    /// The holder advertises the group's URL; a follower of one cluster
    /// names that cluster's API on the holder's host.
    cluster_url: Arc<dyn Fn(&str) -> String + Send + Sync>,
}

impl<L: Lease> SharedLease<L> {
    /// `keeper`'s lease, seen by one cluster whose API on a holder's host
    /// `cluster_url` gives from the holder's advertised URL.
    pub fn new(
        keeper: Arc<tokio::sync::Mutex<LeaseKeeper<L>>>,
        cluster_url: Arc<dyn Fn(&str) -> String + Send + Sync>,
    ) -> Self {
        Self {
            keeper,
            cluster_url,
        }
    }
}

impl<L: Lease> Leadership for SharedLease<L> {
    async fn check(&mut self) -> Result<Standing, StoreError> {
        let standing = self.keeper.lock().await.check().await?;
        Ok(match standing {
            Standing::Follower { leader_url } => Standing::Follower {
                leader_url: leader_url.map(|u| (self.cluster_url)(&u)),
            },
            leader => leader,
        })
    }
}
