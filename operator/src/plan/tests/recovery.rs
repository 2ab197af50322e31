//! No leader: lost quorum, fencing, total loss.

use super::kit::*;

#[test]
fn losing_two_of_three_voters_is_a_lost_quorum_only_after_detect_after() {
    let mut b = cluster(3).dead(2).dead(3).joiner(4);
    for r in b.obs.reports.values_mut() {
        if let Some(p) = r.report.probe.as_mut() {
            p.serving = false;
            p.mode = None;
        }
        r.report.disk_zxid = Some("0x100000007".parse().unwrap());
    }
    b.spec.healing.quorum_loss = zkop_spec::cluster::QuorumLossPolicy::Wait;
    b.obs.leaderless_for = Duration::from_secs(3);
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::Degraded, "{}", plan.reason);
    b.obs.leaderless_for = Duration::from_secs(11);
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::QuorumLost, "{}", plan.reason);
    assert!(
        plan.reason.contains("1 of 3 voters reachable"),
        "{}",
        plan.reason
    );
    assert!(
        plan.reason.contains("survivors [1 (zxid 0x100000007)]"),
        "{}",
        plan.reason
    );
    assert!(
        plan.reason.contains("lost voters [2, 3]"),
        "{}",
        plan.reason
    );
    // Nothing is changed: no reconfig, no bootstrap, no id claimed or released.
    assert!(
        plan.steps
            .iter()
            .all(|s| matches!(s, Step::SetDesiredCapacity { .. })),
        "{plan:?}"
    );
}

/// `inst` survives a quorum loss: its server answers but does not serve,
/// and its agent read `zxid` and the last committed config from disk.
fn survivor_at(b: &mut B, inst: &str, zxid: &str) {
    let r = &mut b.obs.reports.get_mut(inst).unwrap().report;
    let p = r.probe.as_mut().unwrap();
    p.serving = false;
    p.mode = None;
    p.zxid = None;
    r.disk_zxid = Some(zxid.parse().unwrap());
    r.disk_config_version = Some(ConfigVersion(V1));
}

#[test]
fn fence_before_recovery_lost_voters_are_fenced_then_the_best_survivor_restarts_alone() {
    let mut b = cluster(5).dead(4).dead(5);
    // Voter 3 still runs but its server does not answer (paused): lost, not gone.
    b.obs.reports.get_mut("i-3").unwrap().report.probe = None;
    for (inst, zxid) in [("i-1", "0x100000009"), ("i-2", "0x10000000b")] {
        survivor_at(&mut b, inst, zxid);
    }
    b.obs.leaderless_for = Duration::from_secs(30);
    b.p.max_zxid_seen = Some("0x10000000c".parse().unwrap());
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::QuorumLost, "{}", plan.reason);
    assert_eq!(
        plan.steps.first(),
        Some(&Step::FenceInstance {
            instance: "i-3".into()
        }),
        "{plan:?}"
    );
    // Once it is gone: two survivors, so only the one with the higher zxid
    // votes, under version last committed + 1; the other is kept as an
    // observer.
    let b = b.dead(3);
    match b.plan().steps.first() {
        Some(Step::ForceConfig {
            config,
            left_out,
            summary,
            ..
        }) => {
            assert_eq!(
                config.servers.keys().map(|id| id.0).collect::<Vec<_>>(),
                vec![1, 2]
            );
            assert_eq!(config.voters().map(|s| s.id.0).collect::<Vec<_>>(), vec![2]);
            assert_eq!(config.role_of(ServerId(1)), Some(MemberRole::Observer));
            assert_eq!(config.version, Some(ConfigVersion(V1 + 1)));
            assert_eq!(left_out, &vec![ServerId(1)]);
            assert!(
                summary.contains("transactions possibly lost: 1"),
                "{summary}"
            );
        }
        other => panic!("expected a forced config, got {other:?}"),
    }
}

