//! In-memory adapters for every port: the planner's simulation and the
//! controller's tests on paused time run against these. They keep the ports'
//! contracts (the fleet replaces instances up to its desired capacity as an
//! Auto Scaling group does; the ledger hands an id to one instance at a time;
//! the store is compare-and-set) and can be told to fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zkop_spec::InstanceId;

use zkop_spec::zk::ServerId;

use super::{
    Claim, Fleet, FleetError, FleetView, IdLedger, Lease, LeaseRecord, LedgerError, StateStore,
    StoreError, TakenIds,
};
use crate::model::{Instance, InstanceState, Persisted};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Default)]
struct FleetInner {
    instances: Vec<Instance>,
    capacity: u32,
    launched: u32,
    /// The launch template version new instances get.
    template: u32,
}

/// A fleet of instances that run nothing, like moto's: it launches
/// `i-<n>` up to its desired capacity on every observation.
#[derive(Debug, Default)]
pub struct MemoryFleet {
    inner: Mutex<FleetInner>,
    failing: AtomicBool,
    observed: AtomicU64,
}

impl MemoryFleet {
    /// How many times the fleet was observed (an AWS call each, on AWS).
    pub fn observations(&self) -> u64 {
        self.observed.load(Ordering::SeqCst)
    }

    /// Makes every call fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), FleetError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(FleetError::Operation("the fleet is unreachable".into()));
        }
        Ok(())
    }

    /// Terminates the `nth` instance still up (modulo their count), as a
    /// failure would.
    pub fn kill(&self, nth: usize) {
        let mut g = lock(&self.inner);
        let up: Vec<usize> = (0..g.instances.len())
            .filter(|i| g.instances[*i].state != InstanceState::Terminated)
            .collect();
        if !up.is_empty() {
            let i = up[nth % up.len()];
            g.instances[i].state = InstanceState::Terminated;
        }
    }

    /// Whether the instance is listed and not terminated.
    pub fn up(&self, instance: &str) -> bool {
        lock(&self.inner)
            .instances
            .iter()
            .any(|i| i.id == instance && i.state != InstanceState::Terminated)
    }

    /// New instances launch from the next launch template version.
    pub fn new_launch_template_version(&self) {
        lock(&self.inner).template += 1;
    }

    fn set_state(&self, instance: &str, state: InstanceState) {
        for i in &mut lock(&self.inner).instances {
            if i.id == instance {
                i.state = state;
            }
        }
    }
}

impl Fleet for MemoryFleet {
    async fn observe(&self) -> Result<FleetView, FleetError> {
        self.check()?;
        self.observed.fetch_add(1, Ordering::SeqCst);
        let mut g = lock(&self.inner);
        let template = Some(format!("lt:{}", g.template));
        let up = |g: &FleetInner| {
            g.instances
                .iter()
                .filter(|i| i.state != InstanceState::Terminated)
                .count() as u32
        };
        while up(&g) < g.capacity {
            g.launched += 1;
            let id = format!("i-{}", g.launched);
            g.instances.push(Instance {
                id: id.into(),
                state: InstanceState::Running,
                zone: None,
                launch_template: template.clone(),
                private_ip: None,
            });
        }
        Ok(FleetView {
            instances: g.instances.clone(),
            desired_capacity: g.capacity,
            launch_template: template,
        })
    }

    async fn set_desired_capacity(&self, capacity: u32) -> Result<(), FleetError> {
        self.check()?;
        lock(&self.inner).capacity = capacity;
        Ok(())
    }

    async fn terminate(&self, instance: &InstanceId) -> Result<(), FleetError> {
        self.check()?;
        self.set_state(instance, InstanceState::Terminated);
        let mut g = lock(&self.inner);
        g.capacity = g.capacity.saturating_sub(1);
        Ok(())
    }

    async fn fence(&self, instance: &InstanceId) -> Result<(), FleetError> {
        self.check()?;
        self.set_state(instance, InstanceState::Terminated);
        Ok(())
    }

    async fn complete_termination(&self, _instance: &InstanceId) -> Result<(), FleetError> {
        self.check()
    }

    async fn adopt(
        &self,
        _instance: &InstanceId,
        _cluster: &str,
        _id: ServerId,
    ) -> Result<(), FleetError> {
        self.check()
    }
}

/// An id ledger in memory: id -> instance.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    held: Mutex<BTreeMap<ServerId, String>>,
}

impl MemoryLedger {
    /// The ids held, with their instances.
    pub fn held(&self) -> BTreeMap<ServerId, String> {
        lock(&self.held).clone()
    }

    /// Loses an entry, as a deleted ledger record would be lost.
    pub fn lose(&self, id: ServerId) {
        lock(&self.held).remove(&id);
    }
}

