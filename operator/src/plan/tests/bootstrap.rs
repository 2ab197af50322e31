//! Bootstrap and fleet sizing.

use super::kit::*;

#[test]
fn a_healthy_cluster_that_matches_its_spec_needs_nothing() {
    let plan = cluster(3).plan();
    assert_eq!(plan.phase, Phase::Running, "{}", plan.reason);
    assert_eq!(plan.steps, vec![]);
}

#[test]
fn a_fresh_cluster_claims_ids_then_bootstraps_its_voters() {
    let mut b = B {
        spec: spec(3, 3, 5),
        obs: Observed {
            desired_capacity: 0,
            now_ms: 1,
            ..Observed::default()
        },
        p: Persisted::default(),
    };
    assert_eq!(
        b.plan().steps,
        vec![Step::SetDesiredCapacity { capacity: 3 }]
    );
    b.obs.desired_capacity = 3;
    for i in 1..=3 {
        let inst = instance_of(i);
        b.obs.instances.push(Instance {
            id: inst.clone(),
            state: InstanceState::Running,
            zone: None,
            launch_template: None,
            private_ip: None,
        });
        b.obs.reports.insert(
            inst.clone(),
            SeenReport {
                report: report(&inst, None, None),
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
    assert!(matches!(&b.plan().steps[..], [Step::ClaimId { instance, .. }] if instance == "i-1"));
    for i in 1..=3 {
        b = b.member(i, None);
    }
    let plan = b.plan();
    match &plan.steps[..] {
        [
            Step::Bootstrap {
                config,
                restore: None,
            },
        ] => {
            assert_eq!(config.voter_count(), 3);
            assert_eq!(config.version, None);
        }
        other => panic!("expected a bootstrap, got {other:?}"),
    }
}

#[test]
fn never_wipe_data_a_state_that_ever_held_an_ensemble_is_never_bootstrapped_again() {
    // Every member is down and nothing reports: wait, never bootstrap.
    let b = cluster(3).dead(1).dead(2).dead(3);
    let plan = b.plan();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Bootstrap { .. })),
        "{plan:?}"
    );
    assert_eq!(plan.phase, Phase::Degraded);
}

#[test]
fn an_externally_scaled_group_is_followed_not_sized() {
    let mut b = cluster(3).unstarted(4);
    let text = "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  fleet:\n    aws:\n      region: r\n      autoScalingGroupName: g\n      scaling: external\n  ids:\n    cloudwatchLogs:\n      logGroup: l\n  state:\n    dynamodb:\n      table: t\n";
    b.spec = zkop_spec::parse_spec(text).unwrap();
    // The group grew to 4 on its own (desired capacity 3 in the spec): the
    // fourth instance joins, and nobody touches the capacity.
    b.obs.desired_capacity = 4;
    let plan = b.plan();
    assert!(
        matches!(&plan.steps[..], [Step::StartJoiner { id, .. }] if *id == ServerId(4)),
        "{plan:?}"
    );
    b.obs.desired_capacity = 9;
    assert!(
        !b.plan()
            .steps
            .iter()
            .any(|s| matches!(s, Step::SetDesiredCapacity { .. }))
    );
}