#[test]
fn a_total_loss_says_data_would_be_lost_and_bootstraps_nothing() {
    let mut b = cluster(3).dead(1).dead(2).dead(3);
    b.obs.leaderless_for = Duration::from_secs(60);
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::QuorumLost);
    assert!(
        plan.reason.contains("would lose all data"),
        "{}",
        plan.reason
    );
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Bootstrap { .. }))
    );
}

#[test]
fn with_on_total_loss_bootstrap_the_lost_are_fenced_then_a_fresh_ensemble_replaces_them() {
    let mut b = cluster(3).dead(1).dead(2);
    // Member 3's instance still runs, but its agent has reported its JVM
    // not running for memberDeadAfter: dead, yet not gone.
    let r3 = b.obs.reports.get_mut("i-3").unwrap();
    r3.report.probe = None;
    r3.report.process.running = false;
    r3.running_ago = Some(Duration::from_secs(120));
    b.obs.leaderless_for = Duration::from_secs(60);
    b.spec.healing.on_total_loss = zkop_spec::cluster::TotalLossPolicy::Bootstrap;
    let plan = b.plan();
    assert_eq!(
        plan.steps.first(),
        Some(&Step::FenceInstance {
            instance: "i-3".into()
        }),
        "{plan:?}"
    );
    let mut b = b.dead(3);
    let plan = b.plan();
    let step = plan.steps.first().cloned();
    assert_eq!(
        step,
        Some(Step::DiscardEnsemble {
            lost: vec![ServerId(1), ServerId(2), ServerId(3)],
            restore: None,
        }),
        "{plan:?}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = rt
        .block_on(crate::act::act(
            &step.unwrap(),
            &b.p,
            &b.spec,
            &crate::adapters::memory::MemoryFleet::default(),
            &crate::adapters::memory::MemoryLedger::default(),
            0,
        ))
        .unwrap();
    assert!(out.message.contains("TOTAL LOSS"), "{}", out.message);
    assert!(out.message.contains("EMPTY"), "{}", out.message);
    b.p = out.state;
    // Next: the lost members are forgotten (ids released), and fresh
    // instances claim ids and bootstrap.
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::Pending, "{plan:?}");
    let forgotten: Vec<u64> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::ForgetMember { id } => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(forgotten, vec![1, 2, 3], "{plan:?}");
    for i in 4..=6 {
        let inst = instance_of(i);
        b.obs.instances.push(Instance {
            id: inst.clone(),
            state: InstanceState::Running,
            zone: None,
            launch_template: None,
            private_ip: None,
        });
        b.obs
            .reports
            .insert(inst.clone(), seen(report(&inst, None, None)));
    }
    assert!(
        b.plan()
            .steps
            .iter()
            .any(|s| matches!(s, Step::ClaimId { .. })),
        "{:?}",
        b.plan()
    );
}

/// No leader for 30 s: member 1's server answers but does not serve; the
/// others' agents report `(running, answering)`; every agent has the data's
/// zxid on disk.
fn leaderless_restart(others: (bool, bool)) -> B {
    let mut b = cluster(3);
    for r in b.obs.reports.values_mut() {
        let r = &mut r.report;
        let p = r.probe.as_mut().unwrap();
        p.serving = false;
        p.mode = None;
        r.process.running = true;
        r.disk_zxid = Some("0x100000009".parse().unwrap());
        r.disk_config_version = Some(ConfigVersion(V1));
    }
    for inst in ["i-2", "i-3"] {
        let r = &mut b.obs.reports.get_mut(inst).unwrap().report;
        r.process.running = others.0;
        if !others.1 {
            r.probe = None;
        }
    }
    b.obs.leaderless_for = Duration::from_secs(30);
    b
}

fn drastic(plan: &Plan) -> Vec<&Step> {
    plan.steps
        .iter()
        .filter(|s| matches!(s, Step::FenceInstance { .. } | Step::ForceConfig { .. }))
        .collect()
}