impl IdLedger for MemoryLedger {
    async fn claim(&self, instance: &InstanceId, taken: &TakenIds) -> Result<Claim, LedgerError> {
        let mut held = lock(&self.held);
        let mut restored = Vec::new();
        for (id, holder) in taken {
            if let Some(holder) = holder
                && !held.contains_key(id)
            {
                held.insert(*id, holder.to_string());
                restored.push(*id);
            }
        }
        if let Some((id, _)) = held
            .iter()
            .find(|(id, i)| !taken.contains_key(id) && i.as_str() == instance)
        {
            return Ok(Claim {
                id: *id,
                resumed: true,
                restored,
            });
        }
        let id = (1..=u64::from(u8::MAX))
            .map(ServerId)
            .find(|id| !held.contains_key(id) && !taken.contains_key(id))
            .ok_or(LedgerError::Exhausted(u64::from(u8::MAX)))?;
        held.insert(id, instance.to_string());
        Ok(Claim {
            id,
            resumed: false,
            restored,
        })
    }

    async fn release(&self, id: ServerId) -> Result<(), LedgerError> {
        lock(&self.held).remove(&id);
        Ok(())
    }
}

/// A compare-and-set state store in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    stored: Mutex<Option<Persisted>>,
    calls: AtomicU64,
}

impl MemoryStore {
    /// What is stored.
    pub fn stored(&self) -> Option<Persisted> {
        lock(&self.stored).clone()
    }

    /// Loads and saves that reached the store, as DynamoDB would bill them.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl StateStore for MemoryStore {
    async fn load(&self) -> Result<Option<Persisted>, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.stored())
    }

    async fn save(&self, state: &Persisted) -> Result<u64, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut g = lock(&self.stored);
        let found = g.as_ref().map_or(0, |p| p.store_version);
        if found != state.store_version {
            return Err(StoreError::Conflict {
                expected: state.store_version,
                found,
            });
        }
        let mut saved = state.clone();
        saved.store_version = found + 1;
        *g = Some(saved);
        Ok(found + 1)
    }
}

/// A lease table in memory: every [`MemoryLease`] on it competes for its one
/// record, with DynamoDB's conditional writes.
#[derive(Debug, Default)]
pub struct MemoryLeaseTable {
    record: Mutex<Option<LeaseRecord>>,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl MemoryLeaseTable {
    /// The stored record.
    pub fn record(&self) -> Option<LeaseRecord> {
        lock(&self.record).clone()
    }

    /// Reads and writes that reached the table, as DynamoDB would bill them.
    pub fn calls(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
        )
    }
}

/// One controller's view of a [`MemoryLeaseTable`]. It can be cut off (every
/// call fails, as when the controller cannot reach DynamoDB) or slowed (every
/// call takes a while on tokio's clock, as a slow network does).
#[derive(Debug)]
pub struct MemoryLease {
    table: Arc<MemoryLeaseTable>,
    holder: String,
    ttl: Duration,
    cut_off: AtomicBool,
    delay: Mutex<Duration>,
}

impl MemoryLease {
    /// `holder`'s view of `table`, whose lease lasts `ttl` after each write.
    pub fn new(table: Arc<MemoryLeaseTable>, holder: &str, ttl: Duration) -> Self {
        Self {
            table,
            holder: holder.to_string(),
            ttl,
            cut_off: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
        }
    }

    /// Makes every call fail (or succeed again).
    pub fn set_cut_off(&self, cut_off: bool) {
        self.cut_off.store(cut_off, Ordering::SeqCst);
    }

    /// Makes every call take `delay` before it reaches the table.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.delay) = delay;
    }

    async fn reach(&self) -> Result<(), StoreError> {
        let delay = *lock(&self.delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.cut_off.load(Ordering::SeqCst) {
            return Err(StoreError::Io(std::io::Error::other(
                "the lease table is unreachable",
            )));
        }
        Ok(())
    }
}

impl Lease for MemoryLease {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn holder(&self) -> &str {
        &self.holder
    }

    fn url(&self) -> Option<String> {
        Some(format!("http://{}", self.holder))
    }

    async fn read(&self) -> Result<Option<LeaseRecord>, StoreError> {
        self.reach().await?;
        self.table.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.table.record())
    }

    async fn write(
        &self,
        prev: Option<&LeaseRecord>,
        epoch: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        self.reach().await?;
        self.table.writes.fetch_add(1, Ordering::SeqCst);
        let mut record = lock(&self.table.record);
        if record.as_ref() != prev {
            return Ok(false);
        }
        *record = Some(LeaseRecord {
            holder: self.holder.clone(),
            url: self.url(),
            epoch,
            expires_at_ms,
        });
        Ok(true)
    }
}
