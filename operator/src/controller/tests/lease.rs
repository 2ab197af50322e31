//! Lease loss (issue 12, finding 1): the leader lease on paused time, with
//! controllers sharing an in-memory lease table, store and fleet. Each
//! controller has its own clock; their wall clocks disagree on purpose.

use axum::body::Body;
use axum::http::{Method, Request};
use tower::ServiceExt;

use super::*;
use crate::adapters::memory::{MemoryLease, MemoryLeaseTable};
use crate::adapters::{Lease, StateStore};

const TTL: Duration = Duration::from_secs(15);

type Keeper = LeaseKeeper<Arc<MemoryLease>>;

/// `holder`'s lease on `table`, and a keeper of it on a clock whose wall
/// time reads `wall_ms` now.
fn keeper(table: &Arc<MemoryLeaseTable>, holder: &str, wall_ms: u64) -> (Arc<MemoryLease>, Keeper) {
    let lease = Arc::new(MemoryLease::new(table.clone(), holder, TTL));
    let clock = Arc::new(PausedClock::new(wall_ms));
    (lease.clone(), LeaseKeeper::new(lease, clock))
}

/// The HTTP status the controller's API answers an agent's report with,
/// from an agent the controller already knows by its key.
pub(super) async fn report_status(shared: &Arc<Shared>, report: &AgentReport) -> u16 {
    let key = format!("key of {}", report.instance);
    shared.bind_agent_key(&report.instance, &key);
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/agents/{}/report", report.instance))
        .header("authorization", format!("Bearer {}", shared.token))
        .header(crate::controller::AGENT_KEY_HEADER, key)
        .body(Body::from(serde_json::to_vec(report).unwrap()))
        .unwrap();
    let response = crate::api::router(shared.clone())
        .oneshot(request)
        .await
        .unwrap();
    response.status().as_u16()
}

fn leads(standing: &Result<Standing, StoreError>) -> bool {
    matches!(standing, Ok(Standing::Leader { .. }))
}

#[tokio::test(start_paused = true)]
async fn lease_loss_past_its_lease_a_controller_answers_agents_503_and_acts_no_more() {
    // Five replicas wanted, three there: the plan's next step scales the fleet.
    let b = cluster(3).replicas(5);
    let table = Arc::new(MemoryLeaseTable::default());
    let (lease, keeper) = keeper(&table, "a", 1_000_000);
    let clock = Arc::new(PausedClock::new(1_000_000));
    let (store, fleet) = (
        Arc::new(MemoryStore::default()),
        Arc::new(MemoryFleet::default()),
    );
    let mut ctl = controller_with(&b, "", keeper, clock, store, fleet.clone()).await;
    let report = report_of(&b, "i-1");
    ctl.reconcile().await.unwrap();
    assert_eq!(report_status(&ctl.shared, &report).await, 204);
    // DynamoDB becomes unreachable right after the renewal was sent.
    lease.set_cut_off(true);
    let capacity = fleet.observe().await.unwrap().desired_capacity;
    advance(TTL - LEASE_MARGIN - Duration::from_millis(1)).await;
    let _ = ctl.reconcile().await;
    assert_eq!(report_status(&ctl.shared, &report).await, 204);
    advance(Duration::from_millis(1)).await;
    assert_eq!(report_status(&ctl.shared, &report).await, 503);
    for _ in 0..5 {
        let pass = ctl.reconcile().await;
        assert!(pass.is_err(), "a pass ran without the lease: {pass:?}");
        advance(Duration::from_secs(1)).await;
    }
    assert_eq!(report_status(&ctl.shared, &report).await, 503);
    let after = fleet.observe().await.unwrap().desired_capacity;
    assert_eq!(after, capacity, "the fleet was changed without the lease");
}

#[tokio::test(start_paused = true)]
async fn lease_loss_the_lease_counts_from_when_its_renewal_was_sent() {
    let table = Arc::new(MemoryLeaseTable::default());
    let (lease, mut keeper) = keeper(&table, "a", 1_000_000);
    // The round is slow: read and write take 4 s each.
    lease.set_delay(Duration::from_secs(4));
    let sent = tokio::time::Instant::now();
    assert!(leads(&keeper.check().await));
    assert_eq!(sent.elapsed(), Duration::from_secs(8));
    lease.set_delay(Duration::ZERO);
    lease.set_cut_off(true);
    let lapse = TTL - LEASE_MARGIN;
    advance(lapse - sent.elapsed() - Duration::from_millis(1)).await;
    assert!(leads(&keeper.check().await), "still within the lease");
    advance(Duration::from_millis(1)).await;
    let standing = keeper.check().await;
    assert!(
        !leads(&standing),
        "{standing:?} at ttl - margin after the send"
    );
}

