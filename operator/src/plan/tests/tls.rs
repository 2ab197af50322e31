//! Switching TLS on in a running ensemble: ZooKeeper's documented order, one
//! stage at a time, each stage's settings rolled out one member at a time.

use zkop_spec::tls_stage::TlsStage::{self, *};

use super::kit::*;

/// A plaintext 3-voter cluster whose members run the plaintext settings
/// (a state from before stages were kept: the stage is read from them).
fn plaintext_cluster() -> B {
    let mut b = cluster(3);
    let settings = crate::desired::spec_settings(&b.spec, &b.p);
    for m in b.p.members.values_mut() {
        m.settings = Some(settings.clone());
        b.obs.reports.get_mut(&m.instance).unwrap().report.settings = Some(settings.clone());
    }
    b
}

fn tls_on(b: &mut B, extra: &str) {
    let text = format!(
        "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  tls:\n    enabled: true\n{extra}"
    );
    b.spec = zkop_spec::parse_spec(&text).unwrap();
}

/// Drives the planner as `act` and the agents would until the cluster runs;
/// returns the stages passed and the members restarted in each.
fn switch(b: &mut B) -> Vec<(TlsStage, Vec<u64>)> {
    let mut walk = vec![(crate::desired::tls_stage(&b.spec, &b.p), Vec::new())];
    for _ in 0..200 {
        let plan = b.plan();
        match plan.steps.first() {
            None if plan.phase == Phase::Running => return walk,
            Some(Step::AdvanceTlsStage { from, to }) => {
                assert_eq!(walk.last().unwrap().0, *from);
                b.p.tls_stage = Some(*to);
                if *to == SecureOnly {
                    b.p.roll += 1;
                }
                walk.push((*to, Vec::new()));
            }
            Some(Step::RestartMember { id, .. }) => {
                // One at a time: everyone else serves.
                assert!(b.p.members.values().all(|m| {
                    b.obs.reports[&m.instance]
                        .report
                        .probe
                        .as_ref()
                        .is_some_and(|p| p.serving)
                }));
                restart(b, id.0, b.obs.now_ms);
                walk.last_mut().unwrap().1.push(id.0);
            }
            Some(Step::FinishRollout) => b.p.rollout = None,
            Some(Step::Reconfig { pending }) => {
                let order = &pending.order;
                assert!(order.leaving.is_empty(), "{order:?}");
                let mut config = b.p.config.clone().unwrap().apply(&order.joining, &[]);
                config.version = Some(ConfigVersion(order.from_version.0 + 1));
                b.p.config = Some(config);
                let mut done = std::mem::replace(b, cluster(1)).refresh_probes();
                std::mem::swap(b, &mut done);
                walk.last_mut().unwrap().1.push(0);
            }
            _ => panic!("unexpected: {plan:?}"),
        }
    }
    panic!("no end: {walk:?}");
}

#[test]
fn tls_turns_on_one_stage_at_a_time_each_a_roll_leader_last() {
    let mut b = plaintext_cluster();
    assert_eq!(b.plan().phase, Phase::Running);
    tls_on(&mut b, "");
    let walk = switch(&mut b);
    let roll = vec![2, 3, 1];
    assert_eq!(
        walk,
        vec![
            (Plaintext, vec![]),
            (QuorumPortUnification, roll.clone()),
            (QuorumTlsUnified, roll.clone()),
            (QuorumTls, roll.clone()),
            (SecurePortBeside, roll.clone()),
            // One reconfig (0), naming every member without its client part.
            (ClientPartsDropped, vec![0]),
            (SecureOnly, roll),
        ]
    );
    let config = b.p.config.as_ref().unwrap();
    assert!(config.servers.values().all(|s| !s.has_client_part()));
    assert_eq!(config.voters().count(), 3);
    let settings = crate::desired::spec_settings(&b.spec, &b.p);
    assert_eq!(settings.static_config, b.spec.static_properties());
}

#[test]
fn with_the_plaintext_port_kept_the_switch_stops_beside_it_and_goes_back_off() {
    let mut b = plaintext_cluster();
    tls_on(&mut b, "    plaintextClientPort: true\n");
    let walk = switch(&mut b);
    assert_eq!(walk.last().unwrap().0, SecurePortBeside);
    assert!(
        b.p.config
            .as_ref()
            .unwrap()
            .servers
            .values()
            .all(|s| s.has_client_part())
    );
    // Off again: the same stages backwards, a roll each.
    b.spec = spec(3, 3, 5);
    let back: Vec<TlsStage> = switch(&mut b).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        back,
        [
            SecurePortBeside,
            QuorumTls,
            QuorumTlsUnified,
            QuorumPortUnification,
            Plaintext
        ]
    );
    assert!(
        !crate::desired::spec_settings(&b.spec, &b.p)
            .static_config
            .contains_key("sslQuorum")
    );
}

#[test]
fn a_joiner_during_the_switch_gets_the_lines_of_the_stage() {
    let mut b = plaintext_cluster();
    tls_on(&mut b, "");
    b.p.tls_stage = Some(SecureOnly);
    let mut config = b.p.config.clone().unwrap();
    for s in config.servers.values_mut() {
        s.client_port = 0;
    }
    b.p.config = Some(config);
    let mut b = b.replicas(4).unstarted(4).refresh_probes();
    let settings = crate::desired::spec_settings(&b.spec, &b.p);
    for m in b.p.members.values_mut() {
        m.settings = Some(settings.clone());
    }
    let plan = b.plan();
    match plan
        .steps
        .iter()
        .find(|s| matches!(s, Step::StartJoiner { .. }))
    {
        Some(Step::StartJoiner { initial_config, .. }) => {
            assert!(
                initial_config
                    .servers
                    .values()
                    .all(|s| !s.has_client_part()),
                "{initial_config:?}"
            );
        }
        other => panic!("{other:?}: {plan:?}"),
    }
}

#[test]
fn a_state_from_before_stages_reads_its_stage_from_the_members() {
    let mut b = plaintext_cluster();
    tls_on(&mut b, "");
    assert_eq!(crate::desired::tls_stage(&b.spec, &b.p), Plaintext);
    let secure = b.spec.static_properties();
    for m in b.p.members.values_mut() {
        m.settings.as_mut().unwrap().static_config = secure.clone();
    }
    // Client parts still in the config: the secure port beside them.
    assert_eq!(crate::desired::tls_stage(&b.spec, &b.p), SecurePortBeside);
    let mut config = b.p.config.clone().unwrap();
    for s in config.servers.values_mut() {
        s.client_port = 0;
    }
    b.p.config = Some(config);
    assert_eq!(crate::desired::tls_stage(&b.spec, &b.p), SecureOnly);
    // Before a bootstrap: the spec's.
    b.p.ever_bootstrapped = false;
    assert_eq!(crate::desired::tls_stage(&b.spec, &b.p), SecureOnly);
}
