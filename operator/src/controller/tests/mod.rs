//! The controller's timing rules on tokio's paused time, with in-memory
//! adapters: no real sleeps; every wait is an `advance` of the clock the
//! controller reads (`PausedClock`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::advance;
use zkop_spec::wire::{AgentReport, ProbeReport, StatusRole};

use super::*;
use crate::adapters::Fleet;
use crate::adapters::memory::{MemoryFleet, MemoryLedger, MemoryStore};
use crate::clock::PausedClock;
use crate::plan::tests::kit::{B, cluster};

mod fence;
mod identity;
mod lease;

type TestController = LeadController<AlwaysLeader>;

/// A test controller leading by `E`.
type LeadController<E> = Controller<MemoryFleet, Arc<MemoryLedger>, Arc<MemoryStore>, E>;

/// A controller of `b`'s cluster on paused time: its state stored, its
/// instances in the fleet (i-1.. as the fleet names them).
async fn controller_of(b: &B, spec_yaml_extra: &str) -> (TestController, Arc<MemoryFleet>) {
    let leader = AlwaysLeader { epoch: b.p.epoch };
    let clock = Arc::new(PausedClock::new(1_000_000));
    let store = Arc::new(MemoryStore::default());
    let fleet = Arc::new(MemoryFleet::default());
    let ctl = controller_with(b, spec_yaml_extra, leader, clock, store, fleet.clone()).await;
    (ctl, fleet)
}

/// A controller of `b`'s cluster deciding leadership by `leadership`, on
/// `clock`, over `store` and `fleet` (shared with other controllers).
async fn controller_with<E: Leadership>(
    b: &B,
    spec_yaml_extra: &str,
    leadership: E,
    clock: crate::clock::SharedClock,
    store: Arc<MemoryStore>,
    fleet: Arc<MemoryFleet>,
) -> LeadController<E> {
    let mut spec = b.spec.clone();
    if !spec_yaml_extra.is_empty() {
        let text = format!(
            "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: {}\n{spec_yaml_extra}",
            spec.replicas
        );
        spec = zkop_spec::parse_spec(&text).unwrap_or_else(|e| panic!("{e}"));
    }
    if store.load().await.unwrap().is_none() {
        store.save(&b.p).await.unwrap();
        fleet
            .set_desired_capacity(b.p.members.len() as u32)
            .await
            .unwrap();
    }
    let shared = Shared::with_clock("t".into(), spec, b.p.clone(), clock);
    // The API keeps reports only from instances the fleet lists.
    shared.snapshot(fleet.observe().await.unwrap());
    Controller::new(
        shared,
        fleet,
        Arc::new(MemoryLedger::default()),
        store,
        None,
        leadership,
    )
}

/// The kit's report of `instance` (serving; member 1 leads).
fn report_of(b: &B, instance: &str) -> AgentReport {
    b.obs.reports[instance].report.clone()
}

/// The agents of `instances` report now.
fn reports_from<E: Leadership>(ctl: &LeadController<E>, b: &B, instances: &[&str]) {
    for i in instances {
        ctl.shared.record_report(report_of(b, i)).unwrap();
    }
}

/// Runs a pass and returns the phase and reason status shows.
async fn pass<E: Leadership>(ctl: &mut LeadController<E>) -> (String, String) {
    ctl.reconcile().await.unwrap();
    let s = ctl.shared.status();
    (s.phase, s.reason)
}

