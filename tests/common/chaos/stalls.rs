//! The fault suite's safety faults of issue 24: a quorum lost while a
//! stalled voter was seen ahead of the survivor, and a roll-out whose
//! restarted members load slower than `memberDeadAfter`.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use zkop_spec::wire::StatusReply;

use super::checks::every_member_restarted;
use super::signal;
use crate::common::netns::Hub;
use crate::common::{LocalCluster, now_ms};

/// Writes the others take while the follower is cut off.
const AHEAD_BY: u64 = 20;

/// A quorum lost with stalled voters known ahead of the survivor: a
/// follower is cut off the network until the others are seen past it and
/// it has given its leader up (a cut, not a pause: a paused follower would
/// read what its socket held on resuming and catch up), then every other
/// server is paused and the follower let back. The default `quorumLoss:
/// recover` must force nothing: the phase says which voters are ahead,
/// until they resume.
pub async fn stalled_voter_ahead(
    c: &LocalCluster,
    hub: &Hub,
    before: &StatusReply,
    rng: &mut StdRng,
) {
    let followers: Vec<_> = before
        .members
        .iter()
        .filter(|m| m.role == "follower")
        .collect();
    let survivor = (*followers.choose(rng).expect("a follower")).clone();
    let instance = survivor.instance.to_string();
    let cut_at = Instant::now();
    hub.cut(&instance);
    // The others move on, well past anything the follower may have logged
    // before the cut (its last report can lag, and a proposal in flight may
    // reach it): writes of our own through the others, since the suite's
    // writer may be the follower's client and stall with it.
    let others_at = |s: &StatusReply| {
        s.members
            .iter()
            .filter(|m| m.id != survivor.id)
            .filter_map(|m| m.zxid)
            .map(|z| z.as_u64())
            .max()
            .unwrap_or(0)
    };
    let at_cut = others_at(&c.status().await.unwrap_or_else(|| before.clone()));
    let hosts: Vec<String> = before
        .members
        .iter()
        .filter(|m| m.id != survivor.id)
        .map(crate::common::endpoint)
        .collect();
    let client = crate::common::zk_client(&hosts.join(",")).await;
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    let tag = now_ms();
    for i in 0..AHEAD_BY {
        let path = format!("/chaos-ahead-{tag}-{i}");
        if let Err(e) = client.create(&path, b"v", &options).await {
            panic!("writing {path} through the others: {e}");
        }
    }
    drop(client);
    c.wait_status(
        "the others seen well past the cut follower",
        Duration::from_secs(30),
        |s| others_at(s) >= at_cut + AHEAD_BY / 2,
    )
    .await;
    // Its read timeout (syncLimit x tickTime: 2.5 s here) closes its
    // connection to the leader: nothing sent since reaches it after.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(cut_at.elapsed())).await;
    let others: Vec<(String, Option<u32>)> = before
        .members
        .iter()
        .filter(|m| m.id != survivor.id)
        .map(|m| {
            (
                m.instance.to_string(),
                c.server_pid(&m.instance.to_string()),
            )
        })
        .collect();
    for (instance, pid) in &others {
        signal(*pid, libc::SIGSTOP, instance);
    }
    hub.heal(&instance);
    let waiting = c
        .wait_status(
            "the quorum lost, recovery waiting for the voters ahead",
            Duration::from_secs(60),
            |s| s.phase == "QuorumLost" && s.reason.contains("ahead of every survivor"),
        )
        .await;
    eprintln!("chaos: stalled voters ahead: {}", waiting.reason);
    // It keeps waiting: nothing is fenced or forced (checked by the caller
    // over the whole fault) while the voters ahead are stalled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (instance, pid) in &others {
        signal(*pid, libc::SIGCONT, instance);
    }
}

/// A roll-out whose restarted member comes back slower than
/// `memberDeadAfter` (a few GB of snapshot to load, say): `memberDeadAfter`
/// drops to its least (5 s), a setting edit (`maxClientCnxns`, from `from`
/// to `to`) rolls every member, and the first member's new JVM is paused
/// for 8 s right after the roll-out starts it. Every member is restarted,
/// none replaced (the caller checks the members), and `memberDeadAfter` is
/// put back.
pub async fn slow_roll(c: &LocalCluster, before: &StatusReply, from: &str, to: &str) {
    let started = now_ms();
    let pids: Vec<(String, Option<u32>)> = before
        .members
        .iter()
        .map(|m| {
            (
                m.instance.to_string(),
                c.server_pid(&m.instance.to_string()),
            )
        })
        .collect();
    c.edit_spec("memberDeadAfter: 60s", "memberDeadAfter: 5s");
    c.edit_spec(
        &format!("maxClientCnxns: {from}"),
        &format!("maxClientCnxns: {to}"),
    );
    // The first server the roll-out starts anew: paused past memberDeadAfter.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (instance, pid) = loop {
        let restarted = pids.iter().find_map(|(i, old)| {
            let now = c.server_pid(i);
            (now.is_some() && now != *old).then(|| (i.clone(), now))
        });
        if let Some(found) = restarted {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the roll-out restarted no server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    signal(pid, libc::SIGSTOP, &instance);
    tokio::time::sleep(Duration::from_secs(8)).await;
    signal(pid, libc::SIGCONT, &instance);
    let rolled = c
        .wait_status("the slow roll-out done", Duration::from_secs(300), |s| {
            every_member_restarted(s, started) && s.phase == "Running"
        })
        .await;
    let restarted = crate::common::events_of(&rolled, &["restart_member"], started).len();
    eprintln!(
        "chaos: slow roll: {instance}'s new server paused 8 s (memberDeadAfter 5 s); {restarted} members restarted, none replaced"
    );
    let reverted = now_ms();
    c.edit_spec("memberDeadAfter: 5s", "memberDeadAfter: 60s");
    // Applied before the next fault: a pause under a 5 s memberDeadAfter
    // would rightly be a death.
    c.wait_status(
        "memberDeadAfter back to 60 s",
        Duration::from_secs(60),
        |s| !crate::common::events_of(s, &["spec"], reverted).is_empty(),
    )
    .await;
}
