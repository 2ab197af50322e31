//! What the fault suite checks after each fault: back to the spec, the
//! members the fault allows, nothing drastic taken.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use zkop_spec::wire::StatusReply;

use super::{Expect, Fault, RELEASES, World};
use crate::common::{LocalCluster, members, settled};

/// What every fault must leave: the members it allows, nothing drastic;
/// after an upgrade every member on the release, after a cut leader a later
/// epoch leading.
pub(super) fn check_after(
    fault: Fault,
    expect: &Expect,
    (before, after): (&StatusReply, &StatusReply),
    started: u64,
    world: &World,
    seed: u64,
) {
    check_membership(fault, expect, before, after, started);
    if fault == Fault::Upgrade {
        every_member_on(RELEASES[world.release], after, seed);
    }
    if fault == Fault::CutLeader {
        // The cut took: the others elected a leader of a later epoch.
        assert!(
            leader_epoch(after) > leader_epoch(before),
            "seed {seed}: cutting the leader off changed no leader: {:#?}",
            after.members
        );
    }
    check_nothing_drastic(fault, after, started);
}

/// After an `upgrade` fault: every member's `srvr` says `release`.
pub(super) fn every_member_on(release: &str, after: &StatusReply, seed: u64) {
    assert!(
        crate::common::all_on_release(after, release),
        "seed {seed}: not every member runs {release} after the upgrade: {:#?}",
        after.members
    );
}

/// Waits until the status is the spec (`replicas` voters, all healthy, one
/// leader) and every member answers `srvr` as leader or follower itself; with
/// `rolled_since`, also until every member restarted since then.
pub(super) async fn back_to_spec(
    c: &LocalCluster,
    replicas: usize,
    rolled_since: Option<u64>,
) -> StatusReply {
    let limit = Duration::from_secs(300);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = c.status().await
            && settled(&s, replicas, 0)
            && rolled_since.is_none_or(|t| every_member_restarted(&s, t))
            && every_member_serves(&s).await
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "not back to the spec ({replicas} voters) within {limit:?}: {:#?}\n{}",
            c.status().await,
            c.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Each member of the status answers `srvr` as a serving leader or follower.
pub(super) async fn every_member_serves(s: &StatusReply) -> bool {
    for m in &s.members {
        let Ok(p) = zkop_zk::probe::probe(&crate::common::endpoint(m)).await else {
            return false;
        };
        if !p.serving {
            return false;
        }
    }
    true
}

/// The roll-out begun since `since_ms` finished, having restarted every member.
pub(super) fn every_member_restarted(s: &StatusReply, since_ms: u64) -> bool {
    let restarts = crate::common::events_of(s, &["restart_member"], since_ms);
    !crate::common::events_of(s, &["finish_rollout"], since_ms).is_empty()
        && s.members.iter().all(|m| {
            restarts
                .iter()
                .any(|e| e.message.contains(&format!("member {} ", m.id.0)))
        })
}

/// The epoch of the leader the status shows.
pub(super) fn leader_epoch(s: &StatusReply) -> Option<u32> {
    s.members
        .iter()
        .find(|m| m.role == "leader")
        .and_then(|m| m.zxid)
        .map(|z| z.epoch)
}

/// How many steps of each kind the controller took since `since_ms`.
pub(super) fn steps_since(s: &StatusReply, since_ms: u64) -> BTreeMap<&str, usize> {
    let mut kinds = BTreeMap::new();
    for e in s.events.iter().filter(|e| e.at_ms >= since_ms) {
        *kinds.entry(e.kind.as_str()).or_default() += 1;
    }
    kinds
}

/// The members after a fault are what the fault allows.
pub(super) fn check_membership(
    fault: Fault,
    expect: &Expect,
    before: &StatusReply,
    after: &StatusReply,
    since_ms: u64,
) {
    let (b, a) = (members(before), members(after));
    let kept = |m: &BTreeMap<u64, String>, within: &BTreeMap<u64, String>| {
        m.iter().all(|(id, i)| within.get(id) == Some(i))
    };
    let ok = match expect {
        Expect::Same | Expect::Rolled => a == b,
        Expect::Replaced(gone) => {
            let others: BTreeMap<u64, String> = b
                .iter()
                .filter(|(_, i)| *i != gone)
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            kept(&others, &a) && !a.values().any(|i| i == gone)
        }
        Expect::Grown => kept(&b, &a),
        Expect::Shrunk => kept(&a, &b),
    };
    assert!(
        ok,
        "{}: members {b:?} became {a:?}, which {expect:?} does not allow; events since it began: {:#?}",
        fault.name(),
        after
            .events
            .iter()
            .filter(|e| e.at_ms >= since_ms)
            .map(|e| format!("{} {}: {}", e.at_ms, e.kind, e.message))
            .collect::<Vec<_>>()
    );
}

/// A majority always lived: nothing may have been fenced, forced or rebuilt.
pub(super) fn check_nothing_drastic(fault: Fault, after: &StatusReply, since_ms: u64) {
    let drastic = [
        "fence_instance",
        "force_config",
        "discard_ensemble",
        "bootstrap",
    ];
    let taken = crate::common::events_of(after, &drastic, since_ms);
    assert!(
        taken.is_empty(),
        "{}: with a majority alive the controller took {taken:#?}",
        fault.name()
    );
}
