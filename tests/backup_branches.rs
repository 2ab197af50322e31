//! Backup branches (issue 24, finding 2), end to end on real ZooKeeper
//! servers: the reviewer's sequence. Follower C is paused; the leader and the
//! shipper commit and ship writes C never gets; they are killed; recovery
//! forces C alone and the ensemble grows back. C's shipper must not append
//! its new epoch to the point holding transactions its history never had:
//! it starts a new point recording the branch it left, `zkop backup list`
//! shows that branch, the restore drill checks ZooKeeper's own digest, and a
//! cluster restored to the newest point holds exactly the live tree.

use std::collections::BTreeSet;
use std::time::Duration;

use zkop_spec::backup::manifest;
use zkop_spec::zk::Zxid;
use zkop_tests::common::backup::{
    children, create_tree, dir_store, list_table, spec_with_backup, verify, wait_backed_up,
};
use zkop_tests::common::{self, LocalCluster, SERIAL, example_spec, settled, zk_client};
use zookeeper_client::{Acls, Client, CreateMode};

/// The znode names under `path` (none when it is missing).
async fn names(client: &Client, path: &str) -> BTreeSet<String> {
    client
        .list_children(path)
        .await
        .map(|c| c.into_iter().collect())
        .unwrap_or_default()
}

/// Writes `n` znodes of 40 KB under `/lost` (so that far more than a
/// paused follower's socket buffer holds is proposed to it); the last
/// one's zxid.
async fn write_lost(client: &Client, n: usize) -> Zxid {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/lost", b"", &options).await.unwrap();
    let value = vec![b'x'; 40 * 1024];
    let mut last = 0;
    for i in 0..n {
        let (stat, _) = client
            .create(&format!("/lost/w{i:04}"), &value, &options)
            .await
            .unwrap();
        last = stat.czxid;
    }
    Zxid::from_u64(last as u64)
}

/// Sends `signal` to a server this test's cluster started.
fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a server process this test's cluster started.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_branches_a_forced_recovery_never_splices_and_the_newest_point_is_the_live_tree() {
    let _serial = SERIAL.lock().await;
    let backup = tempfile::tempdir().unwrap();
    let spec = spec_with_backup(backup.path(), "1s");
    let (mut c, s) = LocalCluster::start_settled(&spec, "127.0.120.0/24", 3).await;
    let client = zk_client(&LocalCluster::endpoints(&s)).await;
    let before = create_tree(&client, "/before", 5).await;
    wait_backed_up(backup.path(), Zxid::from_u64(before.czxid as u64)).await;
    let shipping = c
        .wait_status("a shipper", Duration::from_secs(60), |s| {
            s.backup.as_ref().is_some_and(|b| b.shipper.is_some())
        })
        .await;
    let shipper = shipping.backup.as_ref().and_then(|b| b.shipper).unwrap();
    // C: a follower that does not ship.
    let survivor = shipping
        .members
        .iter()
        .find(|m| m.role == "follower" && m.id != shipper)
        .unwrap_or_else(|| panic!("no follower but the shipper: {:#?}", shipping.members))
        .clone();
    // Through the leader alone: never the paused server.
    drop(client);
    let client = zk_client(&common::endpoint(&common::leader(&shipping))).await;
    let pid = c.server_pid(&survivor.instance.to_string()).unwrap();
    signal(pid, libc::SIGSTOP);
    let lost_last = write_lost(&client, 200).await;
    wait_backed_up(backup.path(), lost_last).await;
    drop(client);
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for m in shipping.members.iter().filter(|m| m.id != survivor.id) {
        c.kill_instance(&m.instance.to_string());
    }
    signal(pid, libc::SIGCONT);
    eprintln!(
        "backup_branches: {} paused, the others killed after shipping up to {lost_last}",
        survivor.id
    );

    let after = c
        .wait_status("recovered and grown back", Duration::from_secs(180), |s| {
            s.events.iter().any(|e| e.kind == "force_config") && settled(s, 3, 0)
        })
        .await;
    let client = zk_client(&LocalCluster::endpoints(&after)).await;
    let newest = create_tree(&client, "/after", 5).await;
    let newest = Zxid::from_u64(newest.czxid as u64);
    assert!(newest.epoch > lost_last.epoch, "{newest} after {lost_last}");
    wait_backed_up(backup.path(), newest).await;
    client.sync("/").await.unwrap();
    let live_lost = names(&client, "/lost").await;
    assert!(
        live_lost.len() < 200,
        "the survivor holds every write it was paused through: no branch to test"
    );
    drop(client);
    eprintln!(
        "backup_branches: the survivor held {} of the 200 writes it was paused through",
        live_lost.len()
    );

    assert_branch_recorded(backup.path(), lost_last, killed_ms).await;
    let table = list_table(backup.path());
    assert!(
        table.contains("BRANCH") && table.contains(&format!("up to {lost_last}")),
        "{table}"
    );
    eprintln!("{table}");

    // The drill restores a point and checks ZooKeeper's digest against the
    // one the live tree published.
    let out = verify(backup.path(), "127.0.120.250");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.stop().await;

    restored_holds_the_live_tree(backup.path(), &live_lost).await;
}

/// The old branch's points hold transactions the live history never had:
/// no point started after the kill (at `killed_ms`) holds them, no point
/// holds them and the new epoch both (a splice), and a new point records
/// that it left that branch.
async fn assert_branch_recorded(backup: &std::path::Path, lost_last: Zxid, killed_ms: u64) {
    let points = dir_store(backup).await.points().await.unwrap();
    let lost = |p: &&manifest::PointManifest| {
        p.segments
            .iter()
            .any(|s| s.first.epoch == lost_last.epoch && s.last >= lost_last)
    };
    for p in points.iter().filter(lost) {
        assert!(
            p.created_ms < killed_ms && p.segments.iter().all(|s| s.last.epoch == lost_last.epoch),
            "point {} splices the lost branch's segments: {points:#?}",
            p.key()
        );
    }
    // Each new point that left the branch (a handover between shippers may
    // start two) says which and up to where.
    let branched: Vec<_> = points.iter().filter_map(|p| p.diverged.as_ref()).collect();
    assert!(!branched.is_empty(), "{points:#?}");
    for d in branched {
        assert_eq!(d.upto, lost_last, "{d:?}");
    }
}

/// A cluster restored from `backup` to its newest point holds exactly the
/// live tree: what was there before, what was written after the recovery,
/// and of the lost writes exactly those the survivor held.
async fn restored_holds_the_live_tree(backup: &std::path::Path, live_lost: &BTreeSet<String>) {
    let restored = format!(
        "{}  bootstrap:\n    restore:\n      from:\n        dir: {}\n",
        example_spec(3).replace("name: local-3", "name: restored"),
        backup.display()
    );
    let (mut r, rs) = LocalCluster::start_settled(&restored, "127.0.121.0/24", 3).await;
    let client = zk_client(&LocalCluster::endpoints(&rs)).await;
    assert_eq!(children(&client, "/before").await, Some(5));
    assert_eq!(children(&client, "/after").await, Some(5));
    assert_eq!(&names(&client, "/lost").await, live_lost);
    drop(client);
    r.stop().await;
}
