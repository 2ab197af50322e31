//! ZooKeeper's data directory, read without ZooKeeper: the last zxid a server
//! holds (for choosing survivors when no server answers), the records and
//! segments of a log and the point a snapshot holds (for backups). Pure:
//! callers read the files.
//!
//! A transaction log (`version-2/log.<first zxid>`) is a header (magic `ZKLG`,
//! version, dbid) followed by records: an Adler-32 of the transaction (8 bytes),
//! its length (4 bytes), the transaction (a header of client id, cxid, zxid,
//! time and type, then the body) and an end-of-record byte `B`. A snapshot
//! (`version-2/snapshot.<zxid>`) ends with a checksum seal, the tree digest
//! (its zxid, a version and the digest) and a second seal; from 3.9 on, then
//! the last processed zxid and a third seal. ZooKeeper
//! preallocates the file with zeros, so a zero length ends the log. A record cut
//! short by a crash (too short, wrong checksum, no end byte) ends it too.

use crate::zk::Zxid;

/// The log file magic, "ZKLG".
const MAGIC: u32 = 0x5a4b_4c47;
/// Bytes before the first record: magic, version, dbid.
const FILE_HEADER: usize = 16;
/// A log's header length: a segment's records start here.
pub const LOG_HEADER: usize = FILE_HEADER;
/// Bytes of a transaction header up to and including the zxid.
const TXN_ZXID_END: usize = 20;
/// Bytes of a transaction header up to and including its time.
const TXN_TIME_END: usize = 28;
/// ZooKeeper's end-of-record marker.
const END_OF_RECORD: u8 = b'B';

/// Why a transaction log could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnLogError {
    /// The file does not start with `ZKLG` (not a transaction log).
    #[error("not a ZooKeeper transaction log (magic {0:#010x})")]
    BadMagic(u32),
    /// A snapshot that does not end as ZooKeeper ends one: still being
    /// written, cut short or corrupt.
    #[error("not a complete ZooKeeper snapshot ({0})")]
    IncompleteSnapshot(&'static str),
}

/// The bytes `SnapStream.sealStream` ends a section with: an Adler-32 of
/// everything before it (8 bytes) and the string "/" (length 1, then `/`).
const SEAL: usize = 13;
/// The tree digest ZooKeeper writes after the tree: zxid, version, digest.
const DIGEST: usize = 20;
/// The last processed zxid ZooKeeper 3.9 writes after the digest.
const LAST_PROCESSED: usize = 8;

/// The zxid up to which a complete snapshot holds transactions. A snapshot
/// is fuzzy (named by the zxid it started at, it may hold transactions past
/// it), so a restore to a point needs a snapshot whose trailer zxid is at or
/// below the point. ZooKeeper 3.9 ends a snapshot with the last processed
/// zxid (8 bytes, sealed) after the tree digest, and reads it back as the
/// point to replay from; 3.8 ends with the digest, whose zxid is that point.
/// Checks the final seal's checksum, so a snapshot still being written is
/// refused.
pub fn snapshot_trailer_zxid(bytes: &[u8]) -> Result<Zxid, TxnLogError> {
    let n = bytes.len();
    if n < 16 + SEAL + DIGEST + SEAL {
        return Err(TxnLogError::IncompleteSnapshot("too short"));
    }
    let sealed = |end: usize| end >= 5 && bytes[end - 5..end] == [0, 0, 0, 1, b'/'];
    if !sealed(n) {
        return Err(TxnLogError::IncompleteSnapshot("no final seal"));
    }
    if u64::from(adler32(&bytes[..n - SEAL])) != be_u64(&bytes[n - SEAL..n - 5]) {
        return Err(TxnLogError::IncompleteSnapshot("checksum mismatch"));
    }
    let end = n - SEAL;
    // 3.9: digest, seal, last processed zxid, seal.
    let digest_seal = end - LAST_PROCESSED;
    if n >= 16 + 3 * SEAL + DIGEST + LAST_PROCESSED
        && sealed(digest_seal)
        && sealed(digest_seal - SEAL - DIGEST)
    {
        return Ok(Zxid::from_u64(be_u64(&bytes[digest_seal..end])));
    }
    // 3.8: the digest, then the final seal.
    if !sealed(end - DIGEST) {
        return Err(TxnLogError::IncompleteSnapshot(
            "no tree digest (is `zookeeper.digest.enabled` off?)",
        ));
    }
    Ok(Zxid::from_u64(be_u64(
        &bytes[end - DIGEST..end - DIGEST + 8],
    )))
}

