//! A change of `spec.zookeeper.version`: preflight refusals, the canary, the
//! order and the progress status names.

use std::time::Duration;

use super::kit::*;
use crate::plan::upgrade::supported_step;
use crate::plan::{Phase, Step};
use zkop_spec::releases::Release;

/// Three voters on `from`, every instance with both releases installed;
/// then the spec names `to`.
fn upgrading(from: &str, to: &str) -> B {
    let mut b = cluster(3).refresh_probes();
    b.spec.zookeeper.version = Release::parse(from).unwrap();
    let mut b = on_spec_settings(b);
    for r in b.obs.reports.values_mut() {
        r.report.installed_releases = Some(vec!["3.8.6".into(), "3.9.5".into()]);
        r.serving_for = Some(Duration::from_secs(600));
    }
    b.spec.zookeeper.version = Release::parse(to).unwrap();
    b.spec.upgrade_canary_for = Duration::from_secs(120);
    b
}

/// Every member runs (and reports) the spec's settings as they are now.
fn on_spec_settings(mut b: B) -> B {
    let now = crate::desired::spec_settings(&b.spec, &b.p);
    for m in b.p.members.values_mut() {
        m.settings = Some(now.clone());
        if let Some(r) = b.obs.reports.get_mut(&m.instance) {
            r.report.settings = Some(now.clone());
        }
    }
    b
}

#[test]
fn an_upgrade_restarts_the_followers_first_and_says_where_it_stands() {
    let b = upgrading("3.8.6", "3.9.5");
    let plan = b.plan();
    let first = restarted(&plan).expect("a restart");
    assert_ne!(first, 1, "the leader goes last: {}", plan.reason);
    assert!(
        plan.reason
            .starts_with("upgrading 3.8.6 -> 3.9.5: 0 of 3 members: restarting member"),
        "{}",
        plan.reason
    );
}

#[test]
fn a_release_missing_on_an_instance_is_refused_naming_it_and_nothing_restarts() {
    let mut b = upgrading("3.8.6", "3.9.5");
    b.obs
        .reports
        .get_mut("i-2")
        .unwrap()
        .report
        .installed_releases = Some(vec!["3.8.6".into()]);
    let plan = b.plan();
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.phase, Phase::Reconciling);
    assert!(
        plan.reason.starts_with("spec.zookeeper.version: change of release refused: ZooKeeper 3.9.5 is not installed on i-2"),
        "{}",
        plan.reason
    );
}

#[test]
fn a_jump_over_a_minor_line_or_from_an_old_patch_is_refused_with_the_path() {
    let r = |v: &str| Release::parse(v).unwrap();
    assert_eq!(supported_step(r("3.8.6"), r("3.9.5")), Ok(()));
    assert_eq!(supported_step(r("3.9.5"), r("3.8.6")), Ok(()), "a rollback");
    assert_eq!(supported_step(r("3.8.2"), r("3.8.6")), Ok(()));
    let old_patch = supported_step(r("3.8.4"), r("3.9.5")).unwrap_err();
    assert!(old_patch.contains("3.8.4 -> 3.8.6 -> 3.9.5"), "{old_patch}");
    let jump = supported_step(r("3.7.2"), r("3.9.5")).unwrap_err();
    assert!(jump.contains("jumps over a minor line"), "{jump}");
    // In a plan: refused, nothing restarted.
    let plan = upgrading("3.8.4", "3.9.5").plan();
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert!(
        plan.reason.contains("goes through 3.8.6 first"),
        "{}",
        plan.reason
    );
}

#[test]
fn the_first_member_upgraded_is_a_canary_the_roll_waits_on() {
    let mut b = upgrading("3.8.6", "3.9.5");
    let first = restarted(&b.plan()).unwrap();
    restart(&mut b, first, 1);
    let canary = instance_of(first);
    // Back on the new release, serving for 30 s of canaryFor's 120 s.
    b.p.rollout = None;
    b.obs.reports.get_mut(&canary).unwrap().serving_for = Some(Duration::from_secs(30));
    let plan = b.plan();
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert!(
        plan.reason.contains(&format!(
            "upgrading 3.8.6 -> 3.9.5: 1 of 3 members: member {first} is the canary on ZooKeeper 3.9.5: 30s of upgrade.canaryFor (120s) served; 2 member(s) wait"
        )),
        "{}",
        plan.reason
    );
    b.obs.reports.get_mut(&canary).unwrap().serving_for = Some(Duration::from_secs(121));
    let next = restarted(&b.plan()).expect("the next restart once the canary served");
    assert_ne!(next, first);
}

