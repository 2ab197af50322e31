//! Builders for planner tests: a bootstrapped cluster and its observation,
//! changed step by step (`cluster(3).dead(2).joiner(4)`).
#![allow(dead_code, unused_imports)]

pub(crate) use std::collections::{BTreeMap, BTreeSet};
pub(crate) use std::time::Duration;

pub(crate) use zkop_spec::wire::{
    AgentReport, NodeAssignment, ProbeReport, ProcessReport, ReconfigOrder, ReconfigResult,
};
pub(crate) use zkop_spec::zk::{
    ConfigVersion, DynamicConfig, MemberRole, Server, ServerId, ServerMode, Zxid,
};
pub(crate) use zkop_spec::{InstanceId, ValidatedCluster};

pub(crate) use crate::model::{
    Instance, InstanceState, MemberRecord, Observed, PendingReconfig, Persisted, SeenReport,
};
pub(crate) use crate::plan::{
    ChangeReason, Phase, Plan, SERVING_FRESH, Step, plan, reconfig_is_safe,
};

pub(crate) const V1: u64 = 0x1_0000_0000;

pub(crate) fn spec(replicas: u32, min: u32, max: u32) -> ValidatedCluster {
    let text = format!(
        "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: {replicas}\n  voters:\n    min: {min}\n    max: {max}\n"
    );
    zkop_spec::parse_spec(&text).unwrap()
}

pub(crate) fn instance_of(id: u64) -> InstanceId {
    InstanceId::new(format!("i-{id}"))
}

pub(crate) fn server(id: u64, role: MemberRole) -> Server {
    Server {
        id: ServerId(id),
        address: format!("127.0.10.{id}"),
        quorum_port: 2888,
        election_port: 3888,
        role,
        client_address: format!("127.0.10.{id}"),
        client_port: 2181,
    }
}

pub(crate) fn report(instance: &str, id: Option<u64>, probe: Option<ProbeReport>) -> AgentReport {
    AgentReport {
        instance: instance.to_string().into(),
        address: "127.0.10.99".into(),
        epoch_seen: 1,
        revision_seen: 1,
        server_id: id.map(ServerId),
        process: ProcessReport::default(),
        probe,
        disk_zxid: None,
        disk_config_version: None,
        reconfig: None,
        errors: vec![],
        settings: None,
        backup: None,
        certificate_not_after_ms: None,
        served_certificate_not_after_ms: None,
        installed_releases: None,
        data_disk: None,
    }
}

/// `report`, just arrived, with nothing known of its server's history.
pub(crate) fn seen(report: AgentReport) -> SeenReport {
    SeenReport {
        report,
        age: Duration::ZERO,
        silent_for: Duration::ZERO,
        served_ago: None,
        running_ago: None,
        serving_for: None,
        answering_for: None,
        zxid_seen: None,
    }
}

/// A bootstrapped cluster and its observation, built up step by step.
pub(crate) struct B {
    pub(crate) spec: ValidatedCluster,
    pub(crate) obs: Observed,
    pub(crate) p: Persisted,
}

/// `n` voters with ids 1..=n, all serving; 1 leads.
pub(crate) fn cluster(n: u64) -> B {
    let config = DynamicConfig {
        version: Some(ConfigVersion(V1)),
        ..DynamicConfig::of((1..=n).map(|i| server(i, MemberRole::Participant)))
    };
    let mut b = B {
        spec: spec(n as u32, 3.min(n as u32 | 1), 5.max(n as u32 | 1)),
        obs: Observed {
            desired_capacity: n as u32,
            now_ms: 1_000_000,
            ..Observed::default()
        },
        p: Persisted {
            cluster: "t".into(),
            epoch: 1,
            ever_bootstrapped: true,
            config: Some(config.clone()),
            ..Persisted::default()
        },
    };
    for i in 1..=n {
        b = b.member(i, Some(config.clone()));
    }
    b.refresh_probes()
}

impl B {
    pub(crate) fn member(mut self, id: u64, initial: Option<DynamicConfig>) -> B {
        let inst = instance_of(id);
        self.obs.instances.push(Instance {
            id: inst.clone(),
            state: InstanceState::Running,
            zone: None,
            launch_template: None,
            private_ip: None,
        });
        self.p.members.insert(
            ServerId(id),
            MemberRecord {
                id: ServerId(id),
                instance: inst.clone(),
                server: server(id, MemberRole::Observer),
                initial_config: initial,
                retiring: false,
                adopted: true,
                recovery: None,
                settings: None,
                restore: None,
            },
        );
        self.obs.reports.insert(
            inst.clone(),
            // As observe says of a member that serves: it served and ran
            // just now (a test that wants otherwise says so), so that no
            // test runs with the not-serving rule switched off by accident.
            SeenReport {
                report: report(&inst, Some(id), None),
                age: Duration::ZERO,
                silent_for: Duration::ZERO,
                served_ago: Some(Duration::ZERO),
                running_ago: Some(Duration::ZERO),
                serving_for: None,
                answering_for: None,
                zxid_seen: None,
            },
        );
        self
    }

