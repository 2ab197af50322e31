//! The history checkers catch what they must: histories with a planted
//! stale read, a read of a write not made yet, a lost acknowledged write, a
//! lost update applied after its session's next one, a
//! compare-and-set accepted against an old version and a session going back
//! in time are each flagged (and a correct concurrent history, with the stale
//! reads ZooKeeper allows, is not); and a real fault ZooKeeper cannot
//! survive, a majority's data directories wiped while it runs, is flagged
//! from the recorded history alone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use zkop_tests::common::history::{self, History, Kind, Op, Outcome, Verdicts};
use zkop_tests::common::{LocalCluster, example_spec, wait_until};

/// One operation; times in milliseconds for readability (the checker only
/// compares them).
fn op(session: i64, key: &str, kind: Kind, value: &str, (call, ret): (i64, i64)) -> Op {
    Op {
        session,
        key: key.to_string(),
        op: kind,
        value: if kind == Kind::Read { "" } else { value }.to_string(),
        expected: 0,
        call,
        returned: ret,
        outcome: Outcome::Ok,
        read: if kind == Kind::Read { value } else { "" }.to_string(),
        version: 0,
        mzxid: 0,
    }
}

/// `op` with the znode's version and the zxid that made it.
fn at(mut o: Op, version: i64, mzxid: i64) -> Op {
    o.version = version;
    o.mzxid = mzxid;
    o
}

fn check(ops: &[Op]) -> (Verdicts, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let v = history::check_ops(ops, dir.path());
    eprintln!("{}", v.line());
    (v, dir)
}

/// Porcupine said no, and left the failing slice and its drawing.
fn assert_not_linearizable(v: &Verdicts, dir: &Path, key: &str) {
    assert_eq!(v.linearizable.result, "Illegal", "{v:#?}");
    assert_eq!(v.linearizable.failing_key, key, "{v:#?}");
    assert!(v.linearizable.slice_operations > 0, "{v:#?}");
    let html = std::fs::read_to_string(dir.join("failing-slice.html")).expect("the drawing");
    assert!(html.contains("<html"), "{html:.200}");
    let slice = std::fs::read_to_string(dir.join("failing-slice.jsonl")).expect("the slice");
    assert_eq!(slice.lines().count(), v.linearizable.slice_operations);
    assert!(v.line().contains("linearizable: NO"), "{}", v.line());
}

const K: &str = "/history/k0";

#[test]
fn a_correct_concurrent_history_passes_both_checks() {
    // Two writers overlap; the reader may see either order's outcome, and a
    // compare-and-set against the version it read wins, a second one loses.
    let mut cas = at(op(1, K, Kind::Cas, "c", (40, 50)), 3, 13);
    cas.expected = 2;
    let mut lost_cas = op(2, K, Kind::Cas, "d", (60, 70));
    lost_cas.expected = 2;
    lost_cas.outcome = Outcome::BadVersion;
    let mut unknown = op(2, K, Kind::Write, "e", (80, 90));
    unknown.outcome = Outcome::Unknown;
    let ops = [
        at(op(1, K, Kind::Write, "a", (0, 20)), 2, 12),
        at(op(2, K, Kind::Write, "b", (5, 15)), 1, 11),
        at(op(3, K, Kind::Read, "a", (25, 30)), 2, 12),
        at(op(1, K, Kind::Read, "a", (30, 35)), 2, 12),
        // A lagging follower's answer to a session that saw nothing newer.
        at(op(4, K, Kind::Read, "b", (36, 38)), 1, 11),
        cas,
        lost_cas,
        unknown,
        // The unknown write took effect: seen later.
        at(op(3, K, Kind::Read, "e", (100, 110)), 4, 14),
    ];
    let (v, _dir) = check(&ops);
    assert!(v.passed(), "{v:#?}");
    assert_eq!(v.linearizable.operations, ops.len());
    assert!(v.line().contains("linearizable: yes"), "{}", v.line());
    assert!(v.line().contains("sessions: sequentially consistent"));
}