#[tokio::test(start_paused = true)]
async fn lease_loss_takeover_waits_a_whole_lease_on_its_own_clock_whatever_the_wall_clocks_say() {
    let table = Arc::new(MemoryLeaseTable::default());
    let (a_lease, mut a) = keeper(&table, "a", 1_000_000);
    // B's wall clock runs an hour ahead: A's stored expiry looks long past.
    let (_, mut b) = keeper(&table, "b", 1_000_000 + 3_600_000);
    assert!(leads(&a.check().await));
    assert!(
        !leads(&b.check().await),
        "B took a lease A had just renewed"
    );
    a_lease.set_cut_off(true);
    // Step through time: never do both lead; B leads within ttl + a step.
    let mut b_leads_after = None;
    for step in 1..=200u32 {
        advance(Duration::from_millis(100)).await;
        let a_leads = leads(&a.check().await);
        let b_leads = leads(&b.check().await);
        assert!(!(a_leads && b_leads), "both lead at +{step}00 ms");
        if b_leads {
            b_leads_after = Some(step);
            break;
        }
    }
    let step = b_leads_after.expect("B never took over");
    assert!(
        step * 100 >= TTL.as_millis() as u32,
        "B took over at +{step}00 ms"
    );
    assert_eq!(
        table.record().map(|r| (r.holder, r.epoch)),
        Some(("b".into(), 2))
    );
}

#[tokio::test(start_paused = true)]
async fn lease_loss_a_stored_epoch_above_the_lease_s_is_never_shared_by_two_leaders() {
    // The state says epoch 7; the lease record was lost and restarts at 1.
    let mut b = cluster(3);
    b.p.epoch = 7;
    let table = Arc::new(MemoryLeaseTable::default());
    let (store, fleet) = (
        Arc::new(MemoryStore::default()),
        Arc::new(MemoryFleet::default()),
    );
    let (a_lease, a) = keeper(&table, "a", 1_000_000);
    let clock = Arc::new(PausedClock::new(1_000_000));
    let mut ctl_a = controller_with(&b, "", a, clock, store.clone(), fleet.clone()).await;
    ctl_a.reconcile().await.unwrap();
    let a_epoch = store.load().await.unwrap().unwrap().epoch;
    assert!(a_epoch > 7, "A leads under stored epoch {a_epoch}");
    // A is cut off; B takes the lease (epoch 2) and must lead above A.
    a_lease.set_cut_off(true);
    let (_, k) = keeper(&table, "b", 1_000_000);
    let clock = Arc::new(PausedClock::new(1_000_000));
    let mut ctl_b = controller_with(&b, "", k, clock, store.clone(), fleet).await;
    let deadline = tokio::time::Instant::now() + TTL * 2;
    while ctl_b.shared.follower_of().is_some() && tokio::time::Instant::now() < deadline {
        let _ = ctl_b.reconcile().await;
        advance(Duration::from_millis(500)).await;
    }
    let b_epoch = store.load().await.unwrap().unwrap().epoch;
    assert!(
        b_epoch > a_epoch,
        "B leads under {b_epoch}, A under {a_epoch}"
    );
}

#[tokio::test(start_paused = true)]
async fn api_trust_reports_are_kept_only_for_instances_the_fleet_lists() {
    let b = cluster(3);
    let (mut ctl, fleet) = controller_of(&b, "").await;
    ctl.reconcile().await.unwrap();
    // Any name at all: refused with a JSON 404, not stored.
    let mut stranger = report_of(&b, "i-1");
    stranger.instance = "i-not-ours".into();
    assert_eq!(report_status(&ctl.shared, &stranger).await, 404);
    // A new instance the fleet launched since the last look: refused once,
    // which makes the controller look again; then kept.
    fleet.set_desired_capacity(4).await.unwrap();
    let mut newcomer = report_of(&b, "i-1");
    newcomer.instance = "i-4".into();
    newcomer.server_id = None;
    assert_eq!(report_status(&ctl.shared, &newcomer).await, 404);
    advance(Duration::from_millis(100)).await;
    ctl.reconcile().await.unwrap();
    assert_eq!(report_status(&ctl.shared, &newcomer).await, 204);
    let view = ctl.fleet.observe().await.unwrap();
    let (_, _, observed) = ctl.shared.snapshot(view);
    let kept: Vec<&str> = observed.reports.keys().map(|k| k.as_str()).collect();
    assert_eq!(kept, ["i-4"], "only listed instances' reports are kept");
}

