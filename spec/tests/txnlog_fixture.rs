//! The transaction-log reader on a data directory ZooKeeper 3.8 itself wrote.

use std::path::Path;

use zkop_spec::txnlog::{FileKind, last_zxid_of_log, records, segment, zxid_of_file_name};
use zkop_spec::zk::Zxid;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zk-3.8-data/version-2")
}

#[test]
fn reads_the_zxid_zookeeper_reported_before_it_was_killed() {
    let log = std::fs::read(fixture().join("log.100000001")).unwrap();
    // `srvr` said `Zxid: 0x100000029` just before the SIGKILL.
    assert_eq!(
        last_zxid_of_log(&log).unwrap(),
        Some("0x100000029".parse::<Zxid>().unwrap())
    );
    // ZooKeeper pads its logs with zeros to 64 MB; the padding ends the log.
    let mut padded = log.clone();
    padded.resize(log.len() + (1 << 20), 0);
    assert_eq!(
        last_zxid_of_log(&padded).unwrap(),
        last_zxid_of_log(&log).unwrap()
    );
    // A crash in the middle of the last record leaves the one before it.
    let cut = last_zxid_of_log(&log[..log.len() - 3]).unwrap().unwrap();
    assert_eq!(cut, "0x100000028".parse::<Zxid>().unwrap());
}

#[test]
fn names_of_the_fixture_files_carry_their_zxids() {
    let mut kinds = Vec::new();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some((kind, _)) = zxid_of_file_name(&name) {
            kinds.push(kind);
        }
    }
    kinds.sort_by_key(|k| matches!(k, FileKind::Snapshot));
    assert_eq!(kinds, vec![FileKind::Log, FileKind::Snapshot]);
}

#[test]
fn segments_of_a_real_log_split_it_without_a_gap_or_a_lost_byte() {
    let log = std::fs::read(fixture().join("log.100000001")).unwrap();
    let all = records(&log).unwrap();
    assert_eq!(
        all.first().unwrap().zxid,
        "0x100000001".parse::<Zxid>().unwrap()
    );
    // Every zxid once, in order: what a backup's manifest checks.
    for pair in all.windows(2) {
        assert_eq!(pair[1].zxid.counter, pair[0].zxid.counter + 1);
    }
    let z = |s: &str| s.parse::<Zxid>().unwrap();
    let head = segment(&log, z("0x100000001"), z("0x100000010"))
        .unwrap()
        .unwrap();
    let tail = segment(&log, z("0x100000011"), z("0x100000029"))
        .unwrap()
        .unwrap();
    assert_eq!(last_zxid_of_log(&head).unwrap(), Some(z("0x100000010")));
    assert_eq!(last_zxid_of_log(&tail).unwrap(), Some(z("0x100000029")));
    // The two segments hold the log's records byte for byte.
    let end = all.last().unwrap().span.end;
    assert_eq!(head.len() + tail.len() - 16, end);
    assert_eq!([&head[..], &tail[16..]].concat(), log[..end].to_vec());
}
