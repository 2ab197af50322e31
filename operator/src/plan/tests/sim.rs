//! Simulation: the real planner and `act` against an in-memory fleet and ledger
//! and a simulated ensemble that follows ZooKeeper's reconfig rules.

use proptest::prelude::*;

use super::kit::*;
use crate::act::act;
use crate::adapters::Fleet;
use crate::adapters::memory::{MemoryFleet, MemoryLedger};
use crate::desired::desired_for;

/// The simulated ensemble: the committed config and reconfig outcomes.
#[derive(Default)]
struct SimZk {
    config: Option<DynamicConfig>,
    results: BTreeMap<InstanceId, ReconfigResult>,
    done: BTreeSet<u64>,
}

#[derive(Debug, Clone)]
enum Event {
    Nothing,
    Kill(usize),
    Replicas(u32),
    /// The group gets a new launch template version.
    NewTemplate,
    /// `zkop replace` names the nth member's instance.
    Replace(usize),
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => Just(Event::Nothing),
        1 => (0usize..10).prop_map(Event::Kill),
        1 => (3u32..=7).prop_map(Event::Replicas),
        1 => Just(Event::NewTemplate),
        1 => (0usize..10).prop_map(Event::Replace),
    ]
}

struct Sim {
    spec: ValidatedCluster,
    fleet: MemoryFleet,
    ledger: MemoryLedger,
    zk: SimZk,
    p: Persisted,
    now_ms: u64,
}

impl Sim {
    /// Server ids running: up instance, told to run as a member.
    fn running(&self) -> BTreeSet<ServerId> {
        self.p
            .members
            .values()
            .filter(|m| self.fleet.up(&m.instance))
            .filter(|m| {
                matches!(
                    desired_for(&self.spec, &self.p, &m.instance, 0).node,
                    NodeAssignment::Member(_)
                )
            })
            .map(|m| m.id)
            .collect()
    }

    fn has_quorum(config: &DynamicConfig, running: &BTreeSet<ServerId>) -> bool {
        config.voters().filter(|s| running.contains(&s.id)).count() >= config.majority()
    }

    fn observe(&mut self, rt: &tokio::runtime::Runtime) -> Observed {
        let view = rt.block_on(self.fleet.observe()).unwrap();
        let running = self.running();
        // A bootstrap config is committed once its servers all run.
        if let Some(c) = self.p.config.as_ref().filter(|c| c.version.is_none())
            && self.zk.config.is_none()
            && c.servers.keys().all(|id| running.contains(id))
        {
            self.zk.config = Some(DynamicConfig {
                version: Some(ConfigVersion(V1)),
                ..c.clone()
            });
        }
        let quorum = self
            .zk
            .config
            .as_ref()
            .is_some_and(|c| Self::has_quorum(c, &running));
        let leader = self
            .zk
            .config
            .as_ref()
            .and_then(|c| c.voters().map(|s| s.id).find(|id| running.contains(id)));
        let mut reports = BTreeMap::new();
        for i in view
            .instances
            .iter()
            .filter(|i| i.state != InstanceState::Terminated)
        {
            let m = self.p.members.values().find(|m| m.instance == i.id);
            let id = m.filter(|m| running.contains(&m.id)).map(|m| m.id);
            let probe = id.map(|id| {
                let role = self.zk.config.as_ref().and_then(|c| c.role_of(id));
                ProbeReport {
                    serving: quorum,
                    mode: quorum.then_some(if Some(id) == leader {
                        ServerMode::Leader
                    } else if role == Some(MemberRole::Observer) {
                        ServerMode::Observer
                    } else {
                        ServerMode::Follower
                    }),
                    zxid: None,
                    config: if quorum { self.zk.config.clone() } else { None },
                    version: None,
                }
            });
            let mut r = report(&i.id, id.map(|i| i.0), probe);
            r.reconfig = self.zk.results.get(&i.id).cloned();
            reports.insert(
                i.id.clone(),
                SeenReport {
                    report: r,
                    age: Duration::ZERO,
                    silent_for: Duration::ZERO,
                    served_ago: None,
                    running_ago: None,
                    serving_for: None,
                    answering_for: None,
                    zxid_seen: None,
                },
            );
        }
        Observed {
            instances: view.instances,
            desired_capacity: view.desired_capacity,
            reports,
            now_ms: self.now_ms,
            leaderless_for: if leader.is_some() {
                Duration::ZERO
            } else {
                Duration::from_secs(3600)
            },
            roll_requested: false,
            replace_requested: Default::default(),
            launch_template: view.launch_template,
        }
    }

    /// What ZooKeeper does with the order in flight.
    fn run_reconfig(&mut self) {
        let Some(pending) = self.p.reconfig.clone() else {
            return;
        };
        if !self.zk.done.insert(pending.order.seq) {
            return;
        }
        let running = self.running();
        let Some(config) = self.zk.config.clone() else {
            return;
        };
        let after = config.apply(&pending.order.joining, &pending.order.leaving);
        let outcome = if config.version != Some(pending.order.from_version) {
            Err("BadVersion")
        } else if !Self::has_quorum(&config, &running) || !Self::has_quorum(&after, &running) {
            Err("NewConfigNoQuorum")
        } else {
            Ok(())
        };
        let result = match outcome {
            Ok(()) => {
                let v = config.version.map(|v| v.0 + 1);
                let new = DynamicConfig {
                    version: v.map(ConfigVersion),
                    ..after
                };
                self.zk.config = Some(new.clone());
                ReconfigResult {
                    seq: pending.order.seq,
                    config: Some(new),
                    error: None,
                }
            }
            Err(e) => ReconfigResult {
                seq: pending.order.seq,
                config: None,
                error: Some(e.into()),
            },
        };
        self.zk.results.insert(pending.via.clone(), result);
    }

