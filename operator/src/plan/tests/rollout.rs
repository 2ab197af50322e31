//! Rolling restarts.

use super::kit::*;

#[test]
fn a_rolling_restart_goes_one_member_at_a_time_observers_first_the_leader_last() {
    // Member 4 is in the config as an observer.
    let mut b = cluster(3).replicas(4).joiner(4);
    let mut config =
        b.p.config
            .clone()
            .unwrap()
            .with(server(4, MemberRole::Observer));
    config.version = Some(ConfigVersion(V1 + 1));
    b.p.config = Some(config);
    let mut b = rolling(b.refresh_probes());
    let mut order = Vec::new();
    for _ in 0..4 {
        let plan = b.plan();
        let id = restarted(&plan).unwrap_or_else(|| panic!("{plan:?}"));
        order.push(id);
        let now = b.obs.now_ms;
        restart(&mut b, id, now);
        // Not back yet: its server does not serve.
        let inst = instance_of(id);
        let probe = b.obs.reports.get_mut(&inst).unwrap().report.probe.take();
        let waiting = b.plan();
        assert_eq!(restarted(&waiting), None, "{waiting:?}");
        // (While the leader restarts, there is no leader: an election.)
        assert!(
            id == 1 || waiting.reason.contains("waiting for member"),
            "{}",
            waiting.reason
        );
        b.obs.reports.get_mut(&inst).unwrap().report.probe = probe;
    }
    assert_eq!(order, vec![4, 2, 3, 1]);
    assert_eq!(b.plan().steps.first(), Some(&Step::FinishRollout));
    b.p.rollout = None;
    assert_eq!(b.plan().phase, Phase::Running, "{:?}", b.plan());
    // A member failing later is not a roll-out's business.
    b.obs.reports.get_mut("i-2").unwrap().report.probe = None;
    assert!(!b.plan().reason.contains("roll-out"), "{:?}", b.plan());
}

#[test]
fn a_leader_zxid_that_only_opens_an_epoch_is_not_waited_for() {
    let mut b = rolling(cluster(3));
    let leader = b.obs.reports.get_mut("i-1").unwrap();
    leader.report.probe.as_mut().unwrap().zxid = Some(Zxid {
        epoch: 3,
        counter: 0,
    });
    match b.plan().steps.first() {
        Some(Step::RestartMember { leader_zxid, .. }) => assert_eq!(*leader_zxid, None),
        other => panic!("{other:?}"),
    }
    b.obs
        .reports
        .get_mut("i-1")
        .unwrap()
        .report
        .probe
        .as_mut()
        .unwrap()
        .zxid = Some(Zxid {
        epoch: 3,
        counter: 7,
    });
    match b.plan().steps.first() {
        Some(Step::RestartMember { leader_zxid, .. }) => {
            assert_eq!(leader_zxid.map(|z| z.counter), Some(7))
        }
        other => panic!("{other:?}"),
    }
}

/// `b`'s member `id`, restarted `ago` before now, has not served since (its
/// agent reports each second, its JVM runs): as observe says it.
pub(super) fn not_back_for(b: &mut B, id: u64, ago: Duration) {
    let seen = b.obs.reports.get_mut(&instance_of(id)).unwrap();
    seen.age = Duration::ZERO;
    seen.silent_for = Duration::ZERO;
    seen.served_ago = Some(ago);
    seen.running_ago = Some(Duration::ZERO);
    seen.serving_for = None;
    if let Some(p) = seen.report.probe.as_mut() {
        p.serving = false;
        p.mode = None;
    }
}

