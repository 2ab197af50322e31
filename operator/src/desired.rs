//! What each agent is told: a pure function of the persisted state and the spec.

use zkop_spec::ValidatedCluster;
use zkop_spec::tls_stage::TlsStage;
use zkop_spec::wire::{
    DesiredNodeState, MemberAssignment, NodeAssignment, ServerSettings, ShipOrder,
};
use zkop_spec::zk::ServerId;

use crate::model::Persisted;

/// The TLS stage the servers are at: the persisted one; before a bootstrap,
/// the spec's; in a state from before stages were kept, what the members'
/// settings and the config show.
pub fn tls_stage(spec: &ValidatedCluster, p: &Persisted) -> TlsStage {
    if let Some(stage) = p.tls_stage {
        return stage;
    }
    if !p.ever_bootstrapped {
        return TlsStage::target(spec);
    }
    let secure = p
        .members
        .values()
        .filter_map(|m| m.settings.as_ref())
        .any(|s| s.static_config.contains_key("secureClientPort"));
    let client_parts = p
        .config
        .iter()
        .flat_map(|c| c.servers.values())
        .any(|s| s.has_client_part());
    match (secure, client_parts) {
        (false, _) => TlsStage::Plaintext,
        (true, true) => TlsStage::SecurePortBeside,
        (true, false) => TlsStage::SecureOnly,
    }
}

/// The settings every server should run with: the spec's, at the TLS stage
/// the servers are at.
pub fn spec_settings(spec: &ValidatedCluster, p: &Persisted) -> ServerSettings {
    ServerSettings {
        static_config: spec.static_properties_at(tls_stage(spec, p)),
        heap_mb: spec.zookeeper.heap_mb,
        jvm_flags: spec.zookeeper.jvm_flags.clone(),
        roll: p.roll,
        zookeeper_version: Some(spec.zookeeper.version.to_string()),
    }
}

/// The shipping job, for the member the state names as the shipper.
fn ship_order(spec: &ValidatedCluster, p: &Persisted, id: ServerId) -> Option<ShipOrder> {
    let b = spec.backup.as_ref().filter(|_| p.shipper == Some(id))?;
    Some(ShipOrder {
        target: b.target.clone(),
        recovery_point_ms: millis(b.recovery_point),
        snapshot_every_ms: Some(millis(b.snapshot_every)),
        verify_every_ms: Some(millis(b.verify_every)),
        history_fork: p.history_fork,
    })
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
                    zookeeper_version: settings.zookeeper_version,
                    reconfig: p
                        .reconfig
                        .as_ref()
                        .filter(|r| r.via == instance)
                        .map(|r| r.order.clone()),
                    recovery: m.recovery.clone(),
                    restore: m.restore.clone(),
                    backup: ship_order(spec, p, m.id),
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
        // The controller's state sets it from its plan.
        probe_closely: true,
    }
}
