//! The per-cluster fence (issue 24, finding 1): two controllers that each
//! believe they lead a cluster (two different leases: `zkop run FILE` and
//! `zkop run DIR` with lease items in different places) over one state
//! record. The one that took the cluster over last acts; the other stops
//! at once, never adopts the newer epoch, answers agents 503 naming the
//! other, and says so in an event and a metric.

use super::lease::report_status;
use super::*;
use crate::adapters::StateStore;

/// Two controllers of `b`'s cluster over one store and fleet, each leading
/// by a lease of its own.
async fn two_controllers(b: &B) -> (TestController, TestController, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let fleet = Arc::new(MemoryFleet::default());
    let leader = AlwaysLeader { epoch: 1 };
    let a = controller_with(
        b,
        "",
        leader,
        Arc::new(PausedClock::new(1_000_000)),
        store.clone(),
        fleet.clone(),
    )
    .await
    .advertising("http://10.0.0.1:7000");
    let c = controller_with(
        b,
        "",
        leader,
        Arc::new(PausedClock::new(1_000_000)),
        store.clone(),
        fleet,
    )
    .await
    .advertising("http://10.0.0.2:7000");
    (a, c, store)
}

#[tokio::test(start_paused = true)]
async fn fence_a_controller_another_took_the_cluster_over_from_changes_nothing_and_says_who_leads()
{
    // Five replicas wanted, three there: each pass's next step scales the fleet.
    let b = cluster(3).replicas(5);
    let (mut a, mut c, store) = two_controllers(&b).await;
    // A takes the cluster over; its first step is still to come.
    a.lead().await.unwrap();
    let a_epoch = store.load().await.unwrap().unwrap().epoch;
    // C takes the cluster over while A still holds its own lease.
    let capacity = a.fleet.observe().await.unwrap().desired_capacity;
    c.lead().await.unwrap();
    let stored = store.load().await.unwrap().unwrap();
    assert!(stored.epoch > a_epoch, "C took over under {}", stored.epoch);
    // A's next passes change nothing and store nothing.
    for _ in 0..3 {
        advance(Duration::from_secs(1)).await;
        reports_from(&a, &b, &["i-1", "i-2", "i-3"]);
        let _ = a.reconcile().await;
    }
    assert_eq!(
        a.fleet.observe().await.unwrap().desired_capacity,
        capacity,
        "A changed the fleet after C took the cluster over"
    );
    assert_eq!(store.load().await.unwrap().unwrap(), stored);
    // A never adopted C's epoch: its agents are sent to C.
    assert!(a.shared.lock().persisted.epoch < stored.epoch);
    assert_eq!(report_status(&a.shared, &report_of(&b, "i-1")).await, 503);
    assert_eq!(
        a.shared.follower_of(),
        Some(Some("http://10.0.0.2:7000".into()))
    );
    let metrics = crate::api::metrics_text(&a.shared);
    assert!(
        metrics.contains("zkop_controller_leader{cluster=\"t\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zkop_controller_fenced{cluster=\"t\"} 1"),
        "{metrics}"
    );
    let events = a.shared.status().events;
    assert!(
        events
            .iter()
            .any(|e| e.kind == "fenced" && e.message.contains("10.0.0.2")),
        "{events:?}"
    );
    // C acts.
    reports_from(&c, &b, &["i-1", "i-2", "i-3"]);
    c.reconcile().await.unwrap();
    assert_eq!(c.fleet.observe().await.unwrap().desired_capacity, 5);
}

/// A leads `b`'s cluster with nothing to do; then C takes it over. A and
/// the epoch C stored.
async fn taken_over_while_idle(b: &B) -> (TestController, u64) {
    let (mut a, mut c, store) = two_controllers(b).await;
    reports_from(&a, b, &["i-1", "i-2", "i-3"]);
    assert_eq!(pass(&mut a).await.0, "Running");
    c.lead().await.unwrap();
    let c_epoch = store.load().await.unwrap().unwrap().epoch;
    (a, c_epoch)
}

#[tokio::test(start_paused = true)]
async fn fence_an_idle_controller_learns_of_the_takeover_from_its_agents() {
    let b = cluster(3);
    let (mut a, c_epoch) = taken_over_while_idle(&b).await;
    // Nothing to do, so no step reads the record; an agent that saw C's
    // epoch reports it to A.
    advance(FENCE_CHECK).await;
    let mut seen = report_of(&b, "i-2");
    seen.epoch_seen = c_epoch;
    reports_from(&a, &b, &["i-1", "i-3"]);
    a.shared.record_report(seen).unwrap();
    let _ = a.reconcile().await;
    assert_eq!(a.shared.fenced(), Some(c_epoch));
    assert!(a.shared.follower_of().is_some(), "A still leads");
}

#[tokio::test(start_paused = true)]
async fn fence_an_idle_controller_no_agent_tells_learns_of_the_takeover_within_idle_fence_check() {
    // A controller of another group (its lease in another table) took the
    // cluster over; every agent still talks to A, so none saw C's epoch.
    let b = cluster(3);
    let (mut a, c_epoch) = taken_over_while_idle(&b).await;
    advance(FENCE_CHECK).await;
    reports_from(&a, &b, &["i-1", "i-2", "i-3"]);
    let _ = a.reconcile().await;
    assert_eq!(a.shared.fenced(), None, "read before it was due");
    advance(IDLE_FENCE_CHECK - FENCE_CHECK).await;
    reports_from(&a, &b, &["i-1", "i-2", "i-3"]);
    let _ = a.reconcile().await;
    assert_eq!(a.shared.fenced(), Some(c_epoch));
    assert!(a.shared.follower_of().is_some(), "A still leads");
}

#[tokio::test(start_paused = true)]
async fn a_follower_exports_its_leadership_and_no_cluster_gauge() {
    // Issue 24, finding 7: a standby controller knows nothing of the
    // cluster; a gauge of its (say zkop_backup_behind) would fire alerts.
    let b = cluster(3);
    let (mut a, c, _) = two_controllers(&b).await;
    a.lead().await.unwrap();
    reports_from(&a, &b, &["i-1", "i-2", "i-3"]);
    let leading = crate::api::metrics_text(&a.shared);
    assert!(leading.contains("zkop_cluster_phase"), "{leading}");
    let following = crate::api::metrics_text(&c.shared);
    assert!(
        following.contains("zkop_controller_leader{cluster=\"t\"} 0"),
        "{following}"
    );
    let gauges: Vec<&str> = following
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            !l.starts_with("zkop_controller_leader") && !l.starts_with("zkop_controller_fenced")
        })
        .collect();
    assert!(gauges.is_empty(), "a follower exported {gauges:?}");
}

#[tokio::test(start_paused = true)]
async fn a_follower_s_status_says_it_follows_and_who_leads() {
    // Issue 24, finding 9: the group API served a follower's frozen status
    // as if it were the cluster's.
    let b = cluster(3);
    let (mut a, mut c, _) = two_controllers(&b).await;
    a.lead().await.unwrap();
    assert_eq!(a.shared.status().follows, None);
    c.lead().await.unwrap();
    reports_from(&a, &b, &["i-1", "i-2", "i-3"]);
    let _ = a.reconcile().await;
    let _ = a.check_fence().await;
    let status = a.shared.status();
    assert_eq!(status.follows.as_deref(), Some("http://10.0.0.2:7000"));
    let table = crate::cli::client::render_table(&status);
    assert!(table.contains("does not lead"), "{table}");
}
