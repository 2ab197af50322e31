//! Standby voters: a down voter's vote goes to a standby that has served a
//! while, through the live quorum, and the down voter is retired.

use super::kit::*;

/// Three voters and member 4, an observer, as the standby; voter 2 has not
/// served for `down` and the standby has served for `stable`.
fn standby(down: Duration, stable: Duration) -> B {
    let mut b = cluster(3).joiner(4).observer_in_config(4);
    b.spec = zkop_spec::parse_spec(
        "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  voters:\n    standby: 1\n  healing:\n    voterDownAfter: 3s\n",
    )
    .unwrap();
    b.obs.desired_capacity = 4;
    let two = b.obs.reports.get_mut(&instance_of(2)).unwrap();
    two.report.probe.as_mut().unwrap().serving = false;
    two.served_ago = Some(down);
    b.obs.reports.get_mut(&instance_of(4)).unwrap().serving_for = Some(stable);
    b
}

#[test]
fn a_voter_down_past_voter_down_after_is_marked_once_a_standby_is_stable() {
    let b = standby(Duration::from_secs(4), Duration::from_secs(20));
    let plan = b.plan();
    assert_eq!(
        plan.steps.first(),
        Some(&Step::MarkVoterDown {
            id: ServerId(2),
            standby: ServerId(4),
            down_for_s: 4
        }),
        "{plan:?}"
    );
    // Not down long enough, or a standby that has not served a while: no.
    let early = standby(Duration::from_secs(2), Duration::from_secs(20));
    assert!(!matches!(
        early.plan().steps.first(),
        Some(Step::MarkVoterDown { .. })
    ));
    let fresh = standby(Duration::from_secs(4), Duration::from_secs(5));
    assert!(
        !matches!(fresh.plan().steps.first(), Some(Step::MarkVoterDown { .. })),
        "{:?}",
        fresh.plan()
    );
}

#[test]
fn the_standby_leaves_then_takes_the_down_voters_vote_and_the_down_voter_retires() {
    let mut b = standby(Duration::from_secs(4), Duration::from_secs(20));
    b.p.voters_down.insert(ServerId(2));
    // First the standby leaves the config (ZooKeeper may refuse to promote
    // an observer while a voter is down).
    let plan = b.plan();
    assert_eq!(reconfig_of(&plan), (vec![], vec![4]), "{plan:?}");
    // Out of the config and serving again as a joiner: one reconfig removes
    // the down voter and adds the standby as a participant.
    let mut config = b.p.config.clone().unwrap();
    config.servers.remove(&ServerId(4));
    config.version = Some(ConfigVersion(V1 + 2));
    b.p.config = Some(config);
    let plan = b.plan();
    assert_eq!(
        reconfig_of(&plan),
        (vec![(4, MemberRole::Participant)], vec![2]),
        "{plan:?}"
    );
    // The down voter, out of the config, retires: its instance makes room.
    let mut config = b.p.config.clone().unwrap();
    config.servers.remove(&ServerId(2));
    config
        .servers
        .insert(ServerId(4), server(4, MemberRole::Participant));
    config.version = Some(ConfigVersion(V1 + 3));
    b.p.config = Some(config);
    let plan = b.plan();
    assert!(
        plan.steps.contains(&Step::RetireMember { id: ServerId(2) }),
        "{plan:?}"
    );
}

#[test]
fn a_voter_a_roll_out_just_restarted_is_given_rollout_timeout_not_voter_down_after() {
    let mut b = standby(Duration::from_secs(4), Duration::from_secs(20));
    b.p.rollout = Some(crate::model::RolloutStep {
        member: ServerId(2),
        at_ms: b.obs.now_ms - 4_000,
        leader_zxid: None,
    });
    let marks = |b: &B| {
        b.plan()
            .steps
            .iter()
            .any(|s| matches!(s, Step::MarkVoterDown { .. }))
    };
    assert!(!marks(&b), "{:?}", b.plan());
    // Past rollout.timeout (5 min), a hung restart is a down voter too.
    b.p.rollout.as_mut().unwrap().at_ms = b.obs.now_ms - 301_000;
    assert!(marks(&b), "{:?}", b.plan());
}

#[test]
fn standby_mark_down_clears_when_the_voter_serves_again_before_the_swap_begins() {
    // Issue 24, finding 8: voter 2 was marked down under this config, then
    // served again (after a SNAP sync, say) before the standby left.
    let mut b = standby(Duration::from_secs(4), Duration::from_secs(20));
    b.p.voters_down.insert(ServerId(2));
    b.p.voter_down_config = b.p.config.as_ref().and_then(|c| c.version);
    let two = b.obs.reports.get_mut(&instance_of(2)).unwrap();
    two.report.probe.as_mut().unwrap().serving = true;
    two.served_ago = Some(Duration::ZERO);
    let plan = b.plan();
    assert_eq!(
        plan.steps,
        vec![Step::ClearVoterDown { id: ServerId(2) }],
        "{plan:?}"
    );
    // Once the swap began (the config changed), the mark stands.
    let mut config = b.p.config.clone().unwrap();
    config.servers.remove(&ServerId(4));
    config.version = Some(ConfigVersion(V1 + 2));
    b.p.config = Some(config);
    let plan = b.plan();
    assert!(
        !plan
            .steps
            .contains(&Step::ClearVoterDown { id: ServerId(2) }),
        "{plan:?}"
    );
}
