use super::*;

fn z(epoch: u32, counter: u32) -> Zxid {
    Zxid { epoch, counter }
}

fn object(key: &str) -> ObjectRef {
    ObjectRef {
        key: key.into(),
        bytes: 10,
        sha256: "ab".repeat(32),
    }
}

fn seg(first: Zxid, last: Zxid, t0: u64, t1: u64) -> SegmentRef {
    SegmentRef {
        object: object(&segment_key(first, last, "abcdef")),
        first,
        last,
        first_time_ms: t0,
        last_time_ms: t1,
        last_record_sha256: None,
    }
}

fn point(snap: Zxid, trailer: Zxid, segments: Vec<SegmentRef>, created_ms: u64) -> PointManifest {
    PointManifest {
        format: FORMAT,
        cluster: "demo".into(),
        snapshot: SnapshotRef {
            object: object(&snapshot_key(snap, trailer, "0123456789abcdef")),
            zxid: snap,
            trailer_zxid: trailer,
            offline: false,
        },
        segments,
        created_ms,
        updated_ms: created_ms,
        shipper: Shipper {
            instance: "i-1".into(),
            server_id: 1,
            epoch: 1,
        },
        sealed: false,
        digests: vec![],
        diverged: None,
    }
}

#[test]
fn keys_sort_by_zxid_and_show_the_range_and_checksum() {
    assert_eq!(
        segment_key(z(1, 1), z(1, 0x40), "1f2e3d4c5b6a7980"),
        "logs/0000000100000001-0000000100000040-1f2e3d4c5b6a.log"
    );
    assert_eq!(
        snapshot_key(z(2, 0), z(2, 3), "ffeeddccbbaa9988"),
        "snapshots/0000000200000000-0000000200000003-ffeeddccbbaa.snap"
    );
    assert_eq!(
        point_key(z(1, 2), 1_796_220_245_250),
        "points/0000000100000002-1796220245250.json"
    );
    assert!(point_key(z(0xa, 1), 9) < point_key(z(0x10, 1), 1));
    assert!(is_point_key(&point_key(z(1, 2), 5)));
    assert!(!is_point_key("points/x.json"));
}

#[test]
fn a_point_restores_from_its_snapshot_s_trailer_to_its_last_segment() {
    let p = point(
        z(1, 10),
        z(1, 14),
        vec![
            seg(z(1, 11), z(1, 20), 100, 200),
            seg(z(1, 21), z(1, 30), 200, 300),
        ],
        0,
    );
    assert_eq!(p.restorable(), Some((z(1, 14), z(1, 30))));
    assert_eq!(p.gap(), None);
    assert_eq!(point_for(std::slice::from_ref(&p), z(1, 25)), Ok(&p));
    assert_eq!(p.segments_to(z(1, 15)).len(), 1);
    // A fuzzy snapshot cannot go back before its trailer.
    assert!(matches!(
        point_for(std::slice::from_ref(&p), z(1, 12)),
        Err(RestoreError::NotCovered { .. })
    ));
    // Shipped only part of what the snapshot holds: nothing exact yet.
    let early = point(z(1, 10), z(1, 14), vec![seg(z(1, 11), z(1, 12), 0, 0)], 0);
    assert_eq!(early.restorable(), None);
}

#[test]
fn a_missing_segment_is_a_gap_and_such_a_point_restores_nothing() {
    let p = point(
        z(1, 10),
        z(1, 10),
        vec![seg(z(1, 11), z(1, 20), 0, 0), seg(z(1, 22), z(1, 30), 0, 0)],
        0,
    );
    assert!(
        p.gap().unwrap().contains("after 0x100000014 are missing"),
        "{:?}",
        p.gap()
    );
    assert_eq!(newest(std::slice::from_ref(&p)), None);
    // A new epoch starting at counter 1 follows on; one starting later does not.
    let epochs = point(
        z(1, 10),
        z(1, 10),
        vec![seg(z(1, 11), z(1, 20), 0, 0), seg(z(2, 1), z(2, 5), 0, 0)],
        0,
    );
    assert_eq!(epochs.gap(), None);
    let skipped = point(z(1, 10), z(1, 10), vec![seg(z(2, 3), z(2, 5), 0, 0)], 0);
    assert!(skipped.gap().is_some());
    // A first segment from before the snapshot (the older log holds S+1) is fine.
    let older = point(z(1, 15), z(1, 17), vec![seg(z(1, 11), z(1, 20), 0, 0)], 0);
    assert_eq!(older.gap(), None);
    assert_eq!(older.restorable(), Some((z(1, 17), z(1, 20))));
}

