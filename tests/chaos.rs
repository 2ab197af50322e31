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