/// Whether `next` directly follows `prev` in a transaction history: the
/// next counter in the same epoch, or the first transaction of a later one.
pub fn follows(prev: Zxid, next: Zxid) -> bool {
    if next.epoch == prev.epoch {
        prev.counter.checked_add(1) == Some(next.counter)
    } else {
        next.epoch > prev.epoch && next.counter == 1
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Adler-32, the checksum ZooKeeper keeps per record.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// One complete record of a transaction log: its zxid and the bytes it spans
/// (checksum, length, transaction and end-of-record byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The transaction's zxid.
    pub zxid: Zxid,
    /// When the leader proposed it, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Where the record lies in the log file.
    pub span: std::ops::Range<usize>,
}

/// The complete records of a transaction log, in file order, up to the
/// zero padding or the first record cut short or corrupt (as ZooKeeper reads
/// it: a torn tail is the end of the log).
pub fn records(bytes: &[u8]) -> Result<Vec<Record>, TxnLogError> {
    if bytes.len() < FILE_HEADER {
        return Ok(Vec::new());
    }
    check_magic(bytes)?;
    Ok(records_from(bytes, FILE_HEADER))
}

/// Refuses a file that does not start as a transaction log does.
pub fn check_magic(bytes: &[u8]) -> Result<(), TxnLogError> {
    let magic = bytes.get(0..4).map_or(0, be_u32);
    if magic != MAGIC {
        return Err(TxnLogError::BadMagic(magic));
    }
    Ok(())
}

/// How the bytes after the last complete record end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEnd {
    /// Inside a record or its header: more of the file may complete it.
    Short,
    /// The zero padding, or a complete record that does not check out (a
    /// torn tail): the log ends here, whatever follows.
    Ends,
}

/// How `bytes` ends at `at` (the end of its last complete record), for a
/// reader that reads a log a piece at a time.
pub fn end_at(bytes: &[u8], at: usize) -> LogEnd {
    match bytes.get(at..at + 12) {
        None => LogEnd::Short,
        Some(head) => {
            let len = be_u32(&head[8..12]) as usize;
            if len == 0 || bytes.len() > at + 12 + len {
                LogEnd::Ends
            } else {
                LogEnd::Short
            }
        }
    }
}

/// The complete records from `at` (the end of the header or of a complete
/// record) on, as [`records`] reads them.
pub fn records_from(bytes: &[u8], mut at: usize) -> Vec<Record> {
    let mut found = Vec::new();
    while let Some(head) = bytes.get(at..at + 12) {
        let crc = be_u64(&head[0..8]);
        let len = be_u32(&head[8..12]) as usize;
        if len == 0 {
            break;
        }
        let start = at + 12;
        let (Some(txn), Some(&eor)) = (bytes.get(start..start + len), bytes.get(start + len))
        else {
            break;
        };
        if len < TXN_TIME_END || eor != END_OF_RECORD || crc != u64::from(adler32(txn)) {
            break;
        }
        found.push(Record {
            zxid: Zxid::from_u64(be_u64(&txn[12..TXN_ZXID_END])),
            time_ms: be_u64(&txn[TXN_ZXID_END..TXN_TIME_END]),
            span: at..start + len + 1,
        });
        at = start + len + 1;
    }
    found
}