    /// Every started member serves the persisted config; 1 leads.
    pub(crate) fn refresh_probes(mut self) -> B {
        let config = self.p.config.clone();
        for m in self.p.members.values() {
            let Some(r) = self.obs.reports.get_mut(&m.instance) else {
                continue;
            };
            if m.initial_config.is_none() {
                r.report.server_id = None;
                continue;
            }
            let mode = if m.id.0 == 1 {
                ServerMode::Leader
            } else {
                ServerMode::Follower
            };
            r.report.probe = Some(ProbeReport {
                serving: true,
                mode: Some(mode),
                zxid: None,
                config: config.clone(),
                version: None,
            });
        }
        self
    }

    pub(crate) fn replicas(mut self, r: u32) -> B {
        self.spec.replicas = r;
        self.obs.desired_capacity = self.obs.desired_capacity.max(r);
        self
    }

    pub(crate) fn dead(mut self, id: u64) -> B {
        let inst = instance_of(id);
        for i in &mut self.obs.instances {
            if i.id == inst {
                i.state = InstanceState::Terminated;
            }
        }
        self.obs.reports.remove(&inst);
        self
    }

    pub(crate) fn joiner(self, id: u64) -> B {
        let initial = self
            .p
            .config
            .as_ref()
            .map(|c| c.with(server(id, MemberRole::Observer)));
        self.member(id, initial).refresh_probes()
    }

    pub(crate) fn unstarted(self, id: u64) -> B {
        self.member(id, None).refresh_probes()
    }

    pub(crate) fn plan(&self) -> Plan {
        plan(&self.spec, &self.obs, &self.p, Duration::from_secs(300))
    }
}

pub(crate) fn reconfig_of(plan: &Plan) -> (Vec<(u64, MemberRole)>, Vec<u64>) {
    match plan.steps.first() {
        Some(Step::Reconfig { pending }) => (
            pending
                .order
                .joining
                .iter()
                .map(|s| (s.id.0, s.role))
                .collect(),
            pending.order.leaving.iter().map(|s| s.0).collect(),
        ),
        other => panic!("expected a reconfig first, got {other:?} ({})", plan.reason),
    }
}

/// Three voters running the spec's settings; then the spec's tickTime changes.
pub(crate) fn rolling(b: B) -> B {
    let mut b = b;
    let old = crate::desired::spec_settings(&b.spec, &b.p);
    for m in b.p.members.values_mut() {
        m.settings = Some(old.clone());
        if let Some(r) = b.obs.reports.get_mut(&m.instance) {
            r.report.settings = Some(old.clone());
        }
    }
    b.spec.zookeeper.tick_time = 400;
    b
}

pub(crate) fn restarted(plan: &Plan) -> Option<u64> {
    match plan.steps.first() {
        Some(Step::RestartMember { id, .. }) => Some(id.0),
        _ => None,
    }
}

/// What `act` and the agent do for a restart: new settings, running them.
pub(crate) fn restart(b: &mut B, id: u64, at_ms: u64) {
    let new = crate::desired::spec_settings(&b.spec, &b.p);
    let m = b.p.members.get_mut(&ServerId(id)).unwrap();
    m.settings = Some(new.clone());
    b.obs.reports.get_mut(&m.instance).unwrap().report.settings = Some(new);
    b.p.rollout = Some(crate::model::RolloutStep {
        member: ServerId(id),
        at_ms,
        leader_zxid: None,
    });
}

impl B {
    /// The group launches from `current`; each listed instance came from its version.
    pub(crate) fn launched(mut self, current: &str, from: &[(u64, &str)]) -> B {
        self.obs.launch_template = Some(current.into());
        for (id, version) in from {
            let inst = instance_of(*id);
            for i in &mut self.obs.instances {
                if i.id == inst {
                    i.launch_template = Some(version.to_string());
                }
            }
        }
        self
    }

    /// `zkop replace` named member `id`'s instance.
    pub(crate) fn replace(mut self, id: u64) -> B {
        self.p.replace.insert(instance_of(id));
        self
    }

    /// The fleet keeps `n` instances.
    pub(crate) fn capacity(mut self, n: u32) -> B {
        self.obs.desired_capacity = n;
        self
    }

    /// Member `id` (a joiner) is in the config as an observer, and serves.
    pub(crate) fn observer_in_config(mut self, id: u64) -> B {
        let old = self.p.config.clone().unwrap();
        let mut config = old.with(server(id, MemberRole::Observer));
        config.version = old.version.map(|v| ConfigVersion(v.0 + 1));
        self.p.config = Some(config);
        self.refresh_probes()
    }
}

/// Three voters, and a fourth member on a new instance in the config as an
/// observer: a replacement's swap is next.
pub(crate) fn new_observer_joined() -> B {
    cluster(3).capacity(4).joiner(4).observer_in_config(4)
}

/// Carries out `step` on `b`'s state with in-memory adapters (no fleet or
/// ledger step is expected to matter).
pub fn act(b: &B, step: &Step) -> crate::act::Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(crate::act::act(
        step,
        &b.p,
        &b.spec,
        &crate::adapters::memory::MemoryFleet::default(),
        &crate::adapters::memory::MemoryLedger::default(),
        0,
    ))
    .unwrap()
}