#[test]
fn slow_starters_a_whole_restart_whose_servers_still_load_fences_and_forces_nothing() {
    // Voters 2 and 3 run their JVMs but load their data: no client port yet.
    let plan = leaderless_restart((true, false)).plan();
    assert_eq!(plan.phase, Phase::Degraded, "{}", plan.reason);
    assert!(drastic(&plan).is_empty(), "{plan:?}");
    assert!(
        plan.reason.contains("3 of 3 voters reachable (2 starting"),
        "{}",
        plan.reason
    );
    // Their JVMs exited: lost, and voter 1 recovers alone (fencing first).
    let plan = leaderless_restart((false, false)).plan();
    assert_eq!(plan.phase, Phase::QuorumLost, "{}", plan.reason);
    assert!(!drastic(&plan).is_empty(), "{plan:?}");
}

#[test]
fn slow_starters_a_voter_not_heard_from_since_the_controller_started_is_not_lost() {
    // The controller restarted with the ensemble; two agents have not
    // reported to it yet.
    let mut b = leaderless_restart((true, true));
    b.obs.reports.remove("i-2");
    b.obs.reports.remove("i-3");
    let just_started = plan(&b.spec, &b.obs, &b.p, Duration::from_secs(5));
    assert!(drastic(&just_started).is_empty(), "{just_started:?}");
    assert_eq!(
        just_started.phase,
        Phase::Degraded,
        "{}",
        just_started.reason
    );
    // Silent for memberDeadAfter of observing: lost.
    let later = plan(&b.spec, &b.obs, &b.p, Duration::from_secs(300));
    assert_eq!(later.phase, Phase::QuorumLost, "{}", later.reason);
}

#[test]
fn recovery_chooses_the_survivor_with_the_highest_zxid_among_voters_and_observers() {
    // Voters 2 and 3 are gone; voter 1 and observer 4 survive, and the
    // observer received more commits than the voter.
    let mut b = cluster(3)
        .capacity(4)
        .joiner(4)
        .observer_in_config(4)
        .dead(2)
        .dead(3);
    for (inst, zxid) in [("i-1", "0x100000009"), ("i-4", "0x10000000b")] {
        let r = &mut b.obs.reports.get_mut(inst).unwrap().report;
        let p = r.probe.as_mut().unwrap();
        p.serving = false;
        p.mode = None;
        r.disk_zxid = Some(zxid.parse().unwrap());
        r.disk_config_version = Some(ConfigVersion(V1 + 1));
    }
    b.obs.leaderless_for = Duration::from_secs(30);
    let plan = b.plan();
    match plan.steps.first() {
        Some(Step::ForceConfig {
            config,
            left_out,
            fork,
            ..
        }) => {
            let voters: Vec<u64> = config.voters().map(|s| s.id.0).collect();
            assert_eq!(voters, vec![4], "the observer has the newest data");
            assert_eq!(config.role_of(ServerId(1)), Some(MemberRole::Observer));
            assert_eq!(left_out, &vec![ServerId(1)]);
            // The live history goes on from the newest survivor's last
            // transaction: the backup's shippers learn it (history_fork).
            assert_eq!(fork.map(|f| f.to_string()).as_deref(), Some("0x10000000b"));
        }
        other => panic!("expected a forced config, got {other:?}: {}", plan.reason),
    }
}

/// Three voters, 2 gone; voter 3 answered at `lost_at` and then stalled
/// (a GC pause, a disk stall: its instance is up, its server answers no
/// more); survivor 1 is at 0x100000009.
fn stalled_voter_ahead(lost_at: &str) -> B {
    let mut b = cluster(3).dead(2);
    survivor_at(&mut b, "i-1", "0x100000009");
    // Its agent reports; its server answers no more, and observe remembers
    // the zxid it last answered with.
    let seen = b.obs.reports.get_mut("i-3").unwrap();
    seen.report.probe = None;
    seen.zxid_seen = Some(lost_at.parse().unwrap());
    b.obs.leaderless_for = Duration::from_secs(30);
    b
}

