//! The files a backup ships, loaded and written by a real ZooKeeper 3.8: a
//! snapshot and a transaction-log segment cut by `zkop_spec::txnlog::segment`
//! at a zxid, and the snapshot ZooKeeper writes of them, whose trailer
//! `snapshot_trailer_zxid` reads. A
//! restore to a point needs exactly this (ZooKeeper's own `TxnLogToolkit
//! --chop` does the same by hand).

use std::path::Path;
use std::time::Duration;

use zkop_spec::txnlog::{segment, snapshot_trailer_zxid};
use zkop_spec::zk::Zxid;
use zkop_tests::common::{self, SERIAL, repo_root, require_zookeeper, wait_until};
use zkop_zk::jvm::JvmCommand;

/// A standalone server on `data`, listening on `address:2181`.
async fn start_standalone(dir: &Path, address: &str) -> tokio::process::Child {
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=500\ndataDir={}\nclientPort=2181\nclientPortAddress={address}\n\
             standaloneEnabled=true\nadmin.enableServer=false\n4lw.commands.whitelist=srvr\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let jvm = JvmCommand {
        java: "java".into(),
        classpath: common::ZOOKEEPER_CLASSPATH.into(),
        heap_mb: 128,
        jvm_flags: vec!["-XX:+UseSerialGC".into(), "-XX:TieredStopAtLevel=1".into()],
        super_digest: "super:unused".into(),
    };
    let log = std::fs::File::create(dir.join("zookeeper.out")).unwrap();
    jvm.command(&cfg, dir, log).unwrap().spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_segment_cut_at_a_zxid_restores_exactly_to_it() {
    require_zookeeper();
    let _serial = SERIAL.lock().await;
    let fixture = repo_root().join("spec/tests/fixtures/zk-3.8-data/version-2");
    let log = std::fs::read(fixture.join("log.100000001")).unwrap();
    let first: Zxid = "0x100000001".parse().unwrap();
    for (point, address) in [("0x100000010", "127.0.72.1"), ("0x100000029", "127.0.72.2")] {
        let point: Zxid = point.parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let version2 = dir.path().join("data/version-2");
        std::fs::create_dir_all(&version2).unwrap();
        std::fs::copy(fixture.join("snapshot.0"), version2.join("snapshot.0")).unwrap();
        let cut = segment(&log, first, point).unwrap().unwrap();
        std::fs::write(version2.join("log.100000001"), cut).unwrap();

        let _server = start_standalone(dir.path(), address).await;
        let endpoint = format!("{address}:2181");
        let out = dir.path().join("zookeeper.out");
        let loaded = wait_until(
            &format!("the server on the segment cut at {point} to serve"),
            Duration::from_secs(60),
            || async {
                let p = zkop_zk::probe::probe(&endpoint).await.ok()?;
                p.serving.then_some(p.zxid?)
            },
        )
        .await;
        assert_eq!(
            loaded,
            point,
            "ZooKeeper loaded up to {loaded}, not the cut at {point}\n{}",
            zkop_tests::common::tail(&out)
        );
        // Loading, ZooKeeper wrote a snapshot of what it loaded: complete,
        // and its trailer names the point.
        let written = version2.join(format!("snapshot.{:x}", point.as_u64()));
        let trailer = wait_until(
            &format!("{} written whole", written.display()),
            Duration::from_secs(30),
            || async { snapshot_trailer_zxid(&std::fs::read(&written).ok()?).ok() },
        )
        .await;
        assert_eq!(trailer, point);
    }
}
