//! Standby voters: three voters and one standby; a voter's ZooKeeper is
//! SIGSTOPped (hung: its agent and instance live, so nothing is dead for
//! `memberDeadAfter`). The standby takes its vote through the live quorum
//! within `voterDownAfter` and a few seconds, no acknowledged write is lost,
//! and a new standby joins afterwards.

use std::time::{Duration, Instant};

use zkop_spec::wire::StatusReply;
use zkop_spec::zk::MemberRole;
use zkop_tests::common::{
    self, LocalCluster, SERIAL, assert_writes_kept, example_spec, settled, write_until,
};

/// Serving voters in the config.
fn serving_voters(s: &StatusReply) -> Vec<String> {
    s.members
        .iter()
        .filter(|m| m.config_role == Some(MemberRole::Participant) && m.healthy)
        .map(|m| m.instance.to_string())
        .collect()
}

/// Resumes and kills the hung server if the test ends before its agent
/// did (by PID).
struct Hung(u32);

impl Drop for Hung {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the server this test stopped.
        unsafe {
            libc::kill(self.0 as libc::pid_t, libc::SIGKILL);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_voters_vote_goes_to_the_standby_within_voter_down_after() {
    let _serial = SERIAL.lock().await;
    let down_after = Duration::from_secs(3);
    let spec = example_spec(3)
        .replace("    max: 5\n", "    max: 5\n    standby: 1\n")
        .replace(
            "    memberDeadAfter: 60s\n",
            "    memberDeadAfter: 60s\n    voterDownAfter: 3s\n",
        );
    let c = LocalCluster::start(&spec, "127.0.86.0/24").await;
    // The standby: a fourth member, an observer, served a while.
    c.wait_status("three voters and a standby", Duration::from_secs(90), |s| {
        settled(s, 3, 1)
    })
    .await;
    // The standby must have served for STANDBY_STABLE (10 s) before it may
    // take a vote: wait for status to say so, not for a fixed time.
    let s = c
        .wait_status("the standby served 10 s", Duration::from_secs(60), |s| {
            settled(s, 3, 1)
                && s.members.iter().any(|m| {
                    m.config_role == Some(MemberRole::Observer)
                        && m.serving_for_s.is_some_and(|t| t >= 10)
                })
        })
        .await;
    let hosts = LocalCluster::endpoints(&s);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_until(hosts.clone(), stop_rx));
    common::wait_writes_flowing(&common::zk_client(&hosts).await, 20).await;

    let victim = common::follower(&s);
    let pid = c
        .server_pid(&victim.instance)
        .expect("the follower's server runs");
    let hung = Hung(pid);
    // SAFETY: kill(2) on the server of this test's cluster.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGSTOP);
    }
    let stopped = Instant::now();
    let back = c
        .wait_status("three serving voters again", Duration::from_secs(60), |s| {
            let voters = serving_voters(s);
            voters.len() == 3 && !voters.contains(&victim.instance.to_string())
        })
        .await;
    let took = stopped.elapsed();
    eprintln!(
        "standby: three serving voters again {:.1} s after the SIGSTOP (voterDownAfter {} s + {:.1} s)",
        took.as_secs_f64(),
        down_after.as_secs(),
        (took.saturating_sub(down_after)).as_secs_f64()
    );
    assert!(
        took <= down_after + Duration::from_secs(2),
        "took {took:?}: {:#?}",
        back.events
    );
    let kinds: Vec<&str> = back.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"mark_voter_down"), "{kinds:?}");
    assert!(
        !kinds
            .iter()
            .any(|k| *k == "fence_instance" || *k == "force_config"),
        "{kinds:?}"
    );

    // A new standby: the hung member retired, its instance replaced.
    let after = c
        .wait_status("a new standby", Duration::from_secs(120), |s| {
            settled(s, 3, 1) && !s.members.iter().any(|m| m.instance == victim.instance)
        })
        .await;
    drop(hung);
    stop_tx.send(true).unwrap();
    let acked = writer.await.unwrap();
    assert_writes_kept(&after, &acked).await;
}

/// `zkop bench --standby`: voter redundancy after a voter's ZooKeeper hangs
/// comes back within `voterDownAfter` and a few seconds with a standby, and
/// after `memberDeadAfter` and a replacement without one (which the planner
/// once never made: the hung voter held its instance).
#[test]
fn the_standby_bench_restores_redundancy_sooner_with_a_standby_and_at_all_without() {
    let _serial = SERIAL.blocking_lock();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let args = ["bench", "--standby", "--json", "--network", "127.0.93.0/24"];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let rows: Vec<serde_json::Value> = rt.block_on(common::zkop_json(&args));
    let seconds = |standby: u64| {
        rows.iter()
            .find(|r| r["standby"] == standby)
            .and_then(|r| r["seconds"].as_f64())
            .unwrap_or_else(|| panic!("no row for standby {standby}: {rows:?}"))
    };
    eprintln!("voter redundancy restored: {rows:?}");
    // The bench spec: voterDownAfter 10s (the default), memberDeadAfter 60s.
    assert!(seconds(1) <= 10.0 + 5.0, "{rows:?}");
    assert!((60.0..120.0).contains(&seconds(0)), "{rows:?}");
}