    /// One pass; checks the membership rules on the step the planner chose.
    fn pass(&mut self, rt: &tokio::runtime::Runtime) -> Result<Plan, TestCaseError> {
        let obs = self.observe(rt);
        let plan = plan(&self.spec, &obs, &self.p, Duration::from_secs(3600));
        if let Some(step) = plan.steps.first() {
            let running = self.running();
            match step {
                Step::Reconfig { pending } => {
                    let config = self.zk.config.clone().unwrap_or_default();
                    let after = config.apply(&pending.order.joining, &pending.order.leaving);
                    prop_assert!(after.voter_count() % 2 == 1, "even voters: {after:?}");
                    prop_assert!(
                        Self::has_quorum(&config, &running),
                        "no quorum before {pending:?}"
                    );
                    prop_assert!(
                        Self::has_quorum(&after, &running),
                        "no quorum after {pending:?}"
                    );
                }
                Step::TerminateInstance { instance } => {
                    let listed = self.p.members.values().any(|m| {
                        &m.instance == instance
                            && self
                                .zk
                                .config
                                .as_ref()
                                .is_some_and(|c| c.servers.contains_key(&m.id))
                    });
                    prop_assert!(
                        !listed,
                        "{instance} terminated while its member is in the config"
                    );
                }
                Step::Bootstrap { .. } => prop_assert!(!self.p.ever_bootstrapped),
                _ => {}
            }
            let out = rt
                .block_on(act(
                    step,
                    &self.p,
                    &self.spec,
                    &self.fleet,
                    &self.ledger,
                    self.now_ms,
                ))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            self.p = out.state;
        }
        // No two live instances ever hold one id.
        let mut holders: BTreeMap<ServerId, &str> = BTreeMap::new();
        for m in self
            .p
            .members
            .values()
            .filter(|m| self.fleet.up(&m.instance))
        {
            prop_assert!(
                holders.insert(m.id, &m.instance).is_none(),
                "id {} held twice",
                m.id
            );
        }
        self.run_reconfig();
        self.now_ms += 1000;
        Ok(plan)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_fleets_failures_and_spec_changes_never_break_the_membership_rules(
        start in 3u32..=6,
        events in proptest::collection::vec(arb_event(), 0..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sim = Sim {
            spec: spec(start, 3, 5),
            fleet: MemoryFleet::default(),
            ledger: MemoryLedger::default(),
            zk: SimZk::default(),
            p: Persisted { cluster: "t".into(), epoch: 1, ..Persisted::default() },
            now_ms: 1_000_000,
        };
        let mut kills_since_quiet = 0;
        let mut quorum_ever_lost = false;
        for event in events {
            match event {
                Event::Nothing => kills_since_quiet = 0,
                Event::Kill(n) => {
                    sim.fleet.kill(n);
                    kills_since_quiet += 1;
                    if kills_since_quiet > 1 { quorum_ever_lost = true; }
                }
                Event::Replicas(r) => sim.spec.replicas = r,
                Event::NewTemplate => sim.fleet.new_launch_template_version(),
                Event::Replace(n) => {
                    let instances: Vec<InstanceId> =
                        sim.p.members.values().map(|m| m.instance.clone()).collect();
                    if !instances.is_empty() {
                        sim.p.replace.insert(instances[n % instances.len()].clone());
                    }
                }
            }
            for _ in 0..3 {
                sim.pass(&rt)?;
            }
        }
        // Left alone, an ensemble that kept its quorum converges on the spec.
        let mut last = None;
        for _ in 0..120 {
            last = Some(sim.pass(&rt)?);
        }
        let last = last.unwrap();
        let running = sim.running();
        let quorum = sim.zk.config.as_ref().is_some_and(|c| Sim::has_quorum(c, &running));
        if !quorum_ever_lost && quorum {
            prop_assert_eq!(last.phase, Phase::Running, "{}", last.reason);
            let config = sim.zk.config.clone().unwrap();
            prop_assert_eq!(config.voter_count(), sim.spec.target_voters());
            prop_assert_eq!(config.servers.len(), sim.spec.replicas as usize);
            // Every member runs on an instance of the current launch template.
            let view = rt.block_on(sim.fleet.observe()).unwrap();
            for id in config.servers.keys() {
                let m = &sim.p.members[id];
                let i = view.instances.iter().find(|i| i.id == m.instance);
                prop_assert_eq!(
                    i.and_then(|i| i.launch_template.clone()),
                    view.launch_template.clone(),
                    "member {} was not replaced", id
                );
                prop_assert!(!sim.p.replace.contains(&m.instance), "member {} was not replaced", id);
            }
        }
    }
}
