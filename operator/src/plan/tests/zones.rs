//! Voters across zones: no zone holds a majority when the fleet spans three.

use super::kit::*;

/// Places each listed member's instance in a zone.
fn zoned(mut b: B, zones: &[(u64, &str)]) -> B {
    for (id, zone) in zones {
        let inst = instance_of(*id);
        for i in &mut b.obs.instances {
            if i.id == inst {
                i.zone = Some(zone.to_string());
            }
        }
    }
    b
}

#[test]
fn new_voters_come_from_the_zones_with_the_fewest() {
    // Voters 1, 2 in a and 3 in b; observers 4 (a), 5 (c), 6 (b); five voters wanted.
    let b = cluster(3)
        .replicas(6)
        .joiner(4)
        .observer_in_config(4)
        .joiner(5)
        .observer_in_config(5)
        .joiner(6)
        .observer_in_config(6);
    let b = zoned(
        b,
        &[(1, "a"), (2, "a"), (3, "b"), (4, "a"), (5, "c"), (6, "b")],
    );
    let plan = b.plan();
    let (joining, leaving) = reconfig_of(&plan);
    assert_eq!(
        joining,
        vec![(5, MemberRole::Participant), (6, MemberRole::Participant)],
        "{plan:?}"
    );
    assert!(leaving.is_empty());
}

#[test]
fn a_dead_voters_vote_goes_to_a_joiner_in_the_zone_with_the_fewest_voters() {
    let b = cluster(3).dead(3).joiner(4).joiner(5);
    let b = zoned(b, &[(1, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "c")]);
    let plan = b.plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(5, MemberRole::Participant)], vec![3]),
        "{plan:?}"
    );
}

#[test]
fn a_zone_holding_a_majority_hands_a_vote_to_an_observer_elsewhere() {
    // Voters 1 (leader) and 2 in a, 3 in b; observer 4 in c; three voters wanted.
    let b = cluster(3).replicas(4).joiner(4).observer_in_config(4);
    let b = zoned(b, &[(1, "a"), (2, "a"), (3, "b"), (4, "c")]);
    let plan = b.plan();
    let (mut joining, leaving) = reconfig_of(&plan);
    joining.sort();
    assert_eq!(
        joining,
        vec![(2, MemberRole::Observer), (4, MemberRole::Participant)],
        "{plan:?}"
    );
    assert!(leaving.is_empty());
    assert!(plan.reason.is_empty() || !plan.steps.is_empty());
    // Two zones only: nothing to balance.
    let b = zoned(b, &[(4, "b")]);
    assert!(b.plan().steps.is_empty(), "{:?}", b.plan());
}

#[test]
fn voters_leave_from_the_most_crowded_zone_first() {
    // Five voters, 1 (leader) and 2 in a, 3 and 5 in b, 4 in c; three wanted.
    let b = cluster(5).replicas(5);
    let mut b = zoned(b, &[(1, "a"), (2, "a"), (3, "b"), (4, "c"), (5, "b")]);
    b.spec.voters_max = 3;
    let plan = b.plan();
    let (mut joining, _) = reconfig_of(&plan);
    joining.sort();
    // The two demoted are from the crowded zones a and b (not the leader),
    // leaving a, b and c one voter each (newest first would demote 5 and 4,
    // leaving two of three in a).
    assert_eq!(
        joining,
        vec![(2, MemberRole::Observer), (5, MemberRole::Observer)],
        "{plan:?}"
    );
}
