//! Changing ZooKeeper's release on a live ensemble (`spec.zookeeper.version`)
//! on a local fleet of real servers, from the installed 3.8 release to
//! 3.9.5, while an independent client (kazoo) writes, holds an ephemeral
//! znode and watches a znode through it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_tests::common::{
    self, LocalCluster, SERIAL, all_on_release, example_spec, members, settled,
};

/// The 3.8 release zkop installs, and the default it upgrades to.
const FROM: &str = "3.8.6";
const TO: &str = "3.9.5";

/// A kazoo client for the whole upgrade: a 10 s session, an ephemeral
/// znode, a data watch, and a write every 50 ms (a sequential create and
/// a set of the watched znode) until its standard input closes; then one
/// JSON line of what it saw.
const CLIENT: &str = r#"
import json, sys, threading, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=10)
zk.start(timeout=30)
session = zk.client_id[0]
zk.ensure_path("/upgrade")
zk.create("/upgrade/eph", b"mine", ephemeral=True)
zk.create("/upgrade/watched", b"0")
seen = []
@zk.DataWatch("/upgrade/watched")
def watched(data, stat):
    if data is not None:
        seen.append(int(data.decode()))
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print("ready", flush=True)
acked, failed, i = [], 0, 0
last = time.monotonic()
stall = 0.0
while not stop.is_set():
    i += 1
    try:
        zk.create("/upgrade/w-%06d" % i, b"v")
        zk.set("/upgrade/watched", str(i).encode())
        acked.append(i)
        now = time.monotonic()
        stall = max(stall, now - last)
        last = now
    except Exception:
        failed += 1
        time.sleep(0.1)
    time.sleep(0.05)
time.sleep(2)
final = int(zk.get("/upgrade/watched")[0].decode())
print(json.dumps({
    "sessionStart": session, "sessionEnd": zk.client_id[0],
    "ephemeral": zk.exists("/upgrade/eph") is not None,
    "acked": acked, "failed": failed, "watchLast": seen[-1] if seen else None,
    "final": final, "longestStallMs": int(stall * 1000),
}))
zk.stop()
"#;

/// The spec: five members (three voters, two observers) on `FROM`, which
/// lists the 3.8 line's known data-loss bug as accepted.
fn spec() -> String {
    common::on_release(&example_spec(5).replace("    max: 5", "    max: 3"), FROM)
        + "  upgrade:\n    canaryFor: 5s\n"
}

/// Three voters on `FROM`, the roll-out halting after `timeout`, members
/// dead after 5 s of not serving, and no canary wait.
fn three_voters(timeout: &str) -> String {
    common::on_release(
        &example_spec(3).replace("memberDeadAfter: 60s", "memberDeadAfter: 5s"),
        FROM,
    ) + &format!("  upgrade:\n    canaryFor: 0s\n  rollout:\n    timeout: {timeout}\n")
}

/// A releases directory as `scripts/install-deps` makes one, with `FROM`
/// installed and `TO` broken: its jar is empty, so its JVM cannot find
/// ZooKeeper's main class.
fn releases_with_broken_target() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(
        std::path::Path::new(zkop_zk::jvm::RELEASES_DIR).join(FROM),
        dir.path().join(FROM),
    )
    .expect("symlink");
    let broken = dir.path().join(TO);
    std::fs::create_dir_all(broken.join("lib")).expect("lib");
    std::fs::create_dir_all(broken.join("conf")).expect("conf");
    std::fs::write(broken.join("lib").join(format!("zookeeper-{TO}.jar")), b"").expect("jar");
    dir
}

/// Every member on `version`, `voters` and `observers` settled, and the
/// roll-out begun at `since` finished.
fn rolled_onto(
    s: &StatusReply,
    version: &str,
    voters: usize,
    observers: usize,
    since: u64,
) -> bool {
    all_on_release(s, version)
        && settled(s, voters, observers)
        && !common::events_of(s, &["finish_rollout"], since).is_empty()
}