#[tokio::test(start_paused = true)]
async fn the_holder_renews_with_one_write_and_reads_only_when_someone_else_wrote() {
    let table = Arc::new(MemoryLeaseTable::default());
    let (_, mut a) = keeper(&table, "a", 1_000_000);
    assert!(leads(&a.check().await));
    assert_eq!(table.calls(), (1, 1), "taking the lease reads it first");
    for _ in 0..6 {
        advance(TTL / RENEW_AFTER).await;
        assert!(leads(&a.check().await));
    }
    // Six renewals, half the TTL apart: six writes, no read.
    assert_eq!(table.calls(), (1, 7));
    // Another controller writes the record (as a takeover would): the
    // holder's conditional write fails, and only then does it read.
    let (b, _) = keeper(&table, "b", 5_000_000);
    let stored = table.record();
    assert!(b.write(stored.as_ref(), 2, 9_000_000).await.unwrap());
    advance(TTL / RENEW_AFTER).await;
    let standing = a.check().await.unwrap();
    assert!(
        matches!(standing, Standing::Follower { .. }),
        "{standing:?}"
    );
    assert_eq!(table.calls(), (2, 9));
}

#[tokio::test(start_paused = true)]
async fn a_group_lease_costs_three_clusters_what_it_costs_one_and_followers_name_each_cluster_s_api()
 {
    let table = Arc::new(MemoryLeaseTable::default());
    let (_, a) = keeper(&table, "a", 1_000_000);
    let a = Arc::new(tokio::sync::Mutex::new(a));
    let api_port = |port: u16| -> Arc<dyn Fn(&str) -> String + Send + Sync> {
        Arc::new(move |holder: &str| format!("{holder}:{port}"))
    };
    let mut clusters: Vec<SharedLease<Arc<MemoryLease>>> = (0..3)
        .map(|i| SharedLease::new(a.clone(), api_port(7000 + i)))
        .collect();
    for _ in 0..7 {
        for c in &mut clusters {
            assert!(leads(&c.check().await));
        }
        advance(TTL / RENEW_AFTER).await;
    }
    // Taken once and renewed six times, whichever cluster asked.
    assert_eq!(table.calls(), (1, 7), "one lease for three clusters");
    // Another controller of the group follows, and sends each cluster's
    // agents to that cluster's API on the holder's host.
    let (_, b) = keeper(&table, "b", 2_000_000);
    let b = Arc::new(tokio::sync::Mutex::new(b));
    let mut search = SharedLease::new(b, api_port(7001));
    let standing = search.check().await.unwrap();
    assert_eq!(
        standing,
        Standing::Follower {
            leader_url: Some("http://a:7001".into())
        }
    );
}

/// Issue 15's budget, on the default lease: an idle cluster's controller
/// makes at most six AWS calls a minute (lease, state record and group),
/// counted over ten minutes so that no window's alignment hides a call.
/// Before the fix it made about 7.4: four lease writes (a third of 45 s),
/// 2.4 state reads for the fence (every 25 s) and one group look.
#[tokio::test(start_paused = true)]
async fn an_idle_controller_on_the_default_lease_makes_at_most_six_calls_a_minute() {
    let b = cluster(3);
    let table = Arc::new(MemoryLeaseTable::default());
    let lease = Arc::new(MemoryLease::new(
        table.clone(),
        "a",
        crate::cli::run::LEASE_TTL,
    ));
    let clock = Arc::new(PausedClock::new(1_000_000));
    let keeper = LeaseKeeper::new(lease, clock.clone());
    let (store, fleet) = (
        Arc::new(MemoryStore::default()),
        Arc::new(MemoryFleet::default()),
    );
    let mut ctl = controller_with(&b, "", keeper, clock, store.clone(), fleet.clone()).await;
    let all = ["i-1", "i-2", "i-3"];
    reports_from(&ctl, &b, &all);
    assert_eq!(pass(&mut ctl).await.0, "Running");
    let calls = || {
        let (reads, writes) = table.calls();
        reads + writes + store.calls() + fleet.observations()
    };
    let before = calls();
    // Passes every 500 ms as the loop runs them idle; agents report each second.
    let minutes = 10;
    for half_second in 0..minutes * 120 {
        if half_second % 2 == 0 {
            reports_from(&ctl, &b, &all);
        }
        ctl.reconcile().await.unwrap();
        advance(Duration::from_millis(500)).await;
    }
    let made = calls() - before;
    eprintln!("{made} calls in {minutes} idle minutes");
    assert_eq!(ctl.shared.status().phase, "Running");
    assert!(
        made <= 6 * minutes,
        "{made} calls in {minutes} idle minutes (lease {:?}, state {}, group {})",
        table.calls(),
        store.calls(),
        fleet.observations()
    );
}
