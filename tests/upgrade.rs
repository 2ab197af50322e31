//! Changing ZooKeeper's release on a live ensemble (`spec.zookeeper.version`)
//! on a local fleet of real servers, from the installed 3.8 release to
//! 3.9.5, while an independent client (kazoo) writes, holds an ephemeral
//! znode and watches a znode through it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_tests::common::{self, LocalCluster, SERIAL, example_spec, settled};

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
    example_spec(5).replace("    max: 5", "    max: 3").replace(
        "  zookeeper:\n",
        &format!("  zookeeper:\n    version: {FROM}\n    acceptKnownIssues: [ZOOKEEPER-4394]\n"),
    ) + "  upgrade:\n    canaryFor: 5s\n"
}

/// Every member's server says (`srvr`) it runs `version`.
fn all_on(s: &StatusReply, version: &str) -> bool {
    s.members
        .iter()
        .all(|m| m.zookeeper_version.as_deref() == Some(version))
}

/// Member id to instance.
fn members(s: &StatusReply) -> Vec<(u64, String)> {
    let mut m: Vec<(u64, String)> = s
        .members
        .iter()
        .map(|m| (m.id.0, m.instance.to_string()))
        .collect();
    m.sort();
    m
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
            |s| settled(s, 3, 2) && all_on(s, FROM),
        )
        .await;
    let mut client = start_client(&before.connect_string);
    let edited = common::now_ms();
    c.edit_spec(&format!("version: {FROM}"), &format!("version: {TO}"));
    let after = c
        .wait_status(
            &format!("every member on {TO}, the roll-out done"),
            Duration::from_secs(600),
            |s| {
                all_on(s, TO)
                    && settled(s, 3, 2)
                    && !common::events_of(s, &["finish_rollout"], edited).is_empty()
            },
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
