//! In-memory adapters for every port: the planner's simulation and the
//! controller's tests on paused time run against these. They keep the ports'
//! contracts (the fleet replaces instances up to its desired capacity as an
//! Auto Scaling group does; the ledger hands an id to one instance at a time;
//! the store is compare-and-set) and can be told to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use zkop_spec::InstanceId;

use zkop_spec::zk::ServerId;

use super::{
    Claim, Fleet, FleetError, FleetView, IdLedger, Lease, LeaseState, LedgerError, StateStore,
    StoreError,
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
}

impl MemoryFleet {
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
}

impl IdLedger for MemoryLedger {
    async fn claim(
        &self,
        instance: &InstanceId,
        recorded: &BTreeSet<ServerId>,
    ) -> Result<Claim, LedgerError> {
        let mut held = lock(&self.held);
        if let Some((id, _)) = held
            .iter()
            .find(|(id, i)| !recorded.contains(id) && i.as_str() == instance)
        {
            return Ok(Claim {
                id: *id,
                resumed: true,
            });
        }
        let id = (1..=u64::from(u8::MAX))
            .map(ServerId)
            .find(|id| !held.contains_key(id))
            .ok_or(LedgerError::Exhausted(u64::from(u8::MAX)))?;
        held.insert(id, instance.to_string());
        Ok(Claim { id, resumed: false })
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
}

impl MemoryStore {
    /// What is stored.
    pub fn stored(&self) -> Option<Persisted> {
        lock(&self.stored).clone()
    }
}

impl StateStore for MemoryStore {
    async fn load(&self) -> Result<Option<Persisted>, StoreError> {
        Ok(self.stored())
    }

    async fn save(&self, state: &Persisted) -> Result<u64, StoreError> {
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

/// A leader lease in memory that one holder takes; it can be cut off (every
/// round fails, as when the controller cannot reach DynamoDB).
#[derive(Debug)]
pub struct MemoryLease {
    epoch: u64,
    ttl: std::time::Duration,
    cut_off: AtomicBool,
}

impl MemoryLease {
    /// A lease this controller holds under `epoch`, valid `ttl` after each round.
    pub fn new(epoch: u64, ttl: std::time::Duration) -> Self {
        Self {
            epoch,
            ttl,
            cut_off: AtomicBool::new(false),
        }
    }

    /// Makes every round fail (or succeed again).
    pub fn set_cut_off(&self, cut_off: bool) {
        self.cut_off.store(cut_off, Ordering::SeqCst);
    }
}

impl Lease for MemoryLease {
    fn ttl(&self) -> std::time::Duration {
        self.ttl
    }

    async fn round(&self, _now_ms: u64) -> Result<LeaseState, StoreError> {
        if self.cut_off.load(Ordering::SeqCst) {
            return Err(StoreError::Io(std::io::Error::other(
                "the lease table is unreachable",
            )));
        }
        Ok(LeaseState::Leader { epoch: self.epoch })
    }
}
