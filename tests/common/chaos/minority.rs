//! The controller on the minority's side of a partition: the one case the
//! fault suite keeps out (its faults leave the controller with the majority).
//! The controller then sees no quorum, declares it lost, and under
//! `quorumLoss: recover` fences the majority it cannot reach and restarts the
//! minority under a config of its own. What that loses is bounded: writes the
//! majority committed that the minority had not logged when it was cut off,
//! and whatever clients on the majority's side wrote during the split.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::super::netns::Hub;
use super::super::{LocalCluster, example_spec, now_ms, settled};
use super::{back_to_spec, watchers};
use crate::common::netns::hub_and_runtime;

/// What the run saw.
#[derive(Debug)]
pub struct MinoritySide {
    /// The phases the status showed after the split (sampled: a short one
    /// can pass unseen).
    pub phases: Vec<String>,
    /// The controller's phase changes after the split, from its events.
    pub phase_changes: Vec<String>,
    /// Event kinds after the split, oldest first.
    pub steps: Vec<String>,
    /// What the forced config's event said (survivors, lost voters, the
    /// transactions possibly lost).
    pub forced: Vec<String>,
    /// Writes acknowledged in all.
    pub acked: usize,
    /// Acknowledged writes lost, with how long before the split each was
    /// acknowledged (ms; negative: after it).
    pub lost_before_split_ms: Vec<i64>,
    /// The members before and after (id to instance).
    pub members: (
        std::collections::BTreeMap<u64, String>,
        std::collections::BTreeMap<u64, String>,
    ),
    /// The member on the minority's side, with the controller.
    pub minority: u64,
}

/// Three voters, a client writing; the leader and one follower are moved to
/// the far side of a partition, away from the controller, the client and the
/// third voter. Returns once the controller has brought the spec back.
pub fn run_minority_side() -> MinoritySide {
    let _serial = super::super::SERIAL.blocking_lock();
    let (hub, rt) = hub_and_runtime(201);
    rt.block_on(split_from_controller(&hub))
}

async fn split_from_controller(hub: &Hub) -> MinoritySide {
    // The majority it cannot hear was seen ahead of the minority (it keeps
    // taking writes): `recover` would wait for it (issue 24, finding 6);
    // this documents what `recoverLosing`, which forces anyway, loses.
    let spec = example_spec(3)
        .replace("detectAfter: 10s", "detectAfter: 2s")
        .replace("quorumLoss: recover", "quorumLoss: recoverLosing");
    let c = LocalCluster::start_in(&spec, hub).await;
    let before = back_to_spec(&c, 3, None).await;
    let (_hosts_tx, hosts_rx) = watch::channel(LocalCluster::endpoints(&before));
    let (stop_tx, stop_rx) = watch::channel(false);
    let writer = tokio::spawn(watchers::write_until_stopped(hosts_rx, stop_rx));
    super::super::wait_until("writes flowing", Duration::from_secs(30), || async {
        let client = super::super::zk_client(&LocalCluster::endpoints(&before)).await;
        let n = client.list_children("/acc").await.ok()?.len();
        (n >= 20).then_some(())
    })
    .await;

    let leader = super::super::leader(&before);
    let follower = super::super::follower(&before);
    let minority = before
        .members
        .iter()
        .find(|m| m.id != leader.id && m.id != follower.id)
        .expect("a third voter")
        .clone();
    let split_at = now_ms();
    hub.isolate(leader.instance.as_str());
    hub.isolate(follower.instance.as_str());

    let mut phases = Vec::new();
    let limit = Duration::from_secs(240);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = c.status().await {
            if phases.last() != Some(&s.phase) {
                phases.push(s.phase.clone());
            }
            if settled(&s, 3, 0) && !s.members.iter().any(|m| m.instance == leader.instance) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the minority's controller did not bring back three voters within {limit:?} (phases {phases:?})\n{}",
            c.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = back_to_spec(&c, 3, None).await;
    let _ = stop_tx.send(true);
    let acked = writer.await.expect("writer");
    let lost = watchers::lost_writes(&LocalCluster::endpoints(&after), &acked).await;
    MinoritySide {
        phases,
        phase_changes: messages(&after, split_at, "phase"),
        steps: after
            .events
            .iter()
            .filter(|e| e.at_ms >= split_at)
            .map(|e| e.kind.clone())
            .collect(),
        forced: messages(&after, split_at, "force_config"),
        acked: acked.len(),
        lost_before_split_ms: lost
            .iter()
            .map(|(_, at)| split_at as i64 - *at as i64)
            .collect(),
        members: (
            super::super::members(&before),
            super::super::members(&after),
        ),
        minority: minority.id.0,
    }
}

/// The messages of `kind` events since `since_ms`, oldest first.
fn messages(s: &zkop_spec::wire::StatusReply, since_ms: u64, kind: &str) -> Vec<String> {
    s.events
        .iter()
        .filter(|e| e.at_ms >= since_ms && e.kind == kind)
        .map(|e| e.message.clone())
        .collect()
}