/// The bytes of one record as ZooKeeper writes it, for a transaction of
/// `body` (its type and payload) at `zxid`, proposed at `time_ms`.
pub fn record_bytes(zxid: Zxid, time_ms: u64, body: &[u8]) -> Vec<u8> {
    let mut txn = 0u64.to_be_bytes().to_vec(); // client id
    txn.extend(0u32.to_be_bytes()); // cxid
    txn.extend(zxid.as_u64().to_be_bytes());
    txn.extend(time_ms.to_be_bytes());
    txn.extend(body);
    let mut r = u64::from(adler32(&txn)).to_be_bytes().to_vec();
    r.extend(u32::try_from(txn.len()).unwrap_or(u32::MAX).to_be_bytes());
    r.extend(&txn);
    r.push(END_OF_RECORD);
    r
}

/// A log's header (magic, version 2, `dbid` 0).
pub fn log_header() -> Vec<u8> {
    let mut v = MAGIC.to_be_bytes().to_vec();
    v.extend(2u32.to_be_bytes());
    v.extend(0u64.to_be_bytes());
    v
}

/// The zxid of the last complete record of a transaction log, `None` if it has
/// none (only a header, or nothing at all).
pub fn last_zxid_of_log(bytes: &[u8]) -> Result<Option<Zxid>, TxnLogError> {
    Ok(records(bytes)?.last().map(|r| r.zxid))
}

/// A log file of its own holding the records of `log` whose zxids lie in
/// `from..=to`: the same 16-byte header, those records, no padding. ZooKeeper
/// loads it as it loads the log it came from, so it serves both as a backup
/// segment and as a log cut exactly at a restore point. `None` when no record
/// lies in the range.
pub fn segment(log: &[u8], from: Zxid, to: Zxid) -> Result<Option<Vec<u8>>, TxnLogError> {
    let chosen = records(log)?
        .into_iter()
        .filter(|r| (from..=to).contains(&r.zxid))
        .map(|r| r.span);
    Ok(segment_of(log, chosen))
}

/// A log file of its own holding the records of `log` at `spans` (as
/// [`records`] found them), as [`segment`] makes it; `None` when there are
/// none or one lies outside `log`.
pub fn segment_of(
    log: &[u8],
    spans: impl IntoIterator<Item = std::ops::Range<usize>>,
) -> Option<Vec<u8>> {
    let mut out = log.get(..FILE_HEADER)?.to_vec();
    for span in spans {
        out.extend_from_slice(log.get(span)?);
    }
    (out.len() > FILE_HEADER).then_some(out)
}

/// The zxid a snapshot's or log's file name carries (`snapshot.100000000`,
/// `log.100000001`), if it is one.
pub fn zxid_of_file_name(name: &str) -> Option<(FileKind, Zxid)> {
    let (kind, hex) = if let Some(h) = name.strip_prefix("snapshot.") {
        (FileKind::Snapshot, h)
    } else if let Some(h) = name.strip_prefix("log.") {
        (FileKind::Log, h)
    } else {
        return None;
    };
    u64::from_str_radix(hex, 16)
        .ok()
        .map(|z| (kind, Zxid::from_u64(z)))
}

