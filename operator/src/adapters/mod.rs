//! The controller's ports, all declared here: [`Fleet`], [`IdLedger`],
//! [`StateStore`] and [`Lease`] (with [`LeaseRecord`]). Their adapters sit
//! beside them: `aws/` (Auto Scaling + EC2, CloudWatch Logs, DynamoDB),
//! `local/` (processes on loopback, files) and `memory` (for tests).
//! Adapters never import the controller or the planner.

pub mod aws;
pub mod local;
pub mod memory;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use zkop_spec::InstanceId;

use zkop_spec::zk::ServerId;

use crate::model::{Instance, Persisted};

/// Why a fleet call failed. Expected and retried: the fleet is remote or busy.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Starting or stopping a process or instance failed.
    #[error("fleet: {0}")]
    Operation(String),
    /// The instance is not in the fleet.
    #[error("fleet: no instance {0}")]
    UnknownInstance(String),
    /// No address is left in the local network range.
    #[error("fleet: no free address left in {0}")]
    NoAddress(String),
    /// The fleet's own bookkeeping could not be read or written.
    #[error("fleet: {0}")]
    Io(#[from] std::io::Error),
}

/// The fleet's answer to "what is there?".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetView {
    /// Its instances.
    pub instances: Vec<Instance>,
    /// Instances it is asked to keep.
    pub desired_capacity: u32,
    /// The launch template version new instances are launched from
    /// (`lt-0abc:4`), when the fleet has one.
    pub launch_template: Option<String>,
}

