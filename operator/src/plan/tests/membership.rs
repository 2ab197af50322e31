//! Membership changes: healing, scaling, the reconfig in flight, safety.

use super::kit::*;
use crate::plan::RECONFIG_TIMEOUT;

#[test]
fn a_dead_voter_is_replaced_by_a_serving_joiner_in_one_reconfig() {
    let plan = cluster(3).dead(3).joiner(4).plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(4, MemberRole::Participant)], vec![3])
    );
}

#[test]
fn a_dead_voter_without_a_replacement_gets_one_started_as_an_observer() {
    let plan = cluster(3).dead(3).unstarted(4).plan();
    match &plan.steps[..] {
        [Step::StartJoiner { id, initial_config }] => {
            assert_eq!(*id, ServerId(4));
            assert_eq!(
                initial_config.role_of(ServerId(4)),
                Some(MemberRole::Observer)
            );
            assert_eq!(initial_config.voter_count(), 3);
        }
        other => panic!("expected a joiner start, got {other:?}"),
    }
}

#[test]
fn odd_voters_scaling_out_to_five_adds_two_voters_together_and_only_once_both_serve() {
    let b = cluster(3).replicas(5).joiner(4).unstarted(5);
    let plan = b.plan();
    assert!(
        matches!(&plan.steps[..], [Step::StartJoiner { id, .. }] if *id == ServerId(5)),
        "{plan:?}"
    );
    let plan = cluster(3).replicas(5).joiner(4).joiner(5).plan();
    assert_eq!(
        reconfig_of(&plan),
        (
            vec![(4, MemberRole::Participant), (5, MemberRole::Participant)],
            vec![]
        )
    );
}

#[test]
fn a_fourth_member_joins_as_an_observer() {
    let plan = cluster(3).replicas(4).joiner(4).plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(4, MemberRole::Observer)], vec![])
    );
}

#[test]
fn scaling_five_to_four_removes_a_follower_and_demotes_another_never_the_leader() {
    let plan = cluster(5).replicas(4).plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(4, MemberRole::Observer)], vec![5])
    );
}

#[test]
fn scaling_in_removes_an_observer_first() {
    let mut b = cluster(3).replicas(4).joiner(4);
    let c =
        b.p.config
            .as_ref()
            .unwrap()
            .with(server(4, MemberRole::Observer));
    b.p.config = Some(DynamicConfig {
        version: Some(ConfigVersion(V1 + 1)),
        ..c
    });
    b = b.refresh_probes();
    assert_eq!(b.plan().phase, Phase::Running, "{}", b.plan().reason);
    b.spec.replicas = 3;
    assert_eq!(reconfig_of(&b.plan()), (vec![], vec![4]));
}

#[test]
fn remove_before_terminate_a_member_removed_on_purpose_is_terminated_and_then_forgotten() {
    let mut b = cluster(3);
    let mut c = b.p.config.clone().unwrap();
    c.servers.remove(&ServerId(3));
    b.p.config = Some(c);
    b.p.members.get_mut(&ServerId(3)).unwrap().retiring = true;
    assert_eq!(
        b.plan().steps.first(),
        Some(&Step::TerminateInstance {
            instance: "i-3".into()
        })
    );
    let b = b.dead(3);
    assert_eq!(
        b.plan().steps.first(),
        Some(&Step::ForgetMember { id: ServerId(3) })
    );
}

#[test]
fn an_instance_held_by_a_termination_hook_keeps_its_lease_until_its_member_left() {
    let mut b = cluster(3).joiner(4);
    for i in &mut b.obs.instances {
        if i.id == "i-3" {
            i.state = InstanceState::Terminating;
        }
    }
    // Member 3 is going: replaced in the config first, hook left waiting, id kept.
    let plan = b.plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(4, MemberRole::Participant)], vec![3])
    );
    let mut c = b.p.config.clone().unwrap();
    c.servers.remove(&ServerId(3));
    c.servers
        .insert(ServerId(4), server(4, MemberRole::Participant));
    b.p.config = Some(DynamicConfig {
        version: Some(ConfigVersion(V1 + 1)),
        ..c
    });
    b = b.refresh_probes();
    // Out of the config: the hook is completed; the lease stays until the
    // instance is confirmed terminated.
    let plan = b.plan();
    assert_eq!(
        plan.steps.first(),
        Some(&Step::CompleteLifecycleAction {
            instance: "i-3".into()
        }),
        "{plan:?}"
    );
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::ForgetMember { .. })),
        "{plan:?}"
    );
    let b = b.dead(3);
    assert_eq!(
        b.plan().steps.first(),
        Some(&Step::ForgetMember { id: ServerId(3) })
    );
}

