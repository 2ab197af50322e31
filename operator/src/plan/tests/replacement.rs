//! Rolling replacement.

use super::kit::*;

#[test]
fn a_new_launch_template_version_first_launches_one_extra_instance() {
    let b = cluster(3).launched("lt:2", &[(1, "lt:1"), (2, "lt:1"), (3, "lt:1")]);
    let plan = b.plan();
    assert_eq!(
        plan.steps,
        vec![Step::SetDesiredCapacity { capacity: 4 }],
        "{plan:?}"
    );
    assert_eq!(plan.phase, Phase::Reconciling);
    // Its instance gets an id and starts as a joiner; then joins as an observer.
    let b = b.capacity(4).unstarted(4);
    assert!(
        matches!(&b.plan().steps[..], [Step::StartJoiner { id, .. }] if *id == ServerId(4)),
        "{:?}",
        b.plan()
    );
    let b = cluster(3).capacity(4).joiner(4).launched(
        "lt:2",
        &[(1, "lt:1"), (2, "lt:1"), (3, "lt:1"), (4, "lt:2")],
    );
    assert_eq!(
        reconfig_of(&b.plan()),
        (vec![(4, MemberRole::Observer)], vec![])
    );
}

#[test]
fn the_new_member_takes_a_followers_vote_as_the_follower_leaves() {
    let b = new_observer_joined().launched(
        "lt:2",
        &[(1, "lt:1"), (2, "lt:1"), (3, "lt:1"), (4, "lt:2")],
    );
    let plan = b.plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(4, MemberRole::Participant)], vec![2])
    );
    let Some(Step::Reconfig { pending }) = plan.steps.first() else {
        unreachable!()
    };
    assert!(
        pending.purpose.contains("rolling replacement: follower 2")
            && pending.purpose.contains("lt:1"),
        "{}",
        pending.purpose
    );
}

#[test]
fn leader_last_a_rolling_replacement_replaces_the_leader_last_through_another_voter() {
    // 2 and 3 are replaced already; 1 leads.
    let b = new_observer_joined().launched(
        "lt:2",
        &[(1, "lt:1"), (2, "lt:2"), (3, "lt:2"), (4, "lt:2")],
    );
    let plan = b.plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(4, MemberRole::Participant)], vec![1])
    );
    let Some(Step::Reconfig { pending }) = plan.steps.first() else {
        unreachable!()
    };
    assert_ne!(pending.via, instance_of(1), "the leaving leader runs it");
}

#[test]
fn an_outdated_observer_just_leaves() {
    // Four members (three voters and observer 4), and 5 joined for 4.
    let b = cluster(3)
        .replicas(4)
        .joiner(4)
        .observer_in_config(4)
        .capacity(5)
        .joiner(5)
        .observer_in_config(5)
        .launched(
            "lt:2",
            &[
                (1, "lt:2"),
                (2, "lt:2"),
                (3, "lt:2"),
                (4, "lt:1"),
                (5, "lt:2"),
            ],
        );
    assert_eq!(reconfig_of(&b.plan()), (vec![], vec![4]));
}

#[test]
fn zkop_replace_replaces_one_member_without_a_launch_template() {
    let mut b = cluster(3);
    b.obs.replace_requested.insert(instance_of(2));
    assert_eq!(
        b.plan().steps.first(),
        Some(&Step::ReplaceInstance {
            instance: instance_of(2)
        })
    );
    b.obs.replace_requested.clear();
    b.p.replace.insert(instance_of(2));
    assert_eq!(
        b.plan().steps,
        vec![Step::SetDesiredCapacity { capacity: 4 }]
    );
    let b = new_observer_joined().replace(2);
    let plan = b.plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(4, MemberRole::Participant)], vec![2])
    );
    assert!(
        matches!(&plan.steps[0], Step::Reconfig { pending } if pending.purpose.contains("(zkop replace)")),
        "{plan:?}"
    );
}

#[test]
fn the_next_replacement_waits_until_the_replaced_instance_is_gone() {
    let mut b = new_observer_joined().launched(
        "lt:2",
        &[(1, "lt:1"), (2, "lt:1"), (3, "lt:1"), (4, "lt:2")],
    );
    // The swap is done: 4 votes, 2 left the config and retires; its instance is up.
    let mut config = DynamicConfig::of([1, 3, 4].map(|i| server(i, MemberRole::Participant)));
    config.version = Some(ConfigVersion(V1 + 2));
    b.p.config = Some(config);
    b.p.members.get_mut(&ServerId(2)).unwrap().retiring = true;
    let b = b.refresh_probes();
    let plan = b.plan();
    assert_eq!(
        plan.steps,
        vec![Step::TerminateInstance {
            instance: instance_of(2)
        }],
        "{plan:?}"
    );
    let mut b = b;
    b.obs.desired_capacity = 3;
    for i in &mut b.obs.instances {
        if i.id == instance_of(2) {
            i.state = InstanceState::Terminating;
        }
    }
    let plan = b.plan();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::SetDesiredCapacity { .. })),
        "{plan:?}"
    );
    assert!(
        plan.reason.contains("rolling replacement"),
        "{}",
        plan.reason
    );
    // Gone: its id is released, and the next extra instance is asked for.
    let mut b = b.dead(2);
    b.p.members.remove(&ServerId(2));
    assert_eq!(
        b.plan().steps,
        vec![Step::SetDesiredCapacity { capacity: 4 }]
    );
}

#[test]
fn scale_in_waits_for_a_demoted_observer_instead_of_removing_another_voter() {
    // 5 -> 3: one voter left and 4 was demoted; 4 re-syncs as an observer
    // and does not serve yet. Three voters are the target: none goes.
    let mut b = new_observer_joined();
    b.obs.desired_capacity = 3;
    let r = &mut b.obs.reports.get_mut(&instance_of(4)).unwrap().report;
    r.probe = None;
    let plan = b.plan();
    let touches_a_voter = plan.steps.iter().any(|s| match s {
        Step::Reconfig { pending } => {
            pending.order.leaving.iter().any(|id| id.0 <= 3)
                || pending.order.joining.iter().any(|j| j.id.0 <= 3)
        }
        _ => false,
    });
    assert!(!touches_a_voter, "{plan:?}");
}
