//! What each agent is told: a pure function of the persisted state and the spec.

use zkop_spec::ValidatedCluster;
use zkop_spec::wire::{DesiredNodeState, MemberAssignment, NodeAssignment, ServerSettings};

use crate::model::Persisted;

/// The settings the spec asks every server to run with.
pub fn spec_settings(spec: &ValidatedCluster, p: &Persisted) -> ServerSettings {
    ServerSettings {
        static_config: spec.static_properties(),
        heap_mb: spec.zookeeper.heap_mb,
        jvm_flags: spec.zookeeper.jvm_flags.clone(),
        roll: p.roll,
    }
}

/// The desired state of `instance`'s node.
pub fn desired_for(
    spec: &ValidatedCluster,
    p: &Persisted,
    instance: &str,
    revision: u64,
) -> DesiredNodeState {
    let record = p.members.values().find(|m| m.instance == instance);
    let node = match record {
        Some(m) if m.retiring => NodeAssignment::Retired { server_id: m.id },
        Some(m) => match &m.initial_config {
            Some(initial) => {
                let settings = m.settings.clone().unwrap_or_else(|| spec_settings(spec, p));
                NodeAssignment::Member(Box::new(MemberAssignment {
                    server_id: m.id,
                    initial_config: initial.clone(),
                    static_config: settings.static_config,
                    heap_mb: settings.heap_mb,
                    jvm_flags: settings.jvm_flags,
                    roll: settings.roll,
                    reconfig: p
                        .reconfig
                        .as_ref()
                        .filter(|r| r.via == instance)
                        .map(|r| r.order.clone()),
                    recovery: m.recovery.clone(),
                }))
            }
            None => NodeAssignment::Idle,
        },
        None => NodeAssignment::Idle,
    };
    DesiredNodeState {
        cluster: p.cluster.clone(),
        epoch: p.epoch,
        revision,
        instance: instance.to_string().into(),
        node,
    }
}
