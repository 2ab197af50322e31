//! Zones on the local fleet (`fleet.local.zones`): five voters over zones
//! a, b and c, then every member of one zone SIGKILLed at once. The quorum
//! holds (no recovery), and five voters serve again with no zone holding a
//! majority, while an independent client keeps writing.

use std::collections::BTreeMap;
use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_spec::zk::MemberRole;
use zkop_tests::common::{
    self, LocalCluster, SERIAL, assert_writes_kept, example_spec, settled, write_until,
};

/// Voters per zone.
fn voters_by_zone(s: &StatusReply) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for m in &s.members {
        if m.config_role == Some(MemberRole::Participant) {
            *by.entry(m.zone.clone().unwrap_or_default()).or_default() += 1;
        }
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_whole_zone_keeps_the_quorum_and_five_voters_come_back_spread_over_zones() {
    let _serial = SERIAL.lock().await;
    let spec = example_spec(5).replace(
        "fleet:\n    local: {}",
        "fleet:\n    local:\n      zones: [a, b, c]",
    );
    let (c, s) = LocalCluster::start_settled(&spec, "127.0.85.0/24", 5).await;
    let zones = voters_by_zone(&s);
    assert_eq!(
        zones.keys().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "{zones:?}"
    );
    assert!(zones.values().all(|n| *n <= 2), "{zones:?}");
    assert_eq!(s.failure_tolerance, Some(2));
    assert_eq!(s.zone_failure_tolerance, Some(1));
    let metrics = c.metrics().await;
    assert!(
        metrics.contains("zkop_cluster_zone_failure_tolerance{cluster=\"local-3\"} 1"),
        "{metrics}"
    );

    let hosts = LocalCluster::endpoints(&s);
    let endpoints: Vec<String> = s.members.iter().map(common::endpoint).collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_until(hosts, stop_rx.clone()));
    let sampler = tokio::spawn(common::sample_until(endpoints, stop_rx.clone()));
    common::wait_writes_flowing(&common::zk_client(&LocalCluster::endpoints(&s)).await, 20).await;

    // Every member of the most crowded zone, agents and servers, at once.
    let (zone, _) = zones.iter().max_by_key(|(_, n)| **n).unwrap();
    let lost: Vec<_> = s
        .members
        .iter()
        .filter(|m| m.zone.as_deref() == Some(zone.as_str()))
        .map(|m| m.instance.to_string())
        .collect();
    let pids: Vec<u32> = lost.iter().flat_map(|i| c.instance_pids(i)).collect();
    let killed_at = common::now_ms();
    for pid in &pids {
        // SAFETY: kill(2) on processes this test's cluster started.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let after = c
        .wait_status(
            &format!("five voters again without zone {zone}'s lost members"),
            Duration::from_secs(180),
            |s| {
                settled(s, 5, 0)
                    && !s
                        .members
                        .iter()
                        .any(|m| lost.contains(&m.instance.to_string()))
            },
        )
        .await;
    stop_tx.send(true).unwrap();
    let acked = writer.await.unwrap();
    let samples = sampler.await.unwrap();

    // The quorum held: a majority served at every sample but in the
    // election a lost leader starts; nothing was recovered or forced.
    // (A sample is stamped when its round of probes starts: one begun just
    // before the kill may see it.)
    common::assert_majority_but_one_election(&samples, killed_at.saturating_sub(1000));
    let kinds: Vec<&str> = after.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        !kinds
            .iter()
            .any(|k| ["force_config", "discard_ensemble"].contains(k)),
        "{kinds:?}"
    );
    let zones = voters_by_zone(&after);
    assert!(
        zones.values().all(|n| *n <= 2),
        "a zone holds a majority: {zones:?}"
    );
    assert_eq!(after.zone_failure_tolerance, Some(1), "{zones:?}");
    assert_writes_kept(&after, &acked).await;
    eprintln!(
        "zones: lost zone {zone} ({} members), five voters again as {zones:?}, {} writes kept",
        lost.len(),
        acked.len()
    );
}

/// Every voter zone holds at most two of five, and every zone holds one.
fn spread_over_three(s: &StatusReply, zones: &[&str]) -> bool {
    let by = voters_by_zone(s);
    settled(s, 5, 0)
        && by.len() == zones.len()
        && by.keys().all(|z| zones.contains(&z.as_str()))
        && by.values().all(|n| *n <= 2)
        && s.zone_failure_tolerance == Some(1)
}

/// The AWS sandbox, its simulator spreading instances over three zones as a
/// group would (moto puts every instance in one): five voters over three
/// zones, then both instances of one zone terminated through the group at
/// once. The replacements come back in that zone, five voters are spread
/// again, and nothing was forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_aws_voters_spread_over_the_groups_zones_and_a_lost_zone_comes_back_spread() {
    let _serial = SERIAL.lock().await;
    let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
    let c = common::aws::AwsCluster::start_zoned(5, "127.0.90.0/24", &zones).await;
    let log = || c.log_tail();
    let limit = Duration::from_secs(120);
    let s = c
        .api()
        .wait_status(
            "five voters over three zones",
            limit,
            |s| spread_over_three(s, &zones),
            log,
        )
        .await;
    let by = voters_by_zone(&s);
    let (zone, _) = by.iter().max_by_key(|(_, n)| **n).unwrap();
    let lost: Vec<String> = s
        .members
        .iter()
        .filter(|m| m.zone.as_deref() == Some(zone.as_str()))
        .map(|m| m.instance.to_string())
        .collect();
    assert_eq!(lost.len(), 2, "{by:?}");
    for i in &lost {
        c.terminate_through_group(i).await;
    }
    let s = c
        .api()
        .wait_status(
            "five voters spread again without the lost zone's instances",
            limit,
            |s| {
                spread_over_three(s, &zones)
                    && s.members
                        .iter()
                        .all(|m| !lost.contains(&m.instance.to_string()))
            },
            log,
        )
        .await;
    let forced = common::events_of(&s, &["force_config", "discard_ensemble"], 0);
    assert!(forced.is_empty(), "{forced:?}");
}