/// The kazoo client, started, once it holds its ephemeral znode.
fn start_client(hosts: &str) -> Child {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(hosts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    let stdout = child.stdout.as_mut().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready", "the client did not start");
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_from_3_8_to_3_9_restarts_observers_first_the_leader_last_and_keeps_the_session() {
    let _serial = SERIAL.lock().await;
    let mut c = LocalCluster::start(&spec(), "127.0.130.0/24").await;
    let before = c
        .wait_status(
            &format!("3 voters and 2 observers on {FROM}"),
            Duration::from_secs(120),
            |s| settled(s, 3, 2) && all_on_release(s, FROM),
        )
        .await;
    let mut client = start_client(&before.connect_string);
    let edited = common::now_ms();
    c.edit_spec(&format!("version: {FROM}"), &format!("version: {TO}"));
    let after = c
        .wait_status(
            &format!("every member on {TO}, the roll-out done"),
            Duration::from_secs(600),
            |s| rolled_onto(s, TO, 3, 2, edited),
        )
        .await;
    // One member at a time: observers first, then followers, the leader last.
    let roles: Vec<String> = common::events_of(&after, &["restart_member"], edited)
        .iter()
        .filter_map(|e| {
            let role = e.message.split_once('(')?.1.split_once(')')?.0;
            Some(role.to_string())
        })
        .collect();
    assert_eq!(
        roles,
        ["observer", "observer", "follower", "follower", "leader"],
        "{:#?}",
        after.events
    );
    assert_eq!(members(&after), members(&before), "no member was replaced");
    // The client kept its session, its ephemeral znode and its watch.
    drop(client.stdin.take());
    let out = client.wait_with_output().expect("the client's output");
    let seen: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(seen["sessionStart"], seen["sessionEnd"], "{seen}");
    assert_eq!(seen["ephemeral"], true, "{seen}");
    assert_eq!(
        seen["watchLast"], seen["final"],
        "the watch saw the last write: {seen}"
    );
    let acked: Vec<u64> = seen["acked"]
        .as_array()
        .expect("acked")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert!(acked.len() > 20, "too few writes got through: {seen}");
    // Every acknowledged write reads back.
    let zk = common::zk_client(&after.connect_string).await;
    let children = zk.list_children("/upgrade").await.expect("children");
    let missing: Vec<&u64> = acked
        .iter()
        .filter(|i| !children.contains(&format!("w-{i:06}")))
        .collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    eprintln!(
        "upgrade {FROM} -> {TO}: {} writes acknowledged, {} failed and retried, longest write stall {} ms",
        acked.len(),
        seen["failed"],
        seen["longestStallMs"]
    );
    c.stop().await;
}

/// Each refused change of release names `spec.zookeeper.version` and
/// restarts nothing: a release zkop does not know, one with a known
/// data-loss bug the spec does not accept (both refused with the edit), and
/// one no instance has installed (refused by the controller, naming them).
async fn refusals(c: &LocalCluster, before: &StatusReply) {
    let running = format!("version: {FROM}");
    for (version, says) in [
        ("3.9.7", "spec.zookeeper.version"),
        ("3.8.4", "ZOOKEEPER-4785"),
    ] {
        let at = common::now_ms();
        c.edit_spec(&running, &format!("version: {version}"));
        let s = c
            .wait_status(
                &format!("{version} refused"),
                Duration::from_secs(30),
                |s| !common::events_of(s, &["spec-refused"], at).is_empty(),
            )
            .await;
        let refused = &common::events_of(&s, &["spec-refused"], at)[0].message;
        assert!(
            refused.contains("spec.zookeeper.version") && refused.contains(says),
            "{version}: {refused}"
        );
        c.edit_spec(&format!("version: {version}"), &running);
    }
    let at = common::now_ms();
    c.edit_spec(&running, "version: 3.9.4");
    let s = c
        .wait_status("3.9.4 refused", Duration::from_secs(30), |s| {
            s.reason.contains("is not installed on")
        })
        .await;
    assert!(
        s.reason.starts_with(
            "spec.zookeeper.version: change of release refused: ZooKeeper 3.9.4 is not installed on"
        ) && before
            .members
            .iter()
            .all(|m| s.reason.contains(&m.instance.to_string())),
        "{}",
        s.reason
    );
    c.edit_spec("version: 3.9.4", &running);
    let s = c
        .wait_status(
            "back to the running release",
            Duration::from_secs(30),
            |s| !s.reason.contains("is not installed on"),
        )
        .await;
    assert!(
        common::events_of(&s, &["restart_member"], at).is_empty(),
        "nothing restarted: {:#?}",
        s.events
    );
}

/// While halted: one member restarted, the other two serve on `FROM` and
/// take a write (quorum kept), and, watched for three times
/// `memberDeadAfter`, the halted member is never replaced (a new instance
/// would run `TO` too) and nothing else restarts.
async fn while_halted(c: &LocalCluster, before: &StatusReply, halted: &StatusReply, edited: u64) {
    let restarted = common::events_of(halted, &["restart_member"], edited);
    assert_eq!(restarted.len(), 1, "{restarted:#?}");
    let serving_on_from = |s: &StatusReply| {
        s.members
            .iter()
            .filter(|m| m.zookeeper_version.as_deref() == Some(FROM) && m.healthy)
            .count()
    };
    assert_eq!(serving_on_from(halted), 2, "{:#?}", halted.members);
    let zk = common::zk_client(&halted.connect_string).await;
    zk.create(
        "/written-while-halted",
        b"v",
        &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
    )
    .await
    .expect("a write with one member halted");
    let watch_until = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < watch_until {
        let Some(s) = c.status().await else {
            continue;
        };
        assert_eq!(
            members(&s),
            members(before),
            "no member replaced: {:#?}",
            s.events
        );
        assert!(
            common::events_of(&s, &["restart_member"], edited).len() == 1,
            "nothing else restarted: {:#?}",
            s.events
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_cannot_start_halts_after_the_first_member_and_setting_it_back_rolls_it_back()
 {
    let _serial = SERIAL.lock().await;
    let releases = releases_with_broken_target();
    let root = releases.path().display().to_string();
    let mut c = LocalCluster::start_with_env(
        &three_voters("20s"),
        "127.0.131.0/24",
        &[("ZKOP_ZOOKEEPER_RELEASES", &root)],
    )
    .await;
    let before = c
        .wait_status(
            &format!("3 voters on {FROM}"),
            Duration::from_secs(120),
            |s| settled(s, 3, 0) && all_on_release(s, FROM),
        )
        .await;
    refusals(&c, &before).await;
    let edited = common::now_ms();
    c.edit_spec(&format!("version: {FROM}"), &format!("version: {TO}"));
    let halted = c
        .wait_status("the upgrade halted", Duration::from_secs(180), |s| {
            s.reason.starts_with("roll-out halted")
        })
        .await;
    assert_eq!(halted.phase, "Degraded", "{}", halted.reason);
    assert!(
        halted.reason.starts_with(&format!(
            "roll-out halted (upgrading {FROM} -> {TO}: 1 of 3 members)"
        )) && halted.reason.contains("Could not find or load main class"),
        "the halt says where and why, with the server's last log lines: {}",
        halted.reason
    );
    let metrics = c.metrics().await;
    for line in [
        "zkop_upgrade_halted{cluster=\"local-3\"} 1",
        "zkop_upgrade_members_behind{cluster=\"local-3\"} 3",
        &format!("zkop_upgrade_target_info{{cluster=\"local-3\",version=\"{TO}\"}} 1"),
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    while_halted(&c, &before, &halted, edited).await;
    // Back to FROM: the halted member restarts on it and serves.
    let reverted = common::now_ms();
    c.edit_spec(&format!("version: {TO}"), &format!("version: {FROM}"));
    let back = c
        .wait_status(
            &format!("every member back on {FROM}"),
            Duration::from_secs(180),
            |s| settled(s, 3, 0) && all_on_release(s, FROM) && s.phase == "Running",
        )
        .await;
    assert_eq!(
        members(&back),
        members(&before),
        "no member was replaced: {:#?}",
        back.events
    );
    let rolled_back = common::events_of(&back, &["restart_member"], reverted);
    assert_eq!(
        rolled_back.len(),
        1,
        "only the halted member: {rolled_back:#?}"
    );
    let metrics = c.metrics().await;
    assert!(
        metrics.contains("zkop_upgrade_halted{cluster=\"local-3\"} 0")
            && metrics.contains("zkop_upgrade_members_behind{cluster=\"local-3\"} 0"),
        "{metrics}"
    );
    let zk = common::zk_client(&back.connect_string).await;
    assert!(
        zk.check_stat("/written-while-halted")
            .await
            .expect("stat")
            .is_some()
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_downgrade_from_3_9_to_3_8_after_a_completed_upgrade_keeps_the_data_written_on_3_9() {
    let _serial = SERIAL.lock().await;
    // On TO from the start, snapshots every 50 transactions: the members'
    // data directories hold snapshots and logs ZooKeeper TO wrote.
    let spec = three_voters("2m")
        .replace(&format!("version: {FROM}"), &format!("version: {TO}"))
        .replace(
            "      maxClientCnxns: \"100\"\n",
            "      maxClientCnxns: \"100\"\n      snapCount: \"50\"\n",
        );
    let mut c = LocalCluster::start(&spec, "127.0.132.0/24").await;
    let before = c
        .wait_status(
            &format!("3 voters on {TO}"),
            Duration::from_secs(120),
            |s| settled(s, 3, 0) && all_on_release(s, TO),
        )
        .await;
    let zk = common::zk_client(&before.connect_string).await;
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    zk.create("/on-3.9", b"", &options).await.expect("parent");
    for i in 0..300 {
        zk.create(
            &format!("/on-3.9/n-{i:04}"),
            format!("v{i}").as_bytes(),
            &options,
        )
        .await
        .expect("a write on 3.9");
    }
    drop(zk);
    let edited = common::now_ms();
    c.edit_spec(&format!("version: {TO}"), &format!("version: {FROM}"));
    let after = c
        .wait_status(
            &format!("every member back on {FROM}"),
            Duration::from_secs(300),
            |s| rolled_onto(s, FROM, 3, 0, edited),
        )
        .await;
    assert_eq!(members(&after), members(&before), "no member was replaced");
    assert_eq!(
        common::events_of(&after, &["restart_member"], edited).len(),
        3,
        "{:#?}",
        after.events
    );
    // Every write made on 3.9 reads back on 3.8, through each member.
    for m in &after.members {
        let zk = common::zk_client(&format!("{}:{}", m.address, m.client_port)).await;
        zk.sync("/on-3.9").await.expect("sync");
        let children = zk.list_children("/on-3.9").await.expect("children");
        assert_eq!(children.len(), 300, "member {}", m.id);
        let (data, _) = zk.get_data("/on-3.9/n-0299").await.expect("the last write");
        assert_eq!(data, b"v299", "member {}", m.id);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_sandbox_rolls_down_to_3_8_and_back_up_through_zkop_run() {
    let _serial = SERIAL.lock().await;
    let (c, before) = common::aws::AwsCluster::start_settled(3, "127.0.133.0/24").await;
    // Every agent reports the releases installed on its instance.
    for m in &before.members {
        assert_eq!(
            m.installed_releases.as_deref(),
            Some([FROM.to_string(), TO.to_string()].as_slice()),
            "member {}",
            m.id
        );
    }
    assert!(all_on_release(&before, TO), "{:#?}", before.members);
    let down = common::now_ms();
    c.edit_spec(
        "  zookeeper:\n",
        &format!(
            "  upgrade:\n    canaryFor: 5s\n  zookeeper:\n    version: {FROM}\n    acceptKnownIssues: [ZOOKEEPER-4394]\n"
        ),
    );
    let on_from = c
        .api()
        .wait_status(
            &format!("every member on {FROM}"),
            Duration::from_secs(300),
            |s| rolled_onto(s, FROM, 3, 0, down),
            || c.log_tail(),
        )
        .await;
    let up = common::now_ms();
    c.edit_spec(&format!("version: {FROM}"), &format!("version: {TO}"));
    let on_to = c
        .api()
        .wait_status(
            &format!("every member back on {TO}"),
            Duration::from_secs(300),
            |s| rolled_onto(s, TO, 3, 0, up),
            || c.log_tail(),
        )
        .await;
    assert_eq!(
        members(&on_from),
        members(&before),
        "no instance was replaced"
    );
    assert_eq!(
        members(&on_to),
        members(&before),
        "no instance was replaced"
    );
    assert_eq!(common::events_of(&on_to, &["restart_member"], up).len(), 3);
}

/// `zkop bench --upgrade`: zkop and the hand run each upgrade three voters
/// from `FROM` to `TO` while a client writes; its session never expires on
/// either side. (The figures are for people: docs/performance.md.)
#[tokio::test(flavor = "multi_thread")]
async fn the_upgrade_bench_upgrades_on_both_sides_and_no_session_expires() {
    let _serial = SERIAL.lock().await;
    let args = [
        "bench",
        "--upgrade",
        "--json",
        "--network",
        "127.0.134.0/24",
        "--hand-network",
        "127.0.135.0/24",
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let rows: Vec<serde_json::Value> = common::zkop_json(&args).await;
    eprintln!("upgrade bench: {rows:?}");
    for side in ["zkop", "hand"] {
        let row = rows
            .iter()
            .find(|r| r["side"] == side)
            .unwrap_or_else(|| panic!("no {side} row: {rows:?}"));
        assert!(row["seconds"].as_f64().is_some_and(|s| s > 0.0), "{row}");
        assert!(row["writes"].as_u64().is_some_and(|w| w > 0), "{row}");
        assert_eq!(row["sessionsExpired"], 0, "{row}");
    }
}

/// Cuts one record out of the middle of the newest log in `version2` (the
/// rest moved up, zeros after, the file as long as before): a hole, as
/// ZOOKEEPER-4394 leaves in a 3.8 follower's log. Returns the zxid cut.
fn cut_a_record(version2: &std::path::Path) -> String {
    let log = std::fs::read_dir(version2)
        .expect("version-2")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log."))
        })
        .max_by_key(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            zkop_spec::txnlog::zxid_of_file_name(&name).map(|(_, z)| z)
        })
        .expect("a log");
    let mut bytes = std::fs::read(&log).expect("the log");
    let records = zkop_spec::txnlog::records(&bytes).expect("records");
    assert!(records.len() > 100, "{} records", records.len());
    let cut = &records[records.len() / 2];
    let len = bytes.len();
    bytes.drain(cut.span.clone());
    bytes.resize(len, 0);
    std::fs::write(&log, &bytes).expect("writing the log");
    format!("{:#x}", cut.zxid.as_u64())
}

/// Seed 2612 of the fault suite met this mid-upgrade: a 3.8.6 follower's log
/// had a hole, and 3.9.5 refused it at every start. A follower whose log
/// has a hole is named in status and replaced well inside rollout.timeout,
/// and every write reads back through every member.
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_whose_log_has_a_hole_is_named_and_replaced_keeping_every_write() {
    let _serial = SERIAL.lock().await;
    let spec = three_voters("10m").replace(&format!("version: {FROM}"), &format!("version: {TO}"));
    let mut c = LocalCluster::start(&spec, "127.0.140.0/24").await;
    let before = c
        .wait_status("3 voters", Duration::from_secs(120), |s| {
            settled(s, 3, 0) && all_on_release(s, TO)
        })
        .await;
    let zk = common::zk_client(&before.connect_string).await;
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    zk.create("/hole", b"", &options).await.expect("parent");
    for i in 0..200 {
        let path = format!("/hole/n-{i:04}");
        zk.create(&path, b"v", &options).await.expect("a write");
    }
    drop(zk);
    let victim = common::follower(&before);
    // Its agent paused, so that it does not start the server again before
    // the log is cut; its server killed.
    let agent = c.agent_pid(&victim.instance).expect("agent");
    let server = c.server_pid(&victim.instance).expect("server");
    let signal = |pid: u32, sig| {
        // SAFETY: kill(2) on this cluster's own agent and server.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    };
    signal(agent, libc::SIGSTOP);
    signal(server, libc::SIGKILL);
    common::wait_until("the server gone", Duration::from_secs(30), || async {
        (!common::alive(server)).then_some(())
    })
    .await;
    let version2 = c.instance_dir(&victim.instance).join("data/version-2");
    let cut = cut_a_record(&version2);
    eprintln!("cut {cut} from {}'s log", victim.instance);
    signal(agent, libc::SIGCONT);
    let named = c
        .wait_status("the hole named", Duration::from_secs(90), |s| {
            s.members.iter().any(|m| {
                m.id == victim.id
                    && m.problem
                        .as_deref()
                        .is_some_and(|p| p.contains("its transaction log has a hole"))
            })
        })
        .await;
    eprintln!(
        "{:?}",
        named.members.iter().map(|m| &m.problem).collect::<Vec<_>>()
    );
    let after = c
        .wait_status("a new member in its place", Duration::from_secs(180), |s| {
            settled(s, 3, 0) && !s.members.iter().any(|m| m.instance == victim.instance)
        })
        .await;
    for m in &after.members {
        let zk = common::zk_client(&format!("{}:{}", m.address, m.client_port)).await;
        zk.sync("/hole").await.expect("sync");
        let children = zk.list_children("/hole").await.expect("children");
        assert_eq!(children.len(), 200, "member {}", m.id);
    }
    c.stop().await;
}
