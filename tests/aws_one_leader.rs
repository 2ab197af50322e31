//! One controller per cluster whatever runs it (issue 24, finding 1), on
//! the AWS sandbox. `zkop run FILE` on one address and `zkop run DIR` over
//! the same spec on another share one lease: exactly one leads the cluster
//! at every sample (every 200 ms for a minute), nothing is terminated or
//! fenced, and every acknowledged write is kept. Two groups whose leases
//! live in different tables both lead their group, but the cluster's own
//! state record fences: the controller taken over stops acting, says so,
//! and its agents follow the other; nothing is terminated, no write lost.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use zkop_tests::common::aws::{AwsCluster, leadership_gauges};
use zkop_tests::common::moto::create_table;
use zkop_tests::common::{
    LocalCluster, SERIAL, assert_writes_kept, settled, wait_until, write_until,
};

/// The instances of the group, by id.
async fn instances(c: &AwsCluster) -> BTreeSet<String> {
    c.group()
        .await
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_a_cluster_run_from_a_file_and_from_a_directory_is_led_by_one() {
    let _serial = SERIAL.lock().await;
    let (mut c, s) = AwsCluster::start_settled(3, "127.0.123.0/24").await;
    let before = instances(&c).await;
    let (other, _) = c.spawn_group("group", "127.0.0.3", &[]);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_until(LocalCluster::endpoints(&s), stopped));
    // The directory's controller is up (answering, as a follower).
    wait_until(
        "the directory's controller",
        Duration::from_secs(60),
        || async {
            leadership_gauges(c.http(), &other, &c.token)
                .await
                .map(|_| ())
        },
    )
    .await;

    let start = Instant::now();
    let (mut samples, mut both, mut neither) = (0, 0, 0);
    while start.elapsed() < Duration::from_secs(60) {
        let (file, group) = tokio::join!(
            leadership_gauges(c.http(), &c.urls[0], &c.token),
            leadership_gauges(c.http(), &other, &c.token)
        );
        let leads = |g: Option<(bool, bool)>| g.is_some_and(|(leader, fenced)| leader && !fenced);
        match (leads(file), leads(group)) {
            (true, true) => both += 1,
            (false, false) => neither += 1,
            _ => {}
        }
        assert!(
            !file.is_some_and(|g| g.1) && !group.is_some_and(|g| g.1),
            "a controller was fenced: {file:?} {group:?}"
        );
        samples += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("one_leader: {samples} samples, {both} with two leaders, {neither} with none");
    assert_eq!(
        both, 0,
        "two controllers led aws-3 in {both} of {samples} samples"
    );
    assert_eq!(
        neither, 0,
        "no controller led aws-3 in {neither} of {samples} samples"
    );

    let after = c
        .api()
        .wait_status(
            "still three voters",
            Duration::from_secs(30),
            |s| settled(s, 3, 0),
            || c.log_tail(),
        )
        .await;
    assert!(
        !after
            .events
            .iter()
            .any(|e| e.kind == "fenced" || e.kind == "fence_instance"),
        "{:#?}",
        after.events
    );
    assert_eq!(
        instances(&c).await,
        before,
        "an instance was replaced or terminated"
    );
    stop.send(true).unwrap();
    let acked = writer.await.unwrap();
    assert_writes_kept(&after, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_two_groups_whose_leases_live_in_different_tables_never_both_act() {
    let _serial = SERIAL.lock().await;
    let (mut c, s) = AwsCluster::start_settled(3, "127.0.124.0/24").await;
    let before = instances(&c).await;
    // A second host's group keeps its lease in another table: both lead
    // their group, so only the cluster's state record stands between them.
    create_table(&c.config, "zkop-elsewhere").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_until(LocalCluster::endpoints(&s), stopped));
    let (other, _) = c.spawn_group(
        "elsewhere",
        "127.0.0.4",
        &["--lease-table", "zkop-elsewhere"],
    );
    // The first controller learns of the takeover and stops acting.
    let deadline = Instant::now() + Duration::from_secs(90);
    let fenced_at = loop {
        if leadership_gauges(c.http(), &c.urls[0], &c.token)
            .await
            .is_some_and(|(_, fenced)| fenced)
        {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the first controller was not fenced within 90 s; the other's log:\n{}",
            std::fs::read_to_string(c.dir.path().join("run-elsewhere.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (code, body) = c.status_of(0).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["leader"].as_str(), Some(other.as_str()), "{body}");
    // From then on one controller acts: the first stays fenced.
    while fenced_at.elapsed() < Duration::from_secs(20) {
        let first = leadership_gauges(c.http(), &c.urls[0], &c.token).await;
        assert!(
            first.is_none_or(|(leader, fenced)| fenced && !leader),
            "{first:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The agents follow the other; it keeps the ensemble as it was.
    let after = zkop_tests::common::api_client(c.http(), &other, &c.token)
        .wait_status(
            "the other leading three voters",
            Duration::from_secs(90),
            |s| settled(s, 3, 0),
            || c.log_tail(),
        )
        .await;
    assert_eq!(
        instances(&c).await,
        before,
        "an instance was replaced or terminated"
    );
    stop.send(true).unwrap();
    let acked = writer.await.unwrap();
    assert_writes_kept(&after, &acked).await;
}