#[test]
fn no_second_reconfig_while_one_is_in_flight_and_its_answer_completes_it() {
    let mut b = cluster(3).replicas(4).joiner(4);
    let Some(Step::Reconfig { pending }) = b.plan().steps.first().cloned() else {
        panic!("expected a reconfig")
    };
    b.p.reconfig = Some(pending.clone());
    let plan = b.plan();
    assert_eq!(plan.steps, vec![], "{}", plan.reason);
    let done = DynamicConfig::parse("server.1=a:1:2;a:3\nversion=100000001\n").unwrap();
    b.obs.reports.get_mut(&pending.via).unwrap().report.reconfig = Some(ReconfigResult {
        seq: pending.order.seq,
        config: Some(done.clone()),
        error: None,
    });
    assert_eq!(
        b.plan().steps,
        vec![Step::CompleteReconfig {
            seq: pending.order.seq,
            config: done
        }]
    );
}

#[test]
fn a_reconfig_whose_agent_never_answers_is_abandoned() {
    let mut b = cluster(3).replicas(4).joiner(4);
    let Some(Step::Reconfig { pending }) = b.plan().steps.first().cloned() else {
        panic!("expected a reconfig")
    };
    b.p.reconfig = Some(pending);
    b.obs.now_ms += RECONFIG_TIMEOUT.as_millis() as u64;
    assert!(matches!(b.plan().steps[..], [Step::FailReconfig { .. }]));
}

#[test]
fn a_slow_member_is_left_alone_until_member_dead_after() {
    let mut b = cluster(3);
    let r = b.obs.reports.get_mut("i-3").unwrap();
    r.age = Duration::from_secs(30);
    r.silent_for = Duration::from_secs(30);
    r.report.probe = None;
    let plan = b.plan();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Reconfig { .. })),
        "{plan:?}"
    );
}

#[test]
fn live_majority_kept_no_reconfig_runs_without_a_majority_of_serving_voters() {
    let plan = cluster(3).dead(2).dead(3).joiner(4).plan();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Reconfig { .. })),
        "{plan:?}"
    );
}

#[test]
fn reconfig_safety_counts_voters_of_both_configs() {
    let c = DynamicConfig::of((1..=3).map(|i| server(i, MemberRole::Participant)));
    let all = |_: ServerId| true;
    assert!(reconfig_is_safe(
        &c,
        &[
            server(4, MemberRole::Participant),
            server(5, MemberRole::Participant)
        ],
        &[],
        all
    ));
    assert!(
        !reconfig_is_safe(&c, &[server(4, MemberRole::Participant)], &[], all),
        "even voters"
    );
    assert!(
        !reconfig_is_safe(&c, &[], &[ServerId(3)], all),
        "even voters"
    );
    let only_one = |id: ServerId| id.0 == 1;
    assert!(!reconfig_is_safe(
        &c,
        &[],
        &[ServerId(3), ServerId(2)],
        only_one
    ));
}

#[test]
fn one_id_one_instance_an_id_is_released_only_once_its_instance_is_gone_and_claimed_only_for_a_new_instance()
 {
    // Member 3 left the config and retires; a fourth instance comes up.
    let mut b = cluster(3).replicas(4);
    let mut c = b.p.config.clone().unwrap();
    c.servers.remove(&ServerId(3));
    b.p.config = Some(c);
    b.p.members.get_mut(&ServerId(3)).unwrap().retiring = true;
    b.obs.instances.push(Instance {
        id: "i-9".into(),
        state: InstanceState::Running,
        zone: None,
        launch_template: None,
        private_ip: None,
    });
    b.obs.reports.insert(
        "i-9".into(),
        SeenReport {
            report: report("i-9", None, None),
            age: Duration::ZERO,
            silent_for: Duration::ZERO,
            served_ago: None,
            running_ago: None,
            serving_for: None,
            answering_for: None,
            zxid_seen: None,
        },
    );
    let claims = |plan: &Plan| -> Vec<InstanceId> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                Step::ClaimId { instance, .. } => Some(instance.clone()),
                _ => None,
            })
            .collect()
    };
    let forgets = |plan: &Plan| {
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::ForgetMember { .. }))
    };
    // While i-3 runs, its id stays held; only the new instance is claimed for.
    let plan = b.plan();
    assert!(!forgets(&plan), "{plan:?}");
    assert_eq!(claims(&plan), ["i-9"], "{plan:?}");
    // Once i-3 is gone, its id is released; no instance holding a member is
    // ever claimed for.
    let b = b.dead(3);
    let plan = b.plan();
    assert!(
        plan.steps.contains(&Step::ForgetMember { id: ServerId(3) }),
        "{plan:?}"
    );
    assert_eq!(claims(&plan), ["i-9"], "{plan:?}");
}
