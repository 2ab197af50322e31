//! When a member is dead (issue 12, finding 6): a crash-looping voter while a
//! majority serves; never by silence alone without a serving majority; and a
//! refused promotion done the other way, with backoff.

use super::kit::*;
use crate::adapters::memory::{MemoryFleet, MemoryLedger};
use crate::model::PendingReconfig;

#[test]
fn crash_looping_a_voter_not_serving_for_member_dead_after_while_a_majority_serves_is_dead() {
    // Voter 3's agent reports every second, but its server has not served
    // (its JVM keeps exiting) for a while.
    let mut b = cluster(3);
    let r3 = b.obs.reports.get_mut("i-3").unwrap();
    r3.report.probe = None;
    r3.served_ago = Some(Duration::from_secs(59));
    let plan = b.plan();
    assert!(!plan.reason.contains("dead"), "after 59 s: {}", plan.reason);
    b.obs.reports.get_mut("i-3").unwrap().served_ago = Some(Duration::from_secs(61));
    let plan = b.plan();
    assert!(
        plan.reason.contains("are dead"),
        "after 61 s: {}",
        plan.reason
    );
}

#[test]
fn a_leader_that_took_over_judges_only_the_silence_it_saw_itself() {
    // A chaos run (seed 61, a controller killed): the standby took over
    // holding a report of voter 3 from when it last led, minutes before;
    // 3 s on, before voter 3's agent had reported to it, it called voter 3
    // dead and raised the group's capacity for a replacement.
    let mut b = cluster(3);
    let r3 = b.obs.reports.get_mut("i-3").unwrap();
    r3.age = Duration::from_secs(300);
    r3.silent_for = Duration::from_secs(3);
    r3.served_ago = Some(Duration::from_secs(3));
    let plan = b.plan();
    assert!(!plan.reason.contains("dead"), "{}", plan.reason);
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::SetDesiredCapacity { .. })),
        "{plan:?}"
    );
    // Silent as long under this controller: dead.
    b.obs.reports.get_mut("i-3").unwrap().silent_for = Duration::from_secs(61);
    assert!(b.plan().reason.contains("are dead"), "{}", b.plan().reason);
}

#[test]
fn crash_looping_without_a_serving_majority_silence_is_no_death_and_bootstrap_discards_nothing() {
    // Every agent silent for twice memberDeadAfter (a partition between
    // the controller and the ensemble, say); instances up.
    let mut b = cluster(3);
    b.spec.healing.on_total_loss = zkop_spec::cluster::TotalLossPolicy::Bootstrap;
    for r in b.obs.reports.values_mut() {
        r.age = Duration::from_secs(121);
        r.silent_for = Duration::from_secs(121);
        r.served_ago = Some(Duration::from_secs(121));
        r.report.process.running = true;
        r.running_ago = Some(Duration::from_secs(121));
    }
    b.obs.leaderless_for = Duration::from_secs(121);
    let plan = b.plan();
    let drastic = plan.steps.iter().any(|s| {
        matches!(
            s,
            Step::DiscardEnsemble { .. } | Step::Bootstrap { .. } | Step::FenceInstance { .. }
        )
    });
    assert!(!drastic, "{plan:?}");
    assert_eq!(plan.phase, Phase::QuorumLost, "{}", plan.reason);
}

/// Three voters, observers 4 and 5 in the config, five wanted: the next
/// reconfig promotes both.
fn promotion_due() -> B {
    cluster(3)
        .replicas(5)
        .capacity(5)
        .joiner(4)
        .observer_in_config(4)
        .joiner(5)
        .observer_in_config(5)
}

#[test]
fn a_refused_promotion_is_done_remove_then_add() {
    let mut b = promotion_due();
    match b.plan().steps.first() {
        Some(Step::Reconfig { pending }) => assert_eq!(
            reconfig_of(&b.plan()).0,
            vec![(4, MemberRole::Participant), (5, MemberRole::Participant)],
            "{pending:?}"
        ),
        other => panic!("expected a promotion, got {other:?}"),
    }
    // ZooKeeper refused it: observer 4 leaves first, kept (not retired).
    b.p.promote_by_rejoining.insert(ServerId(4));
    match b.plan().steps.first() {
        Some(Step::Reconfig { pending }) => {
            assert!(pending.order.joining.is_empty(), "{pending:?}");
            assert_eq!(pending.order.leaving, vec![ServerId(4)]);
            assert_eq!(pending.rejoining, vec![ServerId(4)]);
        }
        other => panic!("expected observer 4 to leave, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_promotion_backs_off_doubling_and_remembers_the_observer() {
    let b = promotion_due();
    let mut p = b.p.clone();
    let Some(Step::Reconfig { pending }) = b.plan().steps.first().cloned() else {
        panic!("expected a promotion: {:?}", b.plan());
    };
    let (fleet, ledger) = (MemoryFleet::default(), MemoryLedger::default());
    let mut waits = Vec::new();
    for _ in 0..6 {
        p.reconfig = Some(PendingReconfig { ..pending.clone() });
        let fail = Step::FailReconfig {
            seq: pending.order.seq,
            error: "KeeperErrorCode = NewConfigNoQuorum".into(),
        };
        let now = 1_000_000;
        let out = crate::act::act(&fail, &p, &b.spec, &fleet, &ledger, now)
            .await
            .unwrap();
        waits.push((out.state.reconfig_not_before_ms - now) / 1000);
        assert!(out.message.contains("NewConfigNoQuorum"), "{}", out.message);
        assert!(out.message.contains("rejoin"), "{}", out.message);
        p = out.state;
    }
    assert_eq!(waits, vec![3, 6, 12, 24, 48, 60]);
    assert_eq!(
        p.promote_by_rejoining,
        BTreeSet::from([ServerId(4), ServerId(5)])
    );
}

#[test]
fn a_hung_voter_whose_agent_reports_gets_an_instance_for_its_replacement() {
    // Voter 3's server hangs: its agent reports every second, its instance
    // is up, and it has not served for longer than memberDeadAfter. It holds
    // its instance, so the group must grow by one for a replacement to come.
    let mut b = cluster(3).capacity(3);
    let r3 = b.obs.reports.get_mut("i-3").unwrap();
    r3.report.probe = None;
    r3.served_ago = Some(Duration::from_secs(61));
    let plan = b.plan();
    assert!(plan.reason.contains("are dead"), "{}", plan.reason);
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::SetDesiredCapacity { capacity: 4 })),
        "{plan:?}"
    );
}
