//! What clients see, on a local fleet of real ZooKeeper servers: the
//! connect string in `zkop status` (table and JSON), `zkop connect-string`
//! and the state directory's `connect-string` file, checked with an
//! independent client (kazoo, Python's ZooKeeper client), and following a
//! replacement.

use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_tests::common::{self, LocalCluster, SERIAL, example_spec, settled, wait_until};

/// Creates `path` with `value` through kazoo connected with `hosts`, and
/// reads it back: kazoo must see exactly what it wrote.
fn kazoo_writes_and_reads(hosts: &str, path: &str, value: &str) {
    let script = r#"
import sys
from kazoo.client import KazooClient
hosts, path, value = sys.argv[1:4]
zk = KazooClient(hosts=hosts, timeout=15)
zk.start(timeout=30)
zk.create(path, value.encode())
data, _ = zk.get(path)
zk.stop()
print(data.decode())
"#;
    assert_eq!(common::python(script, &[hosts, path, value]), value);
}

/// The connect string `s` names: every serving member, `address:port`.
fn assert_names_every_serving_member(s: &StatusReply) {
    let mut want: Vec<_> = s.members.iter().collect();
    want.sort_by_key(|m| m.id);
    let want: Vec<String> = want.iter().map(|m| common::endpoint(m)).collect();
    assert_eq!(s.connect_string, want.join(","), "{s:?}");
}

/// `zkop connect-string`, the table's line and the file all give `want`.
async fn everywhere(c: &LocalCluster, want: &str) {
    let out = c.zkop(&["connect-string"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    let table = String::from_utf8_lossy(&c.zkop(&["status"]).stdout).into_owned();
    assert!(
        table.contains(&format!("connect string: {want}\n")),
        "{table}"
    );
    assert_eq!(c.status_cli().connect_string, want);
    let file = c.state_dir().join("connect-string");
    wait_until(
        "the connect-string file to name the serving members",
        Duration::from_secs(10),
        || async {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|f| f.trim() == want)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_string_is_wherever_clients_look_and_follows_a_replacement() {
    let _serial = SERIAL.lock().await;
    let (mut c, s) = LocalCluster::start_settled(&example_spec(3), "127.0.80.0/24", 3).await;
    assert_names_every_serving_member(&s);
    everywhere(&c, &s.connect_string).await;
    kazoo_writes_and_reads(&s.connect_string, "/before", "one");

    // A follower replaced: the string names its successor, not it.
    let old = common::follower(&s);
    let out = c.zkop(&["replace", &old.instance.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = c
        .wait_status(
            "the follower replaced and the connect string following",
            Duration::from_secs(120),
            |s| {
                settled(s, 3, 0)
                    && !s.members.iter().any(|m| m.instance == old.instance)
                    && s.events.iter().any(|e| {
                        e.kind == "connect_string" && e.message.ends_with(&s.connect_string)
                    })
            },
        )
        .await;
    assert_names_every_serving_member(&after);
    assert!(
        !after.connect_string.contains(&common::endpoint(&old)),
        "{} still names the replaced {}",
        after.connect_string,
        common::endpoint(&old)
    );
    everywhere(&c, &after.connect_string).await;
    kazoo_writes_and_reads(&after.connect_string, "/after", "two");
    c.stop().await;
}
