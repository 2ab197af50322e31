//! The shipper's upkeep on a local fleet of real ZooKeeper servers: offline
//! snapshots (a scratch server on a restored copy writes one exactly at the
//! backup's last transaction) and restore drills every `verifyEvery` that
//! check ZooKeeper's own tree digest, reported in status, events and metrics.

use std::time::Duration;

use zkop_runtime::backup::Store;
use zkop_runtime::backup::scratch::ScratchServer;
use zkop_spec::backup::manifest::{self, PointManifest};
use zkop_spec::wire::StatusReply;
use zkop_spec::zk::Zxid;
use zkop_tests::common::backup::{
    children, copy_dir, create_tree, dir_store, list_table, spec_with_backup, verify,
    wait_backed_up,
};
use zkop_tests::common::{self, LocalCluster, SERIAL, wait_until, zk_client};

/// Where the tests' own scratch servers listen.
const SCRATCH: &str = "127.0.79.250";

/// A point whose snapshot a scratch server wrote exactly at `last` or later
/// (ZooKeeper's own are fuzzy and come every snapCount transactions).
async fn offline_point(store: &Store, last: Zxid) -> PointManifest {
    wait_until(
        "an offline snapshot at the last write",
        Duration::from_secs(90),
        || async {
            store.points().await.ok()?.into_iter().find(|p| {
                p.snapshot.offline
                    && p.snapshot.zxid >= last
                    && p.snapshot.zxid == p.snapshot.trailer_zxid
            })
        },
    )
    .await
}

/// Waits for the shipper's own drill to have restored to a digest ZooKeeper
/// published and got the same digest back, and checks status, events,
/// `zkop status` and metrics say so.
async fn drilled_with_a_digest(c: &LocalCluster) -> StatusReply {
    let s = c
        .wait_status(
            "a drill that checked a tree digest",
            Duration::from_secs(120),
            |s| {
                s.backup
                    .as_ref()
                    .and_then(|b| b.last_drill.as_ref())
                    .is_some_and(|d| d.ok && d.digest.is_some())
                    // The event comes with the controller's next pass.
                    && s.events.iter().any(|e| e.kind == "backup_drill_passed")
            },
        )
        .await;
    let b = s.backup.as_ref().unwrap();
    let drill = b.last_drill.as_ref().unwrap();
    eprintln!("drill: {}", drill.detail);
    // Issue 24, finding 4: the shipper's scratch server, which serves the
    // whole tree, listened on loopback only, not on its member's address.
    assert!(
        drill.detail.contains("scratch ZooKeeper, on 127.0.0.1:"),
        "{}",
        drill.detail
    );
    assert_eq!(b.last_good_drill_ms, Some(drill.at_ms));
    assert!(
        drill.zxid.is_some_and(|z| z.counter % 128 == 0),
        "{drill:?}"
    );
    let table = String::from_utf8_lossy(&c.zkop(&["status"]).stdout).into_owned();
    assert!(
        table.contains("restore drill at") && table.contains("passed"),
        "{table}"
    );
    let metrics = c.metrics().await;
    assert!(
        metrics.contains("zkop_backup_last_drill_ok{cluster=\"local-3\"} 1"),
        "{metrics}"
    );
    s
}

/// The newest point restores on its own into a server that serves every
/// one of `n` children of `/t`.
async fn newest_point_serves(store: &Store, n: usize) {
    let java = common::java_args();
    let newest = manifest::newest(&store.points().await.unwrap()).unwrap();
    let scratch = ScratchServer::restore(store, newest, &java, SCRATCH)
        .await
        .unwrap();
    let restored = zk_client(scratch.endpoint()).await;
    assert_eq!(children(&restored, "/t").await, Some(n));
    drop(restored);
    // Nothing but its own loopback address reaches it.
    let port = scratch.endpoint().rsplit(':').next().unwrap();
    for other in ["127.0.0.1", "127.0.79.251"] {
        let refused = tokio::net::TcpStream::connect(format!("{other}:{port}")).await;
        assert!(refused.is_err(), "the scratch server answered on {other}");
    }
    scratch.stop().await;
    // Never on a routable address.
    let refused = ScratchServer::restore(store, newest, &java, "10.1.2.3").await;
    assert!(
        refused
            .as_ref()
            .err()
            .is_some_and(|e| e.contains("loopback")),
        "{:?}",
        refused.map(|s| s.endpoint().to_string())
    );
}

/// A copy of `backup` whose checked digest is wrong fails its drill, saying so.
async fn a_wrong_digest_fails_the_drill(backup: &std::path::Path) {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(backup, copy.path());
    let store = dir_store(copy.path()).await;
    let mut points = store.points().await.unwrap();
    let checked = manifest::digest_to_check(&points).unwrap().zxid;
    for p in &mut points {
        for d in p.digests.iter_mut().filter(|d| d.zxid == checked) {
            d.digest = "12345".into();
        }
        store.put_point(p).await.unwrap();
    }
    let out = verify(copy.path(), SCRATCH);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong digest passed the drill");
    assert!(
        stderr.contains("digest") && stderr.contains("12345"),
        "{stderr}"
    );
    eprintln!("drill with a wrong digest: {}", stderr.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipper_makes_exact_offline_snapshots_and_drills_the_backup_against_zookeeper_s_tree_digest()
 {
    let _serial = SERIAL.lock().await;
    let backup = tempfile::tempdir().unwrap();
    let spec = spec_with_backup(backup.path(), "1s").replace(
        "recoveryPoint: 1s",
        "recoveryPoint: 1s\n    snapshotEvery: 4s\n    verifyEvery: 6s",
    );
    let (mut c, s) = LocalCluster::start_settled(&spec, "127.0.79.0/24", 3).await;
    let client = zk_client(&LocalCluster::endpoints(&s)).await;
    // 300 transactions: ZooKeeper publishes a tree digest every 128 zxids.
    let last = create_tree(&client, "/t", 300).await;
    drop(client);
    let last = Zxid::from_u64(last.czxid as u64);
    wait_backed_up(backup.path(), last).await;
    let store = dir_store(backup.path()).await;
    let offline = offline_point(&store, last).await;
    eprintln!("offline snapshot: {}", offline.snapshot.object.key);
    let table = list_table(backup.path());
    assert!(
        table.contains("SNAPSHOT") && table.contains("offline"),
        "{table}"
    );
    drilled_with_a_digest(&c).await;
    c.stop().await;
    newest_point_serves(&store, 300).await;
    a_wrong_digest_fails_the_drill(backup.path()).await;
}