#[test]
fn the_newest_snapshot_that_restores_exactly_is_chosen() {
    let shared = seg(z(1, 11), z(1, 40), 0, 0);
    let old = point(z(1, 10), z(1, 10), vec![shared.clone()], 0);
    let new = point(
        z(1, 30),
        z(1, 33),
        vec![shared, seg(z(1, 41), z(1, 50), 0, 0)],
        0,
    );
    let points = vec![old.clone(), new.clone()];
    assert_eq!(point_for(&points, z(1, 45)), Ok(&new));
    assert_eq!(point_for(&points, z(1, 35)), Ok(&new));
    // Before the newer snapshot's trailer only the older point is exact.
    assert_eq!(point_for(&points, z(1, 31)), Ok(&old));
    assert_eq!(newest(&points), Some(z(1, 50)));
    assert_eq!(point_for(&[], z(1, 1)), Err(RestoreError::Empty));
}

#[test]
fn a_time_finds_the_segment_holding_the_last_transaction_before_it() {
    let p = point(
        z(1, 0),
        z(1, 0),
        vec![
            seg(z(1, 1), z(1, 9), 1000, 1900),
            seg(z(1, 10), z(1, 19), 2000, 2900),
        ],
        0,
    );
    let points = [p];
    assert_eq!(segment_at_time(&points, 1950).unwrap().first, z(1, 1));
    assert_eq!(segment_at_time(&points, 2000).unwrap().first, z(1, 10));
    assert_eq!(
        segment_at_time(&points, 999),
        Err(RestoreError::TooEarly(999))
    );
}

#[test]
fn pruning_never_deletes_an_object_a_kept_point_needs() {
    let shared = seg(z(1, 11), z(1, 40), 0, 0);
    let only_old = seg(z(1, 1), z(1, 10), 0, 0);
    let p1 = point(
        z(1, 0),
        z(1, 0),
        vec![only_old.clone(), shared.clone()],
        1_000,
    );
    let p2 = point(z(1, 30), z(1, 30), vec![shared.clone()], 2_000);
    let p3 = point(
        z(1, 40),
        z(1, 40),
        vec![seg(z(1, 41), z(1, 50), 0, 0)],
        3_000,
    );
    let stored: Vec<String> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| p.objects().map(|o| o.key.clone()))
        .chain(["logs/in-flight.log".to_string()])
        .collect();
    let points = vec![p1.clone(), p2.clone(), p3.clone()];
    let gone = prune(&points, &stored, 2, None, 10_000);
    assert_eq!(gone.points, vec![p1.key()]);
    assert!(gone.objects.contains(&p1.snapshot.object.key));
    assert!(gone.objects.contains(&only_old.object.key));
    assert!(
        !gone.objects.contains(&shared.object.key),
        "p2 still needs it"
    );
    assert!(!gone.objects.iter().any(|k| k == "logs/in-flight.log"));
    // keepFor keeps the young ones whatever keep says; the newest always stays.
    assert!(
        prune(&points, &stored, 1, Some(9_500), 10_000)
            .points
            .is_empty()
    );
    assert_eq!(prune(&points, &stored, 0, None, 10_000).points.len(), 2);
}

fn digest(zxid: Zxid, digest: &str) -> TreeDigest {
    TreeDigest {
        zxid,
        digest: digest.into(),
    }
}