#[test]
fn setting_the_version_back_rolls_the_upgraded_member_back() {
    let mut b = upgrading("3.8.6", "3.9.5");
    let first = restarted(&b.plan()).unwrap();
    restart(&mut b, first, 1);
    b.p.rollout = None;
    b.spec.zookeeper.version = Release::parse("3.8.6").unwrap();
    let plan = b.plan();
    assert_eq!(restarted(&plan), Some(first), "{}", plan.reason);
    match plan.steps.first() {
        Some(Step::RestartMember { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_member_that_does_not_serve_on_the_new_release_halts_the_upgrade_and_is_never_replaced() {
    let mut b = upgrading("3.8.6", "3.9.5");
    let first = restarted(&b.plan()).unwrap();
    let start = b.obs.now_ms;
    restart(&mut b, first, start);
    // Long past rollout.timeout and memberDeadAfter: the server exits at
    // once on the new release, its agent says why.
    let ago = b.spec.rollout_timeout + 3 * b.spec.member_dead_after();
    b.obs.now_ms = start + ago.as_millis() as u64;
    super::rollout::not_back_for(&mut b, first, ago);
    let r = &mut b.obs.reports.get_mut(&instance_of(first)).unwrap().report;
    r.probe = None;
    r.errors.push(
        "ZooKeeper exited (exit status: 1) after 0.3s; its log ends: Error: Could not find or load main class org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
    );
    let plan = b.plan();
    assert_eq!(plan.phase, Phase::Degraded, "{plan:?}");
    assert!(
        plan.steps.is_empty(),
        "nothing replaced or restarted: {plan:?}"
    );
    assert!(
        plan.reason.starts_with(&format!(
            "roll-out halted (upgrading 3.8.6 -> 3.9.5: 1 of 3 members): member {first}"
        )) && plan.reason.contains("Could not find or load main class"),
        "{}",
        plan.reason
    );
    // Setting the version back restarts it on the release it came from.
    b.spec.zookeeper.version = Release::parse("3.8.6").unwrap();
    assert_eq!(restarted(&b.plan()), Some(first));
}

#[test]
fn a_member_whose_server_refuses_its_data_after_the_upgrade_is_replaced_without_waiting_for_the_timeout()
 {
    // Seed 2612 of the fault suite: a 3.8.6 follower's log had a hole
    // (ZOOKEEPER-4394); on 3.9.5 its server exits at every start refusing
    // it. Waiting out rollout.timeout would keep a voter away for nothing.
    let mut b = upgrading("3.8.6", "3.9.5");
    let first = restarted(&b.plan()).unwrap();
    let start = b.obs.now_ms;
    restart(&mut b, first, start);
    let ago = b.spec.member_dead_after() + Duration::from_secs(1);
    assert!(ago < b.spec.rollout_timeout);
    b.obs.now_ms = start + ago.as_millis() as u64;
    super::rollout::not_back_for(&mut b, first, ago);
    let r = &mut b.obs.reports.get_mut(&instance_of(first)).unwrap().report;
    r.probe = None;
    r.process.running = false;
    // Without the agent's word it is the roll-out's to wait for.
    let plan = b.plan();
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert!(
        plan.reason.contains("waiting for member"),
        "{}",
        plan.reason
    );

    let r = &mut b.obs.reports.get_mut(&instance_of(first)).unwrap().report;
    r.process.data_refused = Some(
        "its transaction log has a hole (0xd00000162 is not the next proposal of 0xd00000144)"
            .into(),
    );
    let plan = b.plan();
    assert!(
        !plan.steps.is_empty() && restarted(&plan).is_none(),
        "replaced, not restarted or waited for: {plan:?}"
    );
    // A new instance first, then the dead voter leaves the config.
    assert!(
        plan.reason
            .contains(&format!("[ServerId({first})] are dead")),
        "{plan:?}"
    );
}