#[test]
fn a_member_that_does_not_come_back_halts_the_roll_out() {
    // memberDeadAfter (60 s) is far shorter than rollout.timeout (5 m): a
    // member loading a large snapshot after its restart takes longer.
    let mut b = rolling(cluster(3));
    let first = restarted(&b.plan()).unwrap();
    let start = b.obs.now_ms;
    restart(&mut b, first, start);
    let timeout = b.spec.rollout_timeout;
    assert!(b.spec.member_dead_after() < timeout);
    for ago in [
        Duration::from_secs(1),
        b.spec.member_dead_after() + Duration::from_secs(1),
        timeout - Duration::from_secs(1),
    ] {
        b.obs.now_ms = start + ago.as_millis() as u64;
        not_back_for(&mut b, first, ago);
        let plan = b.plan();
        assert_eq!(plan.phase, Phase::Reconciling, "{ago:?}: {plan:?}");
        assert!(plan.steps.is_empty(), "{ago:?}: {plan:?}");
        assert!(
            plan.reason.contains("waiting for member"),
            "{ago:?}: {plan:?}"
        );
    }
    // Past rollout.timeout, the roll-out halts, naming why.
    b.obs.now_ms = start + timeout.as_millis() as u64;
    not_back_for(&mut b, first, timeout);
    let r = &mut b.obs.reports.get_mut(&instance_of(first)).unwrap().report;
    r.probe = None;
    r.errors
        .push("ZooKeeper exited (exit status: 1) after 0.4s".into());
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::Degraded);
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert!(
        plan.reason
            .contains(&format!("roll-out halted: member {first}"))
            && plan.reason.contains("exited"),
        "{}",
        plan.reason
    );
    // Halted, it is handled by the normal rules: after memberDeadAfter
    // more without serving, it is dead and replaced.
    let mut later = B {
        spec: b.spec.clone(),
        obs: b.obs.clone(),
        p: b.p.clone(),
    };
    let ago = timeout + later.spec.member_dead_after();
    later.obs.now_ms = start + ago.as_millis() as u64;
    later
        .obs
        .reports
        .get_mut(&instance_of(first))
        .unwrap()
        .served_ago = Some(ago);
    let plan = later.plan();
    assert!(plan.reason.contains("dead"), "{plan:?}");
    assert!(!plan.steps.is_empty(), "{plan:?}");
    // Fixing the spec restarts the failed member again at once.
    b.spec.zookeeper.tick_time = 300;
    assert_eq!(restarted(&b.plan()), Some(first));
}

#[test]
fn serving_needs_a_recent_report_a_voter_silent_for_seconds_halts_the_roll_out() {
    // Voter 3's last report said it served, 10 s ago: within memberDeadAfter
    // (its agent is not dead), but nothing says it serves now.
    let mut b = rolling(cluster(3));
    b.obs.reports.get_mut("i-3").unwrap().age = Duration::from_secs(10);
    b.obs.reports.get_mut("i-3").unwrap().silent_for = Duration::from_secs(10);
    let plan = b.plan();
    // Restarting 2 (or 1) now could leave one serving voter of three.
    assert!(
        matches!(restarted(&plan), None | Some(3)),
        "restarted another voter while 3 may be hung: {plan:?}"
    );
    // A report within a few report intervals still counts.
    b.obs.reports.get_mut("i-3").unwrap().age = SERVING_FRESH - Duration::from_millis(1);
    b.obs.reports.get_mut("i-3").unwrap().silent_for = SERVING_FRESH - Duration::from_millis(1);
    assert_eq!(restarted(&b.plan()), Some(2), "{:?}", b.plan());
}

#[test]
fn a_renewed_certificate_the_client_port_does_not_show_yet_asks_for_one_roll() {
    let mut b = cluster(3);
    b.spec = zkop_spec::parse_spec(&format!(
        "{}  tls:\n    enabled: true\n",
        include_str!("../../../../examples/local-3.yaml")
    ))
    .unwrap();
    let settings = crate::desired::spec_settings(&b.spec, &b.p);
    for m in b.p.members.values_mut() {
        m.settings = Some(settings.clone());
        let r = &mut b.obs.reports.get_mut(&m.instance).unwrap().report;
        r.settings = Some(settings.clone());
        r.certificate_not_after_ms = Some(1_000);
        r.served_certificate_not_after_ms = Some(1_000);
    }
    assert_ne!(b.plan().steps.first(), Some(&Step::BeginRoll));
    // Member 2's agent renewed; its server still shows the old one.
    let r = &mut b.obs.reports.get_mut("i-2").unwrap().report;
    r.certificate_not_after_ms = Some(2_000);
    assert_eq!(b.plan().steps.first(), Some(&Step::BeginRoll));
    // Once the roll is under way, no second one.
    b.p.roll += 1;
    assert_ne!(b.plan().steps.first(), Some(&Step::BeginRoll));
}

#[test]
fn when_the_member_it_restarted_was_replaced_the_roll_out_goes_on_with_the_next() {
    // Seed 2612 of the fault suite: the member an upgrade restarted was
    // replaced (its log had a hole); the new member joined on the new
    // settings, and the roll-out must go on with the members still stale,
    // not wait for the one that is gone.
    let mut b = rolling(cluster(3));
    let now = b.obs.now_ms;
    restart(&mut b, 3, now);
    if let Some(r) = b.p.rollout.as_mut() {
        r.member = ServerId(9);
    }
    let plan = b.plan();
    let next = restarted(&plan);
    assert!(matches!(next, Some(1 | 2)), "{plan:?}");
}
