//! Backups in S3 through the real AWS SDK for Rust against a moto server on
//! loopback: objects created once (`If-None-Match`), encrypted with the
//! spec's KMS key or SSE-S3, listed under the prefix, and a restore cut
//! exactly at a zxid read back from them.

use zkop_runtime::backup::restore::restore_into;
use zkop_runtime::backup::{Created, S3Store, Store};
use zkop_spec::backup::manifest::{self, PointManifest, SegmentRef, Shipper, SnapshotRef};
use zkop_spec::backup::{RestorePoint, S3Location};
use zkop_spec::txnlog;
use zkop_spec::zk::Zxid;
use zkop_tests::common;
use zkop_tests::common::moto::{Moto, encryption_of};

/// The ZooKeeper 3.8 data the spec's parser tests use.
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        common::repo_root()
            .join("spec/tests/fixtures/zk-3.8-data/version-2")
            .join(name),
    )
    .unwrap()
}

/// A point as a shipper writes it, from the fixture's snapshot and log.
async fn ship_fixture(store: &Store) -> PointManifest {
    let snap = fixture("snapshot.0");
    let trailer = txnlog::snapshot_trailer_zxid(&snap).unwrap();
    let log = fixture("log.100000001");
    let records = txnlog::records(&log).unwrap();
    let (first, last) = (&records[0], &records[records.len() - 1]);
    let segment = txnlog::segment(&log, first.zxid, last.zxid)
        .unwrap()
        .unwrap();
    let zero = Zxid::from_u64(0);
    let snapshot = store
        .put_object(|sha| manifest::snapshot_key(zero, trailer, sha), &snap)
        .await
        .unwrap();
    let object = store
        .put_object(
            |sha| manifest::segment_key(first.zxid, last.zxid, sha),
            &segment,
        )
        .await
        .unwrap();
    let point = PointManifest {
        format: manifest::FORMAT,
        cluster: "prod".into(),
        snapshot: SnapshotRef {
            object: snapshot,
            zxid: zero,
            trailer_zxid: trailer,
            offline: false,
        },
        segments: vec![SegmentRef {
            object,
            first: first.zxid,
            last: last.zxid,
            first_time_ms: first.time_ms,
            last_time_ms: last.time_ms,
            last_record_sha256: None,
        }],
        created_ms: 1,
        updated_ms: 1,
        shipper: Shipper {
            instance: "i-1".into(),
            server_id: 1,
            epoch: 1,
        },
        sealed: false,
        digests: vec![],
        diverged: None,
    };
    store.put_point(&point).await.unwrap();
    point
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_backup_creates_objects_once_encrypted_and_restores_from_them() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let s3 = common::moto::s3_client(&config);
    s3.create_bucket()
        .bucket("zk-backups")
        .send()
        .await
        .unwrap();
    let key_id = "arn:aws:kms:us-east-1:123456789012:key/zkop-test";
    let location = |prefix: &str, kms: Option<&str>| S3Location {
        bucket: "zk-backups".into(),
        prefix: prefix.into(),
        kms_key_id: kms.map(str::to_string),
    };
    let store = Store::S3(S3Store::with_config(
        &config,
        &location("prod", Some(key_id)),
    ));
    let point = ship_fixture(&store).await;
    let segment = &point.segments[0].object;
    assert_eq!(
        store.put_new(&segment.key, b"other bytes").await.unwrap(),
        Created::Existed,
        "S3 took a second create of {}",
        segment.key
    );
    // Every object is under the prefix and encrypted with the spec's key.
    assert_eq!(
        encryption_of(&s3, "zk-backups", &format!("prod/{}", segment.key)).await,
        (
            Some(aws_sdk_s3::types::ServerSideEncryption::AwsKms),
            Some(key_id.to_string())
        )
    );
    assert_eq!(store.points().await.unwrap(), vec![point.clone()]);
    assert_eq!(
        store.list("logs/").await.unwrap(),
        vec![(segment.key.clone(), segment.bytes)]
    );

    // A restore cut exactly at a zxid reads it back.
    let to: Zxid = "0x100000010".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let done = restore_into(&store, RestorePoint::Zxid { zxid: to }, dir.path())
        .await
        .unwrap();
    assert_eq!(done.zxid, to);
    let restored = std::fs::read(dir.path().join("version-2/log.100000001")).unwrap();
    assert_eq!(txnlog::last_zxid_of_log(&restored).unwrap(), Some(to));

    // Without a key: SSE-S3. Deleting is the controller's.
    let plain = Store::S3(S3Store::with_config(&config, &location("", None)));
    plain.put_new("drills/x.json", b"{}").await.unwrap();
    assert_eq!(
        encryption_of(&s3, "zk-backups", "drills/x.json").await,
        (Some(aws_sdk_s3::types::ServerSideEncryption::Aes256), None)
    );
    plain.delete("drills/x.json").await.unwrap();
    assert_eq!(plain.get("drills/x.json").await.unwrap(), None);
}