#[test]
fn a_stale_read_zookeeper_forbids_is_flagged_and_one_it_allows_is_not() {
    // Session 1 reads the znode older than its own acknowledged write: ZooKeeper
    // forbids it (read-your-writes). Session 2 reads the same old state after
    // the write: a lagging follower may answer so, and ZooKeeper allows it.
    let ops = [
        at(op(1, K, Kind::Write, "a", (0, 10)), 1, 11),
        at(op(1, K, Kind::Read, "", (20, 30)), 0, 5),
        at(op(2, K, Kind::Read, "", (20, 30)), 0, 5),
    ];
    let (v, _dir) = check(&ops);
    assert_eq!(v.linearizable.result, "Ok", "reads may lag: {v:#?}");
    assert_eq!(v.sessions.len(), 1, "{v:#?}");
    assert_eq!(
        (v.sessions[0].kind, v.sessions[0].session),
        ("read-your-writes", 1)
    );
    assert!(!v.passed());
}

#[test]
fn a_read_of_a_write_not_yet_made_is_flagged() {
    // A read shows version 2 before the write that makes it was even sent.
    let ops = [
        at(op(1, K, Kind::Write, "a", (0, 10)), 1, 11),
        at(op(2, K, Kind::Read, "b", (20, 30)), 2, 12),
        at(op(1, K, Kind::Write, "b", (40, 50)), 2, 12),
    ];
    let (v, dir) = check(&ops);
    assert_not_linearizable(&v, dir.path(), K);
}

#[test]
fn a_lost_acknowledged_write_is_flagged() {
    // `b` was acknowledged as version 2; a later write makes version 2 again,
    // as if `b` never happened.
    let ops = [
        at(op(1, K, Kind::Write, "a", (0, 10)), 1, 11),
        at(op(1, K, Kind::Write, "b", (20, 30)), 2, 12),
        at(op(2, K, Kind::Read, "a", (40, 50)), 1, 11),
        at(op(3, K, Kind::Write, "c", (60, 70)), 2, 13),
    ];
    let (v, dir) = check(&ops);
    assert_not_linearizable(&v, dir.path(), K);
}

#[test]
fn a_lost_update_takes_effect_no_later_than_its_sessions_next_answered_update() {
    // Session 2's write `u` lost its connection (unknown outcome); its next
    // write `w` was acknowledged as version 1, so `u` did not happen before
    // `w`. ZooKeeper applies a client's updates in the order it sent them, so
    // `u` never happened: a compare-and-set expecting version 1 wins.
    let mut lost = op(2, K, Kind::Write, "u", (10, 20));
    lost.outcome = Outcome::Unknown;
    let mut cas = at(op(1, K, Kind::Cas, "c", (50, 60)), 2, 13);
    cas.expected = 1;
    let mut ops = vec![lost, at(op(2, K, Kind::Write, "w", (30, 40)), 1, 12), cas];
    let (v, _dir) = check(&ops);
    assert!(v.passed(), "it never happened: {v:#?}");

    // `u` showing up only after `w` had returned and another write followed
    // breaks that order, and is flagged (without the order it would pass:
    // `u` would stay open to the end of the history).
    ops.pop();
    ops.push(at(op(1, K, Kind::Write, "x", (50, 60)), 2, 13));
    ops.push(at(op(1, K, Kind::Read, "u", (70, 80)), 3, 14));
    let (v, dir) = check(&ops);
    assert_not_linearizable(&v, dir.path(), K);
}

#[test]
fn a_compare_and_set_against_an_old_version_is_flagged() {
    // Version 1 was written and acknowledged; a compare-and-set expecting
    // version 0 must then be refused, not accepted.
    let mut cas = at(op(2, K, Kind::Cas, "b", (20, 30)), 1, 12);
    cas.expected = 0;
    let ops = [at(op(1, K, Kind::Write, "a", (0, 10)), 1, 11), cas];
    let (v, dir) = check(&ops);
    assert_not_linearizable(&v, dir.path(), K);
}