#[test]
fn recovery_waits_while_a_survivor_answers_again_only_since_moments_ago() {
    // A 100-fault run (seed 61): four of five voters paused and resumed
    // together; the first back recovered and fenced one still resuming.
    let mut b = stalled_voter_ahead("0x100000008");
    b.obs.reports.get_mut("i-1").unwrap().answering_for = Some(Duration::from_secs(1));
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::QuorumLost, "{}", plan.reason);
    assert!(
        plan.reason
            .contains("member 1 answers again only since 1.0s"),
        "{}",
        plan.reason
    );
    assert!(drastic(&plan).is_empty(), "{plan:?}");
    // Answering for a while: a survivor, and recovery goes on.
    b.obs.reports.get_mut("i-1").unwrap().answering_for = Some(Duration::from_secs(6));
    assert!(
        matches!(b.plan().steps.first(), Some(Step::FenceInstance { .. })),
        "{:?}",
        b.plan()
    );
}

#[test]
fn recovery_waits_while_a_stalled_voter_is_known_ahead_of_every_survivor() {
    // Issue 24, finding 6.
    let b = stalled_voter_ahead("0x10000000f");
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::QuorumLost, "{}", plan.reason);
    assert!(
        plan.reason
            .contains("lost voter 3 was seen at zxid 0x10000000f, ahead of every survivor (best 0x100000009) by 6 transaction(s)"),
        "{}",
        plan.reason
    );
    assert!(drastic(&plan).is_empty(), "{plan:?}");
    // Not ahead: recovery goes on (the stalled voter is fenced first).
    let behind = stalled_voter_ahead("0x100000008");
    assert_eq!(
        behind.plan().steps.first(),
        Some(&Step::FenceInstance {
            instance: "i-3".into()
        })
    );
    // Its instance gone, its data with it: nothing to wait for.
    let gone = stalled_voter_ahead("0x10000000f").dead(3);
    assert!(
        matches!(gone.plan().steps.first(), Some(Step::ForceConfig { .. })),
        "{:?}",
        gone.plan()
    );
    // recoverLosing: the explicit opt-in to recover anyway.
    let mut losing = stalled_voter_ahead("0x10000000f");
    losing.spec.healing.quorum_loss = zkop_spec::cluster::QuorumLossPolicy::RecoverLosing;
    assert_eq!(
        losing.plan().steps.first(),
        Some(&Step::FenceInstance {
            instance: "i-3".into()
        })
    );
}

#[test]
fn recovery_keeps_a_spare_survivor_as_an_observer_never_terminating_it() {
    // Five voters; 3, 4 and 5 gone; survivors 1 (behind) and 2 (ahead).
    let mut b = cluster(5).dead(3).dead(4).dead(5);
    for (inst, zxid) in [("i-1", "0x100000009"), ("i-2", "0x10000000b")] {
        survivor_at(&mut b, inst, zxid);
    }
    b.obs.leaderless_for = Duration::from_secs(30);
    let plan = b.plan();
    let step = plan.steps.first().expect("a forced config").clone();
    let Step::ForceConfig { summary, .. } = &step else {
        panic!("expected a forced config, got {plan:?}");
    };
    assert!(
        summary.contains("survivors [1 (zxid 0x100000009)] kept as observers"),
        "{summary}"
    );
    // Carried out: member 1 is an observer of the forced config, restarted
    // under it with the survivors, and not retiring.
    let after = act(&b, &step).state;
    let one = &after.members[&ServerId(1)];
    assert!(!one.retiring, "{one:?}");
    assert!(
        one.recovery.is_some(),
        "it restarts under the forced config"
    );
    assert_eq!(
        after.config.as_ref().and_then(|c| c.role_of(ServerId(1))),
        Some(MemberRole::Observer)
    );
    // The next plans never retire it nor terminate its instance: it is a
    // copy of the data while the ensemble is short of voters.
    b.p = after;
    let plan = b.plan();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::RetireMember { id: ServerId(1) })
                || matches!(s, Step::TerminateInstance { instance } if instance.as_str() == "i-1")),
        "{plan:?}"
    );
}
