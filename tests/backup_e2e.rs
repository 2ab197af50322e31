//! Backups end to end on a local fleet of real ZooKeeper servers: a total
//! loss restored from the cluster's own backup with every write older than
//! the recovery point, and new clusters restored to a point in time (a zxid,
//! a time) from another's backup.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use zkop_runtime::backup::Store;
use zkop_spec::backup::manifest;
use zkop_spec::backup::{BackupTarget, format_time};
use zkop_spec::wire::StatusReply;
use zkop_spec::zk::Zxid;
use zkop_tests::common::backup::{
    children, copy_dir, create_tree, list_table, spec_with_backup, verify, wait_backed_up,
    write_and_wait_backed_up,
};
use zkop_tests::common::{
    self, LocalCluster, SERIAL, assert_zookeeper_agrees, example_spec, settled, zk_client,
};

/// Waits for the ensemble restored after a total loss of the members on
/// `old`, and checks the events say so.
async fn restored_after_total_loss(c: &LocalCluster, old: &BTreeSet<String>) -> StatusReply {
    let after = c
        .wait_status(
            "an ensemble restored from the backup",
            Duration::from_secs(180),
            |s| settled(s, 3, 0) && s.events.iter().any(|e| e.kind == "discard_ensemble"),
        )
        .await;
    let discard = after
        .events
        .iter()
        .position(|e| e.kind == "discard_ensemble")
        .unwrap();
    assert!(
        after.events[discard]
            .message
            .contains("healing.onTotalLoss: restore"),
        "{}",
        after.events[discard].message
    );
    assert!(
        after.events[discard..]
            .iter()
            .any(|e| e.kind == "bootstrap" && e.message.contains("restored from the backup")),
        "{:#?}",
        after.events
    );
    assert!(
        after
            .members
            .iter()
            .all(|m| !old.contains(m.instance.as_str()))
    );
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_loss_with_on_total_loss_restore_keeps_every_write_older_than_the_recovery_point() {
    let _serial = SERIAL.lock().await;
    let backup = tempfile::tempdir().unwrap();
    let recovery_point = Duration::from_secs(2);
    let spec = spec_with_backup(backup.path(), "2s");
    let (c, before) = LocalCluster::start_settled(&spec, "127.0.73.0/24", 3).await;
    let hosts = LocalCluster::endpoints(&before);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(common::write_until_timed(hosts.clone(), stopped));
    let client = zk_client(&hosts).await;
    common::wait_writes_flowing(&client, 200).await;
    write_and_wait_backed_up(&client, "/marker", backup.path()).await;
    drop(client);
    // Writes keep coming up to the loss.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old: BTreeSet<String> = before
        .members
        .iter()
        .map(|m| m.instance.to_string())
        .collect();
    let loss = Instant::now();
    for m in &before.members {
        c.kill_instance(&m.instance);
    }
    let _ = stop.send(true);
    let acked = writer.await.unwrap();

    let after = restored_after_total_loss(&c, &old).await;
    assert_zookeeper_agrees(&after).await;
    let present = common::present_writes(&after).await;
    let client = zk_client(&LocalCluster::endpoints(&after)).await;
    assert_older_writes_kept(&acked, loss, recovery_point, &present, 200);
    assert!(client.check_stat("/marker").await.unwrap().is_some());
}

/// Every write acknowledged more than `recovery_point` before the `loss` is
/// `present` (at least `min` of them); prints how many of the later ones are not.
fn assert_older_writes_kept(
    acked: &[(String, Instant)],
    loss: Instant,
    recovery_point: Duration,
    present: &BTreeSet<String>,
    min: usize,
) {
    let (older, recent): (Vec<_>, Vec<_>) = acked
        .iter()
        .partition(|(_, at)| loss.duration_since(*at) > recovery_point);
    let lost_old: Vec<&String> = older
        .iter()
        .map(|(p, _)| p)
        .filter(|p| !present.contains(*p))
        .collect();
    let lost_recent = recent.iter().filter(|(p, _)| !present.contains(p)).count();
    eprintln!(
        "total loss restored: {} writes acknowledged, {} of them in the last {recovery_point:?} before the loss, {lost_recent} of those missing; {} older ones missing",
        acked.len(),
        recent.len(),
        lost_old.len()
    );
    assert!(
        older.len() >= min,
        "only {} writes before the recovery point",
        older.len()
    );
    assert!(
        lost_old.is_empty(),
        "writes older than the recovery point lost: {lost_old:?}"
    );
}

/// A cluster restored from `backup` at `to` (a `toZxid:`/`toTime:` line):
/// A and the subtree are there, B is not.
async fn restored_has_a_and_the_subtree_not_b(
    backup: &std::path::Path,
    to: &str,
    replicas: u32,
    network: &str,
) {
    let voters = if replicas == 1 {
        "    min: 1\n    max: 1"
    } else {
        "    min: 3\n    max: 5"
    };
    let spec = format!(
        "{}  bootstrap:\n    restore:\n      from:\n        dir: {}\n      {to}\n",
        example_spec(replicas)
            .replace("name: local-3", "name: restored")
            .replace("    min: 3\n    max: 5", voters),
        backup.display()
    );
    let (mut c, s) = LocalCluster::start_settled(&spec, network, replicas as usize).await;
    assert!(
        s.events
            .iter()
            .any(|e| e.kind == "bootstrap" && e.message.contains("restored from the backup")),
        "{:#?}",
        s.events
    );
    let client = zk_client(&LocalCluster::endpoints(&s)).await;
    assert_eq!(
        children(&client, "/a").await,
        Some(10),
        "writes A, restored to {to}"
    );
    assert_eq!(
        children(&client, "/sub").await,
        Some(10),
        "the subtree, restored to {to}"
    );
    assert_eq!(
        client.check_stat("/b").await.unwrap(),
        None,
        "writes B, restored to {to}"
    );
    drop(client);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_restores_another_s_backup_exactly_to_a_zxid_or_a_time() {
    let _serial = SERIAL.lock().await;
    let backup = tempfile::tempdir().unwrap();
    let spec = spec_with_backup(backup.path(), "1s");
    let (mut c, s) = LocalCluster::start_settled(&spec, "127.0.74.0/24", 3).await;
    let client = zk_client(&LocalCluster::endpoints(&s)).await;
    create_tree(&client, "/a", 10).await;
    let sub = create_tree(&client, "/sub", 10).await;
    // The delete's transactions are proposed after the subtree's last create.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..10 {
        client.delete(&format!("/sub/c{i}"), None).await.unwrap();
    }
    client.delete("/sub", None).await.unwrap();
    let b = create_tree(&client, "/b", 10).await;
    drop(client);
    wait_backed_up(backup.path(), Zxid::from_u64(b.czxid as u64)).await;
    let table = list_table(backup.path());
    assert!(
        table.contains("RESTORES EXACTLY TO") && table.contains("open"),
        "{table}"
    );
    eprintln!("{table}");
    c.stop().await;

    let point = Zxid::from_u64(sub.czxid as u64);
    restored_has_a_and_the_subtree_not_b(
        backup.path(),
        &format!("toZxid: \"{point}\""),
        3,
        "127.0.75.0/24",
    )
    .await;
    restored_has_a_and_the_subtree_not_b(
        backup.path(),
        &format!("toTime: \"{}\"", format_time(sub.ctime as u64)),
        1,
        "127.0.76.0/24",
    )
    .await;
}

/// Every transaction from the oldest point's snapshot to the newest shipped
/// one is in some segment: no point has a gap, nor do they together.
async fn assert_no_gap(dir: &std::path::Path) -> usize {
    let store = Store::open(&BackupTarget::Dir {
        path: dir.display().to_string(),
    })
    .await
    .unwrap();
    let points = store.points().await.unwrap();
    for p in &points {
        assert_eq!(p.gap(), None, "{}", p.key());
    }
    let mut segments: Vec<&manifest::SegmentRef> =
        points.iter().flat_map(|p| p.segments.iter()).collect();
    segments.sort_by_key(|s| (s.first, s.last));
    segments.dedup_by_key(|s| s.object.key.clone());
    let mut at = points.first().map(|p| p.snapshot.zxid).unwrap();
    for s in &segments {
        assert!(
            s.first <= at || zkop_spec::txnlog::follows(at, s.first),
            "transactions between {at} and {} are in no segment",
            s.first
        );
        at = at.max(s.last);
    }
    points.len()
}

/// One drill on a copy of `backup` broken by `harm`, which returns the key
/// it broke: it must fail naming that object.
fn drill_fails_naming(backup: &std::path::Path, harm: impl FnOnce(&std::path::Path) -> String) {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(backup, copy.path());
    let key = harm(copy.path());
    let out = verify(copy.path(), "127.0.77.250");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the drill passed with {key} broken");
    assert!(
        stderr.contains("FAILED") && stderr.contains(&key),
        "{stderr}"
    );
    eprintln!("drill on a broken copy: {}", stderr.trim());
}

/// The newest segment key in a backup directory (the one a restore of the
/// newest point surely needs).
fn newest_segment(dir: &std::path::Path) -> String {
    let mut logs: Vec<String> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    logs.sort();
    format!("logs/{}", logs.last().unwrap())
}

async fn shipper_of(
    c: &LocalCluster,
    other_than: Option<zkop_spec::zk::ServerId>,
) -> zkop_spec::zk::ServerId {
    let s = c
        .wait_status(
            "a member shipping the backup",
            Duration::from_secs(60),
            |s| {
                s.backup.as_ref().is_some_and(|b| {
                    b.shipper.is_some()
                        && b.shipper != other_than
                        && b.newest_zxid.is_some()
                        && !b.behind
                })
            },
        )
        .await;
    s.backup.unwrap().shipper.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipper_killed_another_member_ships_on_without_a_gap_retention_prunes_and_drills_catch_damage()
 {
    let _serial = SERIAL.lock().await;
    let backup = tempfile::tempdir().unwrap();
    let spec = spec_with_backup(backup.path(), "1s")
        .replace(
            "maxClientCnxns: \"100\"",
            "maxClientCnxns: \"100\"\n      snapCount: \"50\"",
        )
        .replace("recoveryPoint: 1s", "recoveryPoint: 1s\n    keep: 2");
    let (mut c, before) = LocalCluster::start_settled(&spec, "127.0.77.0/24", 3).await;
    let hosts = LocalCluster::endpoints(&before);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(common::write_until_timed(hosts.clone(), stopped));
    let client = zk_client(&hosts).await;
    common::wait_writes_flowing(&client, 100).await;
    drop(client);
    let first = shipper_of(&c, None).await;
    let instance = before
        .members
        .iter()
        .find(|m| m.id == first)
        .unwrap()
        .instance
        .clone();
    c.kill_instance(&instance);
    let second = shipper_of(&c, Some(first)).await;
    eprintln!("shipper {first} killed; member {second} ships");
    let pruned = c
        .wait_status("retention to prune", Duration::from_secs(120), |s| {
            s.events.iter().any(|e| e.kind == "backup_pruned")
        })
        .await;
    let _ = stop.send(true);
    let acked = writer.await.unwrap();
    assert!(acked.len() > 100, "only {} writes", acked.len());
    let client = zk_client(&LocalCluster::endpoints(&pruned)).await;
    write_and_wait_backed_up(&client, "/last", backup.path()).await;
    drop(client);
    c.stop().await;
    let points = assert_no_gap(backup.path()).await;
    assert!(points <= 4, "{points} points left with keep: 2");

    // Retention left every object a kept point needs: the drill passes.
    let out = verify(backup.path(), "127.0.77.250");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    drill_fails_naming(backup.path(), |dir| {
        let key = newest_segment(dir);
        let path = dir.join(&key);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        key
    });
    drill_fails_naming(backup.path(), |dir| {
        let key = newest_segment(dir);
        std::fs::remove_file(dir.join(&key)).unwrap();
        key
    });
}

/// Adds a backup to S3 (bucket `zk-backups`, prefix `aws-3/`, recovery
/// point 2s) and `onTotalLoss: restore` to the sandbox's running spec, and
/// waits for a member to ship.
async fn ship_to_s3(c: &common::aws::AwsCluster, s3: &aws_sdk_s3::Client) {
    s3.create_bucket()
        .bucket("zk-backups")
        .send()
        .await
        .unwrap();
    let flags = "    jvmFlags: [\"-XX:+UseSerialGC\", \"-XX:TieredStopAtLevel=1\"]";
    c.edit_spec(
        flags,
        &format!(
            "{flags}\n  backup:\n    s3:\n      bucket: zk-backups\n      prefix: aws-3/\n    recoveryPoint: 2s\n  healing:\n    onTotalLoss: restore\n    detectAfter: 3s\n"
        ),
    );
    let log = || c.log_tail();
    c.api()
        .wait_status(
            "a member shipping to S3",
            Duration::from_secs(90),
            |s| {
                s.backup
                    .as_ref()
                    .is_some_and(|b| b.newest_zxid.is_some() && !b.behind)
            },
            log,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_aws_a_total_loss_restores_from_s3_keeping_every_write_older_than_the_recovery_point() {
    let _serial = SERIAL.lock().await;
    let (c, before) = common::aws::AwsCluster::start_settled(3, "127.0.78.0/24").await;
    let s3 = common::moto::s3_client(&c.config);
    ship_to_s3(&c, &s3).await;
    let hosts = LocalCluster::endpoints(&before);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(common::write_until_timed(hosts.clone(), stopped));
    let client = zk_client(&hosts).await;
    common::wait_writes_flowing(&client, 100).await;
    drop(client);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Every instance terminated at once; the group launches new ones.
    let autoscaling = aws_sdk_autoscaling::Client::new(&c.config);
    let loss = Instant::now();
    for m in &before.members {
        autoscaling
            .terminate_instance_in_auto_scaling_group()
            .instance_id(m.instance.as_str())
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .unwrap();
        c.kill_instance_processes(&m.instance);
    }
    let _ = stop.send(true);
    let acked = writer.await.unwrap();
    let log = || c.log_tail();
    let after = c
        .api()
        .wait_status(
            "an ensemble restored from S3",
            Duration::from_secs(300),
            |s| settled(s, 3, 0) && s.events.iter().any(|e| e.kind == "discard_ensemble"),
            log,
        )
        .await;
    assert!(
        after.events.iter().any(|e| e.kind == "bootstrap"
            && e.message
                .contains("restored from the backup at s3://zk-backups/aws-3/")),
        "{:#?}",
        after.events
    );
    let present = common::present_writes(&after).await;
    assert_older_writes_kept(&acked, loss, Duration::from_secs(2), &present, 100);
    // Every object the shipper wrote is encrypted at rest.
    let listed = s3
        .list_objects_v2()
        .bucket("zk-backups")
        .prefix("aws-3/logs/")
        .send()
        .await
        .unwrap();
    let key = listed.contents()[0].key().unwrap();
    assert_eq!(
        common::moto::encryption_of(&s3, "zk-backups", key).await.0,
        Some(aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
}

/// `zkop bench --backup-load` in its short form: every figure present and
/// sane, none timed (the long form, 1,000 and 5,000 writes a second for 5
/// minutes each, is run by hand: docs/performance.md).
#[test]
fn bench_backup_load_reports_the_recovery_point_kept_and_what_shipping_costs() {
    let _serial = SERIAL.blocking_lock();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let args = [
        "bench",
        "--backup-load",
        "--writes-per-second",
        "200",
        "--load-seconds",
        "20",
        "--json",
        "--network",
        "127.0.138.0/24",
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let rows: serde_json::Value = rt.block_on(common::zkop_json(&args));
    eprintln!("{rows:#}");
    let row = &rows[0];
    let f = |k: &str| row[k].as_f64().unwrap_or_else(|| panic!("no {k} in {row}"));
    assert_eq!(row["writesPerSecondAsked"], 200, "{row}");
    assert!((20.0..=240.0).contains(&f("writesPerSecondDone")), "{row}");
    let (max, p99) = (f("recoveryPointMaxS"), f("recoveryPointP99S"));
    assert!(0.0 < p99 && p99 <= max && max < 120.0, "{row}");
    assert!(f("shipperAgentCpuSPerMin") > 0.0, "{row}");
    assert!(f("otherAgentCpuSPerMin") > 0.0, "{row}");
    // Some 1 KB writes shipped: at least a few MiB a minute.
    let shipped = f("shippedMibPerMin");
    assert!(shipped > 1.0, "{row}");
    // Logs are read on from where the last shipment stopped: a few times
    // what is shipped, never the 64 MB preallocated log at each shipment
    // (24 shipments a minute: over 1.5 GiB).
    let read = f("logReadMibPerMin");
    assert!(read >= shipped / 2.0 && read < 200.0, "{row}");
}

/// `zkop bench --load` in its short form: zkop's ensemble (agents, the
/// shipper, the canary) and the same servers by hand each answer the load,
/// twice, each side going first once (zkop started again on its state),
/// with every figure present and sane, none timed (the long form is run by
/// hand: docs/performance.md).
#[test]
fn bench_load_reports_throughput_and_latency_under_zkop_next_to_by_hand() {
    let _serial = SERIAL.blocking_lock();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let args = [
        "bench",
        "--load",
        "--reads-percent",
        "90",
        "--mix-seconds",
        "3",
        "--runs",
        "2",
        "--json",
        "--network",
        "127.0.138.0/24",
        "--hand-network",
        "127.0.139.0/24",
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let rows: serde_json::Value = rt.block_on(common::zkop_json(&args));
    eprintln!("{rows:#}");
    let rows = rows.as_array().cloned().unwrap_or_default();
    let transports: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["transport"].as_str())
        .collect();
    assert_eq!(transports, ["plaintext", "tls"], "{rows:#?}");
    for row in &rows {
        check_load_row(row);
    }
}

/// One `--load` row: every figure present and sane.
fn check_load_row(row: &serde_json::Value) {
    assert_eq!(row["readsPercent"], 90, "{row}");
    for side in ["zkop", "byHand"] {
        let f = |k: &str| {
            row[side][k]
                .as_f64()
                .unwrap_or_else(|| panic!("no {side}.{k} in {row}"))
        };
        assert!(f("opsPerSecond") > 10.0, "{row}");
        assert!(
            0.0 < f("p50Ms") && f("p50Ms") <= f("p99Ms") && f("p99Ms") <= f("p999Ms"),
            "{row}"
        );
    }
    for ratio in ["throughputRatio", "p99Ratio"] {
        let r = row[ratio].as_f64().unwrap_or(f64::NAN);
        assert!(r.is_finite() && r > 0.0, "{ratio}: {row}");
    }
    let runs = row["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 2, "each run's ratios: {row}");
    for run in &runs {
        let pair: Vec<f64> = run
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_f64())
            .collect();
        assert!(
            pair.len() == 2 && pair.iter().all(|r| r.is_finite() && *r > 0.0),
            "{row}"
        );
    }
}