#[test]
fn a_session_going_back_in_time_is_flagged() {
    const K1: &str = "/history/k1";
    // Session 1 wrote k0 at zxid 12, then reads k1 older than a write to k1
    // (zxid 11, by session 2, still running) that it had already seen past.
    // Each znode alone is linearizable: the write to k1 overlaps the read.
    // Only the session check sees it.
    let ops = [
        at(op(2, K1, Kind::Write, "x", (0, 100)), 1, 11),
        at(op(1, K, Kind::Write, "a", (10, 20)), 1, 12),
        at(op(1, K1, Kind::Read, "", (30, 40)), 0, 5),
    ];
    let (v, _dir) = check(&ops);
    assert_eq!(v.linearizable.result, "Ok", "{v:#?}");
    assert_eq!(v.sessions.len(), 1, "{v:#?}");
    assert_eq!(v.sessions[0].kind, "monotonic-zxid");
    assert!(
        v.line()
            .contains("sessions: NOT sequentially consistent (monotonic-zxid 1)"),
        "{}",
        v.line()
    );

    // Its own write read back older (read-your-writes), and a version seen
    // then unseen (monotonic reads), each flagged as what it is.
    let ops = [
        at(op(3, K1, Kind::Write, "w", (0, 1)), 1, 7),
        at(op(3, K1, Kind::Write, "v", (0, 1)), 2, 8),
        at(op(3, K1, Kind::Write, "x", (2, 3)), 3, 9),
        at(op(1, K, Kind::Write, "a", (0, 10)), 1, 11),
        at(op(1, K, Kind::Read, "", (20, 30)), 0, 5),
        at(op(2, K1, Kind::Read, "x", (5, 10)), 3, 9),
        at(op(2, K1, Kind::Read, "v", (20, 30)), 2, 8),
        // And a value no write wrote.
        at(op(2, K1, Kind::Read, "y", (40, 50)), 3, 9),
    ];
    let (v, _dir) = check(&ops);
    let kinds: Vec<&str> = v.sessions.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        ["unwritten-value", "read-your-writes", "monotonic-reads"],
        "{v:#?}"
    );
}

/// Sends `sig` to each PID (this cluster's own processes).
fn signal(pids: &[u32], sig: libc::c_int) {
    for pid in pids {
        // SAFETY: kill(2) on a PID of this test's cluster.
        unsafe {
            libc::kill(*pid as libc::pid_t, sig);
        }
    }
}

/// Waits until the history holds `n` answered operations called after `since`.
async fn wait_answered(h: &History, since: i64, n: usize, what: &str) {
    wait_until(what, Duration::from_secs(90), || async {
        let answered = h
            .ops()
            .iter()
            .filter(|o| o.call > since && o.outcome != Outcome::Unknown)
            .count();
        (answered >= n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiping_a_majority_of_data_directories_is_flagged_from_the_history_alone() {
    let (c, s) = LocalCluster::start_settled(&example_spec(3), "127.0.136.0/24", 3).await;
    let hosts = LocalCluster::endpoints(&s);
    history::create_keys(&hosts).await;
    let recorded = Arc::new(History::new());
    let (_hosts_tx, hosts_rx) = watch::channel(hosts);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = history::run_sessions(&hosts_rx, &stop_rx, &recorded, (3, 1), 26);
    wait_answered(&recorded, 0, 100, "100 answered operations").await;

    // One member is paused (server and agent); the other two lose their
    // snapshots and transaction logs at once while their agents are held,
    // then start again, empty: a quorum of two that remembers nothing.
    let survivor = s.members[0].instance.to_string();
    let wiped: Vec<String> = s.members[1..]
        .iter()
        .map(|m| m.instance.to_string())
        .collect();
    signal(&c.instance_pids(&survivor), libc::SIGSTOP);
    let agents: Vec<u32> = wiped.iter().filter_map(|i| c.agent_pid(i)).collect();
    signal(&agents, libc::SIGSTOP);
    let servers: Vec<u32> = wiped.iter().filter_map(|i| c.server_pid(i)).collect();
    signal(&servers, libc::SIGKILL);
    for i in &wiped {
        let version2 = c.instance_dir(i).join("data/version-2");
        std::fs::remove_dir_all(&version2)
            .unwrap_or_else(|e| panic!("wiping {}: {e}", version2.display()));
    }
    let fault = recorded.now();
    signal(&agents, libc::SIGCONT);
    // The sessions carry on through whatever serves now.
    wait_answered(&recorded, fault, 20, "answers from the wiped majority").await;
    signal(&c.instance_pids(&survivor), libc::SIGCONT);
    let _ = stop_tx.send(true);
    while sessions.join_next().await.is_some() {}

    let dir = tempfile::tempdir().expect("a temporary directory");
    let v = history::check(&recorded, dir.path());
    eprintln!("{}", v.line());
    assert!(
        v.linearizable.result == "Illegal",
        "the lost data went unnoticed: {v:#?}"
    );
    assert!(dir.path().join("failing-slice.html").is_file());
    drop(c);
}
