//! Uniqueness at claim (issue 12, finding 7): no id or address the state or
//! the config holds is handed out again.

use super::kit::*;
use crate::adapters::memory::{MemoryFleet, MemoryLedger};
use crate::adapters::{IdLedger, TakenIds};

/// Three voters, four wanted, and a new instance `i-9` reporting `address`.
fn new_instance_at(address: &str) -> B {
    let mut b = cluster(3).replicas(4);
    b.obs.instances.push(Instance {
        id: "i-9".into(),
        state: InstanceState::Running,
        zone: None,
        launch_template: None,
        private_ip: None,
    });
    let mut r = report("i-9", None, None);
    r.address = address.into();
    b.obs.reports.insert(
        "i-9".into(),
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
    b
}

fn claims(plan: &Plan) -> Vec<&Step> {
    plan.steps
        .iter()
        .filter(|s| matches!(s, Step::ClaimId { .. }))
        .collect()
}

#[test]
fn uniqueness_at_claim_an_address_the_config_holds_is_not_handed_out_again() {
    // EC2 gave the new instance the private IP member 2 still holds.
    let plan = new_instance_at("127.0.10.2").plan();
    assert!(claims(&plan).is_empty(), "{plan:?}");
    let plan = new_instance_at("127.0.10.9").plan();
    assert_eq!(claims(&plan).len(), 1, "{plan:?}");
}

#[tokio::test]
async fn uniqueness_at_claim_a_lost_ledger_entry_never_hands_a_live_member_s_id_to_a_new_instance()
{
    let b = new_instance_at("127.0.10.9");
    let ledger = MemoryLedger::default();
    for id in 1..=3 {
        let instance = instance_of(id);
        let claim = ledger.claim(&instance, &TakenIds::new()).await.unwrap();
        assert_eq!(claim.id, ServerId(id));
    }
    // Member 2's ledger entry is lost; then the new instance claims.
    ledger.lose(ServerId(2));
    let step = claims(&b.plan())[0].clone();
    let fleet = MemoryFleet::default();
    let out = crate::act::act(&step, &b.p, &b.spec, &fleet, &ledger, 0)
        .await
        .unwrap();
    let held = ledger.held();
    assert_eq!(held.get(&ServerId(4)).map(String::as_str), Some("i-9"));
    assert_eq!(
        held.get(&ServerId(2)).map(String::as_str),
        Some("i-2"),
        "{held:?}"
    );
    assert_eq!(out.state.members[&ServerId(2)].instance, instance_of(2));
    assert!(out.message.contains("re-created"), "{}", out.message);
}

#[tokio::test]
async fn a_lost_state_is_rebuilt_from_the_agents_reports_not_by_stopping_everyone() {
    let running = cluster(3);
    let config = running.p.config.clone().unwrap();
    let mut b = cluster(3);
    b.p = Persisted {
        cluster: "t".into(),
        epoch: 2,
        ..Persisted::default()
    };
    // Before anything: every agent would be told that no member runs on it.
    let idle = crate::desired::desired_for(&b.spec, &b.p, "i-1", 1);
    assert!(matches!(idle.node, NodeAssignment::Idle));
    let plan = b.plan();
    let step = plan.steps.first().cloned();
    let Some(Step::RebuildState {
        config: found,
        members,
    }) = &step
    else {
        panic!("expected a rebuild, got {plan:?}");
    };
    assert_eq!(found, &config);
    let held: Vec<(u64, InstanceId)> = members
        .iter()
        .map(|m| (m.id.0, m.instance.clone()))
        .collect();
    assert_eq!(
        held,
        (1..=3).map(|i| (i, instance_of(i))).collect::<Vec<_>>()
    );
    let (fleet, ledger) = (MemoryFleet::default(), MemoryLedger::default());
    let out = crate::act::act(step.as_ref().unwrap(), &b.p, &b.spec, &fleet, &ledger, 1)
        .await
        .unwrap();
    assert!(out.message.contains("state rebuilt"), "{}", out.message);
    for i in 1..=3 {
        let d = crate::desired::desired_for(&b.spec, &out.state, &format!("i-{i}"), 1);
        assert!(matches!(d.node, NodeAssignment::Member(_)), "{d:?}");
    }
    // Next only the instances are tagged again: nothing restarts or changes.
    b.p = out.state;
    let next = b.plan();
    assert!(
        next.steps
            .iter()
            .all(|s| matches!(s, Step::AdoptInstance { .. })),
        "{next:?}"
    );
}

#[test]
fn a_config_one_agent_reports_is_not_believed_for_a_rebuild() {
    // Only member 1's agent reports: a majority of the config does not confirm it.
    let mut b = cluster(3);
    b.p = Persisted {
        cluster: "t".into(),
        epoch: 2,
        ..Persisted::default()
    };
    b.obs.reports.retain(|i, _| i.as_str() == "i-1");
    let plan = b.plan();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::RebuildState { .. } | Step::Bootstrap { .. })),
        "{plan:?}"
    );
    assert!(
        plan.reason.contains("never bootstrapping"),
        "{}",
        plan.reason
    );
}