/// Where instances come from: an Auto Scaling group, or local processes.
pub trait Fleet: Send + Sync {
    /// The instances and desired capacity. A fleet that replaces lost instances
    /// (as an ASG does) may launch them during this call.
    fn observe(&self) -> impl Future<Output = Result<FleetView, FleetError>> + Send;
    /// Asks for `capacity` instances.
    fn set_desired_capacity(
        &self,
        capacity: u32,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;
    /// Terminates an instance and lowers the desired capacity by one.
    fn terminate(
        &self,
        instance: &InstanceId,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;
    /// Terminates an instance to fence it off (a lost voter that may still be
    /// running), keeping the desired capacity: it is replaced.
    fn fence(&self, instance: &InstanceId) -> impl Future<Output = Result<(), FleetError>> + Send;
    /// Lets an instance held by a termination lifecycle hook terminate.
    fn complete_termination(
        &self,
        instance: &InstanceId,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;
    /// Marks an instance as the holder of a member: tagged with the cluster and
    /// server id (so a person sees them) and protected from scale-in.
    fn adopt(
        &self,
        instance: &InstanceId,
        cluster: &str,
        id: ServerId,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;
    /// Publishes where clients connect (`spec.clients`); says what changed.
    /// A fleet without a place to publish (local) changes nothing.
    fn publish(
        &self,
        _clients: &zkop_spec::clients::ClientsPolicy,
        _what: &Published,
    ) -> impl Future<Output = Result<Vec<String>, FleetError>> + Send {
        async { Ok(Vec::new()) }
    }
}

/// What clients are told: the connect string and each serving member's
/// address, by server id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// `address:port,...`.
    pub connect_string: String,
    /// Serving members' addresses.
    pub members: BTreeMap<ServerId, String>,
}

/// Why an id claim or release failed. Expected: storage trouble; retried.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger's storage failed.
    #[error("id ledger: {0}")]
    Io(#[from] std::io::Error),
    /// Every id up to the limit is held.
    #[error("id ledger: every id up to {0} is held")]
    Exhausted(u64),
}

/// An id the ledger issued to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The id.
    pub id: ServerId,
    /// Whether it is an earlier claim of the same instance that the state
    /// never recorded (a controller stopped between claiming and saving).
    pub resumed: bool,
    /// Ids the state holds whose ledger entries were missing, re-created
    /// for their holders.
    pub restored: Vec<ServerId>,
}

/// How old a ledger entry that never named its holder (a claim that crashed
/// between creating it and naming its instance) must be to be released as an
/// orphan: well past the deadline of any claim still in flight.
pub const ORPHAN_AFTER: Duration = Duration::from_secs(120);

/// Ids already taken, as the state and the config say: never handed out.
/// With the instance holding it when the state records one, so that a
/// missing ledger entry is re-created for it.
pub type TakenIds = BTreeMap<ServerId, Option<InstanceId>>;

/// Issues server ids so that no two instances hold one at a time.
pub trait IdLedger: Send + Sync {
    /// Claims an id for `instance`: the one an earlier claim of the same
    /// instance holds that `taken` does not list, else the lowest id neither
    /// held nor taken (a lost race moves on to the next). First re-creates
    /// the missing entries of taken ids whose holder is known.
    fn claim(
        &self,
        instance: &InstanceId,
        taken: &TakenIds,
    ) -> impl Future<Output = Result<Claim, LedgerError>> + Send;
    /// Releases an id whose instance is confirmed gone.
    fn release(&self, id: ServerId) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Storage failed (expected: disk or network trouble; retried).
    #[error("state store: {0}")]
    Io(#[from] std::io::Error),
    /// Someone stored a newer state since this one was read (expected after a
    /// leadership change or a race: re-observe and plan again).
    #[error("state store: the stored state is at version {found}, not {expected}; re-reading")]
    Conflict {
        /// The version the write expected.
        expected: u64,
        /// The version found, when known.
        found: u64,
    },
    /// The stored state does not parse (unexpected: a person must look).
    #[error("state store: {path} is not valid state: {reason}")]
    Corrupt {
        /// Where.
        path: String,
        /// The parser's words.
        reason: String,
    },
}

/// Durable controller state.
pub trait StateStore: Send + Sync {
    /// The stored state, if any.
    fn load(&self) -> impl Future<Output = Result<Option<Persisted>, StoreError>> + Send;
    /// Replaces the stored state if it is still at `state.store_version`;
    /// returns the new version.
    fn save(&self, state: &Persisted) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// The leader lease as stored: who holds it, under which epoch, and until
/// when by the holder's wall clock (for people; no controller compares its
/// own wall clock with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The holding controller (unique per process).
    pub holder: String,
    /// The holder's API URL, for the 503s other controllers answer.
    pub url: Option<String>,
    /// Rises with every change of holder.
    pub epoch: u64,
    /// The holder's wall time at its last write plus the time to live.
    pub expires_at_ms: u64,
}

/// The leader lease: one record, changed only by conditional writes, so at
/// most one controller holds it at a time. Deciding who may take it is the
/// controller's (`LeaseKeeper`), on its own monotonic clock.
pub trait Lease: Send + Sync {
    /// How long the lease lasts after a write that holds it.
    fn ttl(&self) -> Duration;
    /// This controller's name as a holder.
    fn holder(&self) -> &str;
    /// The API URL this controller's record advertises.
    fn url(&self) -> Option<String>;
    /// The stored record, if any.
    fn read(&self) -> impl Future<Output = Result<Option<LeaseRecord>, StoreError>> + Send;
    /// Writes this controller's record under `epoch`, expiring at
    /// `expires_at_ms`, if the stored record is still exactly `prev` (none:
    /// no record). False when it was not: someone else wrote.
    fn write(
        &self,
        prev: Option<&LeaseRecord>,
        epoch: u64,
        expires_at_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<T: Lease> Lease for Arc<T> {
    fn ttl(&self) -> Duration {
        self.as_ref().ttl()
    }

    fn holder(&self) -> &str {
        self.as_ref().holder()
    }

    fn url(&self) -> Option<String> {
        self.as_ref().url()
    }

    fn read(&self) -> impl Future<Output = Result<Option<LeaseRecord>, StoreError>> + Send {
        self.as_ref().read()
    }

    fn write(
        &self,
        prev: Option<&LeaseRecord>,
        epoch: u64,
        expires_at_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.as_ref().write(prev, epoch, expires_at_ms)
    }
}

impl<T: IdLedger> IdLedger for Arc<T> {
    fn claim(
        &self,
        instance: &InstanceId,
        taken: &TakenIds,
    ) -> impl Future<Output = Result<Claim, LedgerError>> + Send {
        self.as_ref().claim(instance, taken)
    }

    fn release(&self, id: ServerId) -> impl Future<Output = Result<(), LedgerError>> + Send {
        self.as_ref().release(id)
    }
}

impl<T: StateStore> StateStore for Arc<T> {
    fn load(&self) -> impl Future<Output = Result<Option<Persisted>, StoreError>> + Send {
        self.as_ref().load()
    }

    fn save(&self, state: &Persisted) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.as_ref().save(state)
    }
}