#[test]
fn a_point_records_only_digests_a_restore_of_it_replays_to() {
    let mut p = point(
        z(1, 0x100),
        z(1, 0x110),
        vec![seg(z(1, 0x101), z(1, 0x300), 0, 0)],
        0,
    );
    let seen = [
        digest(z(1, 0x100), "1"), // in the snapshot already: not recomputed
        digest(z(1, 0x180), "2"),
        digest(z(1, 0x200), "3"),
        digest(z(1, 0x380), "4"), // not shipped yet
    ];
    assert!(p.record_digests(&seen));
    assert_eq!(p.digests, vec![seen[1].clone(), seen[2].clone()]);
    assert!(!p.record_digests(&seen), "nothing new the second time");
    let many: Vec<TreeDigest> = (0..40).map(|i| digest(z(1, 0x111 + i), "d")).collect();
    p.record_digests(&many);
    assert_eq!(p.digests.len(), MAX_DIGESTS);
    assert_eq!(
        p.digests.last().unwrap().zxid,
        z(1, 0x200),
        "the newest kept"
    );
}

#[test]
fn a_drill_checks_the_newest_digest_a_restore_replays_to() {
    let mut old = point(z(1, 0), z(1, 0), vec![seg(z(1, 1), z(1, 0x200), 0, 0)], 0);
    old.digests = vec![digest(z(1, 0x80), "a"), digest(z(1, 0x180), "b")];
    assert_eq!(digest_to_check(&[old.clone()]).unwrap().zxid, z(1, 0x180));
    // A newer point whose snapshot is exactly at 0x180: a restore to 0x180
    // loads it without replaying, so the older digest is the one to check.
    let newer = point(
        z(1, 0x180),
        z(1, 0x180),
        vec![seg(z(1, 0x181), z(1, 0x200), 0, 0)],
        1,
    );
    assert_eq!(
        digest_to_check(&[old.clone(), newer]).unwrap().zxid,
        z(1, 0x80)
    );
    old.digests.clear();
    assert_eq!(digest_to_check(&[old]), None);
}

#[test]
fn backup_branches_a_restore_never_crosses_a_divergence() {
    // Issue 24, finding 2: the lost shipper shipped 0x100000001..0x10000000a
    // (old branch); the survivor held only up to 0x100000005, was forced
    // into epoch 2 and its shipper started a new point at its snapshot
    // 0x100000004 with its own transactions after it.
    let old = point(z(1, 0), z(1, 0), vec![seg(z(1, 1), z(1, 10), 100, 200)], 50);
    let mut new = point(
        z(1, 4),
        z(1, 4),
        vec![
            seg(z(1, 5), z(1, 5), 150, 150),
            seg(z(2, 1), z(2, 6), 300, 400),
        ],
        250,
    );
    new.diverged = Some(Divergence {
        point: old.key(),
        after: Some(z(1, 5)),
        upto: z(1, 10),
    });
    let points = [old.clone(), new.clone()];
    // 0x100000008 exists only in the old branch: never restored from the
    // new point (its numeric range covers it, its history does not).
    assert!(!new.restores_to(z(1, 8)));
    assert_eq!(point_for(&points, z(1, 8)).map(|p| p.key()), Ok(old.key()));
    // Both hold 0x100000005: the newest snapshot restores it.
    assert_eq!(point_for(&points, z(1, 5)).map(|p| p.key()), Ok(new.key()));
    assert_eq!(point_for(&points, z(2, 3)).map(|p| p.key()), Ok(new.key()));
    // The newest state is the new branch's, not the left branch's.
    assert_eq!(newest(&points), Some(z(2, 6)));
    let left = Divergence {
        point: old.key(),
        after: Some(z(1, 5)),
        upto: z(1, 10),
    };
    assert!(
        left.describe()
            .contains("after 0x100000005 up to 0x10000000a"),
        "{}",
        left.describe()
    );
}