#[test]
fn api_trust_a_config_version_one_agent_reports_is_not_believed() {
    // Member 3's report claims a far newer config with only itself in it.
    let mut b = cluster(3);
    let forged = DynamicConfig {
        version: Some(ConfigVersion(V1 + 100)),
        ..DynamicConfig::of([server(3, MemberRole::Participant)])
    };
    let r3 = &mut b.obs.reports.get_mut("i-3").unwrap().report;
    r3.probe.as_mut().unwrap().config = Some(forged.clone());
    let plan = b.plan();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::RecordConfig { .. })),
        "{plan:?}"
    );
    // The same version served by a majority of its voters is ZooKeeper's.
    let mut real = b.p.config.clone().unwrap();
    real.version = Some(ConfigVersion(V1 + 1));
    for inst in ["i-1", "i-2"] {
        let r = &mut b.obs.reports.get_mut(inst).unwrap().report;
        r.probe.as_mut().unwrap().config = Some(real.clone());
    }
    assert!(
        matches!(b.plan().steps.first(), Some(Step::RecordConfig { config }) if config == &real),
        "{:?}",
        b.plan()
    );
}

#[test]
fn fail_closed_a_config_is_confirmed_by_its_content_not_its_version_alone() {
    // ZooKeeper's real next config (version V1+1) is served by members 2 and
    // 3; member 1's agent reports a forged config under that same version
    // with only itself in it. A majority serving "version V1+1" is no
    // confirmation of the forged servers.
    let mut b = cluster(3);
    let mut real = b.p.config.clone().unwrap();
    real.version = Some(ConfigVersion(V1 + 1));
    let forged = DynamicConfig {
        version: real.version,
        ..DynamicConfig::of([server(1, MemberRole::Participant)])
    };
    let set = |b: &mut B, inst: &str, c: &DynamicConfig| {
        let r = &mut b.obs.reports.get_mut(inst).unwrap().report;
        r.probe.as_mut().unwrap().config = Some(c.clone());
    };
    set(&mut b, "i-1", &forged);
    set(&mut b, "i-2", &real);
    set(&mut b, "i-3", &real);
    let plan = b.plan();
    assert!(
        matches!(plan.steps.first(), Some(Step::RecordConfig { config }) if config == &real),
        "{plan:?}"
    );
    // A lost state is rebuilt from the real config too, never the forged one.
    b.p = Persisted {
        cluster: "t".into(),
        epoch: 2,
        ..Persisted::default()
    };
    let plan = b.plan();
    assert!(
        matches!(plan.steps.first(), Some(Step::RebuildState { config, .. }) if config == &real),
        "{plan:?}"
    );
}

#[test]
fn a_lost_state_waits_for_every_member_of_the_config_before_rebuilding() {
    // The controller just started: member 3's agent has not reported yet.
    let mut b = cluster(3);
    b.p = Persisted {
        cluster: "t".into(),
        epoch: 2,
        ..Persisted::default()
    };
    b.obs.reports.remove("i-3");
    let early = plan(&b.spec, &b.obs, &b.p, Duration::from_secs(5));
    assert!(early.steps.is_empty(), "{early:?}");
    assert!(
        early.reason.contains("waiting for members [3]"),
        "{}",
        early.reason
    );
    // Silent for memberDeadAfter: rebuilt without it (then replaced as dead).
    let late = plan(&b.spec, &b.obs, &b.p, Duration::from_secs(300));
    assert!(
        matches!(late.steps.first(), Some(Step::RebuildState { members, .. }) if members.len() == 2),
        "{late:?}"
    );
}

#[test]
fn api_trust_an_agent_may_claim_only_its_own_instance_s_private_ip() {
    let mut b = new_instance_at("127.0.10.9");
    let ip = |b: &mut B, ip: &str| {
        let i = b.obs.instances.iter_mut().find(|i| i.id == "i-9").unwrap();
        i.private_ip = Some(ip.into());
    };
    ip(&mut b, "10.0.0.9");
    let plan = b.plan();
    assert!(
        claims(&plan).is_empty(),
        "claimed another address: {plan:?}"
    );
    ip(&mut b, "127.0.10.9");
    assert_eq!(claims(&b.plan()).len(), 1, "{:?}", b.plan());
}
