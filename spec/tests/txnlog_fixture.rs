//! The transaction-log reader on a data directory ZooKeeper 3.8 itself wrote.

use std::path::Path;

use zkop_spec::txnlog::{FileKind, last_zxid_of_log, zxid_of_file_name};
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
