//! Seeded fault injection with real partitions: each instance in its own
//! network namespace (`zkop local up --netns`), members killed, paused, cut
//! off and split from the majority, the spec edited, while a client writes.
//! CI runs this short form (every kind of fault once, and a few more);
//! `scripts/chaos --faults N --seed S` runs the long form (docs/reliability.md).

use zkop_tests::common::chaos::{self, ChaosOptions, FAULTS};

#[test]
fn chaos_every_fault_kind_heals_back_to_the_spec_keeping_every_acknowledged_write() {
    // A fixed seed, so that CI runs the same faults each time; CHAOS_SEED
    // and CHAOS_FAULTS (scripts/chaos) pick others.
    let opts = ChaosOptions::from_env(12, 20261202);
    let fig = chaos::run(&opts);
    // The figure line, for scripts/chaos to pass on.
    println!("{}", fig.line());
    assert_eq!(fig.lost, 0);
    assert_eq!(fig.by_kind.values().sum::<usize>(), opts.faults);
    if opts.faults > FAULTS.len() {
        // Every kind once, scale as scale-out and scale-in.
        assert_eq!(fig.by_kind.len(), FAULTS.len() + 1, "{}", fig.line());
    }
}

#[test]
fn minority_side_controller_declares_quorum_lost_and_loses_only_the_minority_lag() {
    let r = chaos::run_minority_side();
    eprintln!("chaos: controller on the minority's side: {r:#?}");
    assert!(
        r.phases.iter().any(|p| p == "QuorumLost"),
        "the controller never declared the quorum lost: {r:#?}"
    );
    // The documented limit: under `quorumLoss: recover` the controller
    // fences the majority it cannot reach and restarts the minority alone.
    assert!(
        r.steps.iter().any(|k| k == "fence_instance")
            && r.steps.iter().any(|k| k == "force_config"),
        "{r:#?}"
    );
    // The minority's member stays, on its instance; the others are new.
    let (before, after) = &r.members;
    assert_eq!(after.get(&r.minority), before.get(&r.minority), "{r:#?}");
    assert!(
        after
            .iter()
            .filter(|(id, i)| before.get(id) == Some(i))
            .count()
            == 1,
        "{r:#?}"
    );
    // The loss bound: only what the minority had not logged when it was cut
    // off, the writes of the last moment before the split.
    assert!(r.acked > 20, "{r:#?}");
    assert!(
        r.lost_before_split_ms.iter().all(|before| *before <= 1000),
        "writes acknowledged more than 1 s before the split were lost: {r:#?}"
    );
}