#[tokio::test(start_paused = true)]
async fn a_lost_quorum_is_declared_only_after_detect_after() {
    let b = cluster(3);
    let healing = "  healing:\n    detectAfter: 10s\n    quorumLoss: wait\n";
    let (mut ctl, _) = controller_of(&b, healing).await;
    // Member 1 answers but no longer leads or serves; the agents of 2 and 3
    // report that their JVMs exited.
    let mut r1 = report_of(&b, "i-1");
    if let Some(p) = r1.probe.as_mut() {
        p.serving = false;
        p.mode = None;
    }
    let exited: Vec<AgentReport> = ["i-2", "i-3"]
        .iter()
        .map(|i| AgentReport {
            probe: None,
            ..report_of(&b, i)
        })
        .collect();
    for (secs, want) in [(0, "Degraded"), (9, "Degraded"), (2, "QuorumLost")] {
        advance(Duration::from_secs(secs)).await;
        for r in exited.iter().chain([&r1]) {
            ctl.shared.record_report(r.clone()).unwrap();
        }
        let (phase, reason) = pass(&mut ctl).await;
        assert_eq!(phase, want, "after +{secs}s: {reason}");
    }
    let (_, reason) = pass(&mut ctl).await;
    assert!(reason.contains("1 of 3 voters reachable"), "{reason}");
    assert!(reason.contains("nothing is changed"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_voter_is_dead_only_after_member_dead_after() {
    let b = cluster(3);
    let healing = "  healing:\n    memberDeadAfter: 30s\n";
    let (mut ctl, _) = controller_of(&b, healing).await;
    reports_from(&ctl, &b, &["i-1", "i-2", "i-3"]);
    assert_eq!(pass(&mut ctl).await.0, "Running");
    // Member 3's agent falls silent; 1 and 2 keep reporting.
    for _ in 0..29 {
        advance(Duration::from_secs(1)).await;
        reports_from(&ctl, &b, &["i-1", "i-2"]);
    }
    let (_, reason) = pass(&mut ctl).await;
    assert!(!reason.contains("dead"), "after 29 s: {reason}");
    advance(Duration::from_secs(2)).await;
    reports_from(&ctl, &b, &["i-1", "i-2"]);
    let (phase, reason) = pass(&mut ctl).await;
    assert_eq!(phase, "Reconciling", "{reason}");
    assert!(reason.contains("are dead"), "after 31 s: {reason}");
}

#[tokio::test(start_paused = true)]
async fn a_leader_counts_while_its_report_is_fresh_and_status_shows_silent_members_down() {
    let b = cluster(3);
    let (ctl, _) = controller_of(&b, "").await;
    let now = || ctl.shared.clock.now();
    let mut cache = ReportCache::new(now());
    for i in ["i-1", "i-2", "i-3"] {
        cache.record(report_of(&b, i), now());
    }
    let view = || ctl.fleet.observe();
    // The leader's report is 2 s old: it still leads.
    advance(Duration::from_secs(2)).await;
    let obs = cache.observe(view().await.unwrap(), &Requests::default(), now(), 0);
    assert_eq!(obs.leaderless_for, Duration::ZERO);
    // At 3 s it is stale: leaderless since it was last seen fresh (at 2 s).
    advance(Duration::from_secs(1)).await;
    let obs = cache.observe(view().await.unwrap(), &Requests::default(), now(), 0);
    assert_eq!(obs.leaderless_for, Duration::from_secs(1));
    assert_eq!(obs.reports["i-1"].age, Duration::from_secs(3));
    // Status: fresh for STATUS_FRESH, then down.
    reports_from(&ctl, &b, &["i-1", "i-2", "i-3"]);
    advance(STATUS_FRESH - Duration::from_millis(1)).await;
    let roles: Vec<StatusRole> = ctl.shared.status().members.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            StatusRole::Leader,
            StatusRole::Follower,
            StatusRole::Follower
        ]
    );
    advance(Duration::from_millis(1)).await;
    let s = ctl.shared.status();
    assert!(
        s.members
            .iter()
            .all(|m| m.role == StatusRole::Down && !m.healthy),
        "{s:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn failing_passes_back_off_doubling_to_the_maximum_and_a_good_pass_resets_it() {
    let b = cluster(3);
    let (ctl, fleet) = controller_of(&b, "").await;
    let shared = ctl.shared.clone();
    fleet.set_failing(true);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let looping = tokio::spawn(ctl.run(stopped));
    // Passes at 0, 0.5, 1.5, 3.5, 7.5, 15.5 s, then every 10 s: 25.5, 35.5.
    tokio::time::sleep(Duration::from_millis(15_400)).await;
    assert_eq!(shared.metrics.passes(), 5);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shared.metrics.passes(), 6);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(shared.metrics.passes(), 8);
    assert_eq!(shared.metrics.errors("fleet"), 8);
    assert!(shared.status().last_error.is_some());
    // The fleet answers again: the next pass (at 45.5 s) succeeds, and so do
    // the passes after it, at most 0.5 s apart.
    fleet.set_failing(false);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let passes = shared.metrics.passes();
    assert!(passes >= 9, "{passes}");
    assert_eq!(shared.metrics.errors("fleet"), 8);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(shared.metrics.passes() >= passes + 2);
    // A new failure starts again at the first backoff (0.5 s), not at 10 s.
    fleet.set_failing(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(shared.metrics.errors("fleet") >= 10);
    stop.send(true).unwrap();
    looping.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn slow_starters_the_leader_clock_restarts_after_a_forced_config() {
    let b = cluster(3);
    let (mut ctl, fleet) = controller_of(&b, "  healing:\n    detectAfter: 2s\n").await;
    // Instances 2 and 3 are gone; member 1 answers, without a quorum.
    fleet.observe().await.unwrap();
    fleet.kill(1);
    fleet.kill(1);
    let mut r1 = report_of(&b, "i-1");
    r1.probe = r1.probe.map(|p| ProbeReport {
        serving: false,
        mode: None,
        ..p
    });
    r1.disk_zxid = Some("0x100000009".parse().unwrap());
    r1.disk_config_version = b.p.config.as_ref().and_then(|c| c.version);
    let mut forced = false;
    for _ in 0..20 {
        advance(Duration::from_secs(1)).await;
        ctl.shared.record_report(r1.clone()).unwrap();
        ctl.reconcile().await.unwrap();
        forced = ctl
            .shared
            .status()
            .events
            .iter()
            .any(|e| e.kind == "force_config");
        if forced {
            break;
        }
    }
    assert!(forced, "no forced config: {:#?}", ctl.shared.status());
    // The survivor restarts under its new config: no leader has been seen,
    // yet the wait for one starts now, not at the loss.
    let view = ctl.fleet.observe().await.unwrap();
    let (_, _, observed) = ctl.shared.snapshot(view);
    assert_eq!(observed.leaderless_for, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_release_with_a_known_data_loss_bug_is_named_in_status_metrics_and_one_event() {
    let b = cluster(3);
    let (mut ctl, _) = controller_of(&b, "").await;
    for i in ["i-1", "i-2", "i-3"] {
        let mut r = report_of(&b, i);
        // 3.8.4 lacks ZOOKEEPER-4785's fix (first in 3.8.5), which an
        // earlier table said it had.
        r.probe.as_mut().unwrap().version = Some(if i == "i-3" { "3.8.4" } else { "3.9.5" }.into());
        ctl.shared.record_report(r).unwrap();
    }
    pass(&mut ctl).await;
    pass(&mut ctl).await;
    let s = ctl.shared.status();
    let m3 = s.members.iter().find(|m| m.id.0 == 3).unwrap();
    assert_eq!(m3.zookeeper_version.as_deref(), Some("3.8.4"));
    assert!(
        m3.known_issue
            .as_deref()
            .is_some_and(|i| i.contains("ZOOKEEPER-4785"))
    );
    let m1 = s.members.iter().find(|m| m.id.0 == 1).unwrap();
    assert_eq!(
        (m1.zookeeper_version.as_deref(), &m1.known_issue),
        (Some("3.9.5"), &None)
    );
    let warned: Vec<_> = s.events.iter().filter(|e| e.kind == "known_bug").collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0].message.contains("member 3 runs ZooKeeper 3.8.4"),
        "{warned:?}"
    );
    let metrics = ctl.shared.metrics.render(&s);
    assert!(
        metrics.contains("member=\"3\",version=\"3.8.4\",known_issue=\"ZOOKEEPER-4785\"} 1"),
        "{metrics}"
    );
}

/// Runs idle passes for `secs` seconds, every agent of `reporting` reporting
/// each second; the fleet's observations made meanwhile.
async fn idle_for(
    ctl: &mut TestController,
    fleet: &MemoryFleet,
    b: &B,
    reporting: &[&str],
    secs: u64,
) -> u64 {
    let before = fleet.observations();
    for _ in 0..secs {
        reports_from(ctl, b, reporting);
        ctl.reconcile().await.unwrap();
        advance(Duration::from_secs(1)).await;
    }
    fleet.observations() - before
}

#[tokio::test(start_paused = true)]
async fn an_idle_controller_looks_at_the_fleet_once_a_minute_and_sooner_when_an_agent_has_news_or_falls_quiet()
 {
    let b = cluster(3);
    let (mut ctl, fleet) = controller_of(&b, "").await;
    let all = ["i-1", "i-2", "i-3"];
    reports_from(&ctl, &b, &all);
    assert_eq!(pass(&mut ctl).await.0, "Running");
    // Every agent reports, none with news: one look in a minute.
    assert_eq!(idle_for(&mut ctl, &fleet, &b, &all, 59).await, 0);
    assert_eq!(idle_for(&mut ctl, &fleet, &b, &all, 2).await, 1);
    // News from an agent (its server restarted: it may be a new instance's
    // doing) asks for a look at the next pass, while still Running.
    let mut news = report_of(&b, "i-2");
    news.process.starts += 1;
    ctl.shared.record_report(news).unwrap();
    let before = fleet.observations();
    ctl.reconcile().await.unwrap();
    assert_eq!(fleet.observations(), before + 1, "news made no look");
    // Back to normal, then i-3's agent falls quiet: looks every 5 s, not 60.
    let _ = idle_for(&mut ctl, &fleet, &b, &all, 70).await;
    let quiet = idle_for(&mut ctl, &fleet, &b, &["i-1", "i-2"], 20).await;
    assert!(quiet >= 3, "{quiet} looks in 20 s with an agent quiet");
}

#[tokio::test(start_paused = true)]
async fn the_status_view_is_built_once_per_pass_and_shared_until_something_changes() {
    let b = cluster(3);
    let (mut ctl, _) = controller_of(&b, "").await;
    let all = ["i-1", "i-2", "i-3"];
    reports_from(&ctl, &b, &all);
    assert_eq!(pass(&mut ctl).await.0, "Running");
    let before = ctl.shared.metrics.status_views();
    for _ in 0..20 {
        reports_from(&ctl, &b, &all);
        ctl.reconcile().await.unwrap();
        // The API, /metrics and the connect-string file between passes.
        for _ in 0..3 {
            assert_eq!(ctl.shared.status().phase, "Running");
        }
        advance(Duration::from_millis(500)).await;
    }
    let built = ctl.shared.metrics.status_views() - before;
    assert!(built <= 20, "{built} status views built in 20 idle passes");
    // Nobody looking and no backup to watch: the passes build none (a
    // controller of many idle clusters spent its time building them).
    let before = ctl.shared.metrics.status_views();
    for _ in 0..20 {
        reports_from(&ctl, &b, &all);
        ctl.reconcile().await.unwrap();
        advance(Duration::from_millis(500)).await;
    }
    let built = ctl.shared.metrics.status_views() - before;
    assert_eq!(built, 0, "status views built in 20 idle passes nobody read");
    // A change shows at once: no view built before it is served after it.
    ctl.shared.event("test", "something happened".into());
    let events = ctl.shared.status().events;
    assert!(events.iter().any(|e| e.kind == "test"), "{events:#?}");
}