/// A file of ZooKeeper's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `snapshot.<zxid>`: the state as of that zxid.
    Snapshot,
    /// `log.<zxid>`: transactions from that zxid on.
    Log,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        log_header()
    }

    fn record(zxid: u64) -> Vec<u8> {
        let mut txn = 0x1234u64.to_be_bytes().to_vec();
        txn.extend(7u32.to_be_bytes());
        txn.extend(zxid.to_be_bytes());
        txn.extend((1_700_000_000_000 + (zxid & 0xffff)).to_be_bytes());
        txn.extend(1u32.to_be_bytes());
        txn.extend(b"body");
        let mut r = u64::from(adler32(&txn)).to_be_bytes().to_vec();
        r.extend((txn.len() as u32).to_be_bytes());
        r.extend(&txn);
        r.push(END_OF_RECORD);
        r
    }

    #[test]
    fn a_log_read_a_piece_at_a_time_ends_at_its_padding_not_inside_a_record() {
        let mut log = header();
        log.extend(record(0x1_0000_0001));
        let end = log.len();
        let next = record_bytes(Zxid::from_u64(0x1_0000_0002), 5, b"typebody");
        assert_eq!(records_from(&log, FILE_HEADER).len(), 1);
        for cut in 0..next.len() {
            let mut l = log.clone();
            l.extend(&next[..cut]);
            assert_eq!(end_at(&l, end), LogEnd::Short, "cut at {cut}");
        }
        let mut whole = log.clone();
        whole.extend(&next);
        assert_eq!(records_from(&whole, end).len(), 1);
        assert_eq!(records_from(&whole, end)[0].time_ms, 5);
        let mut padded = log.clone();
        padded.extend([0u8; 12]);
        assert_eq!(end_at(&padded, end), LogEnd::Ends);
        let mut torn = whole.clone();
        torn[end + 20] ^= 0xff;
        torn.push(0);
        assert_eq!(records_from(&torn, end), vec![]);
        assert_eq!(end_at(&torn, end), LogEnd::Ends);
    }

    #[test]
    fn adler32_matches_the_reference() {
        // RFC 1950's example value for "Wikipedia".
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn the_last_complete_record_wins_and_padding_ends_the_log() {
        let mut log = header();
        for z in [0x1_0000_0001u64, 0x1_0000_0002, 0x1_0000_0003] {
            log.extend(record(z));
        }
        log.extend(vec![0u8; 4096]);
        assert_eq!(
            last_zxid_of_log(&log),
            Ok(Some(Zxid {
                epoch: 1,
                counter: 3
            }))
        );
    }

    #[test]
    fn a_record_torn_by_a_crash_is_not_counted() {
        let mut log = header();
        log.extend(record(0x2_0000_0001));
        let torn = record(0x2_0000_0002);
        for cut in 1..torn.len() {
            let mut l = log.clone();
            l.extend(&torn[..cut]);
            assert_eq!(
                last_zxid_of_log(&l),
                Ok(Some(Zxid {
                    epoch: 2,
                    counter: 1
                })),
                "cut at {cut}"
            );
        }
        let mut corrupt = torn.clone();
        corrupt[30] ^= 0xff;
        let mut l = log.clone();
        l.extend(&corrupt);
        assert_eq!(
            last_zxid_of_log(&l),
            Ok(Some(Zxid {
                epoch: 2,
                counter: 1
            }))
        );
    }

    #[test]
    fn a_segment_is_a_log_of_exactly_the_records_in_its_range() {
        let mut log = header();
        for c in 1..=5u64 {
            log.extend(record(0x3_0000_0000 + c));
        }
        log.extend(vec![0u8; 512]);
        let z = |c: u32| Zxid {
            epoch: 3,
            counter: c,
        };
        let seg = segment(&log, z(2), z(4)).unwrap().unwrap();
        assert_eq!(&seg[..FILE_HEADER], &header()[..]);
        let zxids: Vec<Zxid> = records(&seg).unwrap().iter().map(|r| r.zxid).collect();
        assert_eq!(zxids, vec![z(2), z(3), z(4)]);
        // No padding: the segment ends with its last record.
        assert_eq!(seg.len(), FILE_HEADER + 3 * record(0).len());
        assert_eq!(segment(&log, z(6), z(9)).unwrap(), None);
        assert!(segment(&[1u8; 20], z(1), z(2)).is_err());
    }

    fn sealed(mut v: Vec<u8>) -> Vec<u8> {
        let sum = u64::from(adler32(&v));
        v.extend(sum.to_be_bytes());
        v.extend(1u32.to_be_bytes());
        v.push(b'/');
        v
    }

    #[test]
    fn a_snapshot_s_trailer_zxid_is_read_only_from_a_complete_snapshot() {
        let mut snap = sealed(vec![7u8; 64]);
        snap.extend(0x4_0000_0009u64.to_be_bytes());
        snap.extend(2u32.to_be_bytes());
        snap.extend(0xfeedu64.to_be_bytes());
        let snap = sealed(snap);
        assert_eq!(
            snapshot_trailer_zxid(&snap),
            Ok(Zxid {
                epoch: 4,
                counter: 9
            })
        );
        // Still being written: any prefix is refused.
        for cut in [snap.len() - 1, snap.len() - 13, 70] {
            assert!(snapshot_trailer_zxid(&snap[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = snap.clone();
        flipped[10] ^= 1;
        assert_eq!(
            snapshot_trailer_zxid(&flipped),
            Err(TxnLogError::IncompleteSnapshot("checksum mismatch"))
        );
    }

    #[test]
    fn a_3_9_snapshot_s_trailer_is_its_last_processed_zxid() {
        let mut snap = sealed(vec![7u8; 64]);
        snap.extend(0x4_0000_0007u64.to_be_bytes());
        snap.extend(2u32.to_be_bytes());
        snap.extend(0xfeedu64.to_be_bytes());
        let mut snap = sealed(snap);
        snap.extend(0x4_0000_0009u64.to_be_bytes());
        let snap = sealed(snap);
        assert_eq!(
            snapshot_trailer_zxid(&snap),
            Ok(Zxid::from_u64(0x4_0000_0009))
        );
        for cut in [snap.len() - 1, snap.len() - 13, 70] {
            assert!(snapshot_trailer_zxid(&snap[..cut]).is_err(), "cut at {cut}");
        }
        // The one ZooKeeper 3.9.5 wrote loading the 3.8 fixture's 41
        // transactions.
        let written = include_bytes!("../tests/fixtures/zk-3.9-data/snapshot.100000029");
        assert_eq!(
            snapshot_trailer_zxid(written),
            Ok(Zxid::from_u64(0x1_0000_0029))
        );
    }

    #[test]
    fn a_transaction_follows_its_predecessor_or_opens_a_later_epoch() {
        let z = |e, c| Zxid {
            epoch: e,
            counter: c,
        };
        assert!(follows(z(1, 5), z(1, 6)));
        assert!(follows(z(1, 5), z(3, 1)));
        assert!(!follows(z(1, 5), z(1, 7)));
        assert!(!follows(z(1, 5), z(2, 2)));
        assert!(!follows(z(2, 5), z(1, 6)));
    }

    #[test]
    fn records_carry_their_time() {
        let mut log = header();
        log.extend(record(0x1_0000_0001));
        log.extend(record(0x1_0000_0002));
        let times: Vec<u64> = records(&log).unwrap().iter().map(|r| r.time_ms).collect();
        assert_eq!(times, vec![1_700_000_000_001, 1_700_000_000_002]);
    }

    #[test]
    fn empty_logs_and_other_files() {
        assert_eq!(last_zxid_of_log(&[]), Ok(None));
        assert_eq!(last_zxid_of_log(&header()), Ok(None));
        assert!(matches!(
            last_zxid_of_log(&[0u8; 32]),
            Err(TxnLogError::BadMagic(0))
        ));
        assert_eq!(
            zxid_of_file_name("snapshot.100000000"),
            Some((
                FileKind::Snapshot,
                Zxid {
                    epoch: 1,
                    counter: 0
                }
            ))
        );
        assert_eq!(
            zxid_of_file_name("log.200000001").map(|(k, _)| k),
            Some(FileKind::Log)
        );
        assert_eq!(zxid_of_file_name("acceptedEpoch"), None);
        assert_eq!(zxid_of_file_name("log.zz"), None);
    }
}
