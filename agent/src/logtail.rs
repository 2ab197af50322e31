//! The transaction logs as read so far. ZooKeeper preallocates a log (64 MB
//! of zeros) and appends records to it; reading it whole at every shipment
//! cost the shipper CPU that grew with the write rate. Each read now goes on
//! from the end of the last complete record it found, a piece at a time,
//! and stops at the padding.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zkop_spec::txnlog::{self, LOG_HEADER, LogEnd, Record};

/// Bytes read at a time: the padding read past the last record at each
/// shipment is at most this.
const PIECE: u64 = 256 << 10;

/// One log as read so far.
#[derive(Debug, Default)]
struct LogRead {
    /// The file it was read from (device, inode): a log removed and made
    /// again under its name is read anew.
    file: Option<(u64, u64)>,
    /// Its bytes up to the end of its last complete record.
    bytes: Arc<Vec<u8>>,
    /// Its complete records.
    records: Vec<Record>,
    /// Not a transaction log (bad magic): nothing to read in it.
    foreign: bool,
}

/// The logs of one data directory, as read so far.
#[derive(Debug, Default)]
pub struct LogTail {
    logs: HashMap<PathBuf, LogRead>,
    /// Bytes read from disk, all logs, ever.
    read_bytes: u64,
}

impl LogTail {
    /// The log at `path` read up to its last complete record: its bytes
    /// (up to there) and its records. Reads only what was appended since
    /// the last call, unless the file changed under what was read (another
    /// file, cut shorter, or its last record rewritten: ZooKeeper truncates
    /// a follower's log that went past its leader's).
    pub fn read(&mut self, path: &Path) -> std::io::Result<(Arc<Vec<u8>>, &[Record])> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let id = Some((meta.dev(), meta.ino()));
        let log = self.logs.entry(path.to_path_buf()).or_default();
        if log.file != id || !still_there(&file, meta.len(), log)? {
            *log = LogRead {
                file: id,
                ..LogRead::default()
            };
        }
        if !log.foreign {
            self.read_bytes += read_on(&mut file, log)?;
        }
        Ok((log.bytes.clone(), &log.records))
    }

    /// Bytes read from disk so far, all logs.
    pub fn read_bytes(&self) -> u64 {
        self.read_bytes
    }

    /// Forgets the logs not in `paths` (ZooKeeper purged them).
    pub fn keep_only(&mut self, paths: &[&Path]) {
        self.logs.retain(|p, _| paths.contains(&p.as_path()));
    }
}

/// Whether what was read is still what the file holds: as long, and its
/// last complete record (or its header) the same bytes.
fn still_there(file: &File, len: u64, log: &LogRead) -> std::io::Result<bool> {
    let have = log.bytes.len();
    if len < have as u64 {
        return Ok(false);
    }
    let span = log
        .records
        .last()
        .map_or(0..have.min(LOG_HEADER), |r| r.span.clone());
    let mut now = vec![0; span.len()];
    file.read_exact_at(&mut now, span.start as u64)?;
    Ok(log.bytes.get(span) == Some(&now[..]))
}

/// Reads `log` on from where it stopped, a piece at a time, up to the
/// padding or the end of the file; keeps the bytes up to its last complete
/// record (a record still being written is read again next time). Returns
/// the bytes it read.
fn read_on(file: &mut File, log: &mut LogRead) -> std::io::Result<u64> {
    let bytes = Arc::make_mut(&mut log.bytes);
    file.seek(SeekFrom::Start(bytes.len() as u64))?;
    let mut end = log.records.last().map_or(LOG_HEADER, |r| r.span.end);
    let mut read = 0;
    loop {
        let got = file.by_ref().take(PIECE).read_to_end(bytes)?;
        read += got as u64;
        if bytes.len() < LOG_HEADER {
            if got == 0 {
                break;
            }
            continue;
        }
        if log.records.is_empty() && txnlog::check_magic(bytes).is_err() {
            log.foreign = true;
            bytes.clear();
            return Ok(read);
        }
        let found = txnlog::records_from(bytes, end);
        if let Some(last) = found.last() {
            end = last.span.end;
        }
        log.records.extend(found);
        if got == 0 || txnlog::end_at(bytes, end) == LogEnd::Ends {
            break;
        }
    }
    bytes.truncate(end.min(bytes.len()));
    Ok(read)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zkop_spec::zk::Zxid;

    use super::*;

    fn record(counter: u32, body_len: usize) -> Vec<u8> {
        let zxid = Zxid { epoch: 1, counter };
        txnlog::record_bytes(zxid, u64::from(counter), &vec![7; body_len])
    }

    fn zxids(records: &[Record]) -> Vec<u32> {
        records.iter().map(|r| r.zxid.counter).collect()
    }

    #[test]
    fn a_growing_log_is_read_on_from_its_last_record_and_never_past_the_padding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.100000001");
        let mut f = File::create(&path).unwrap();
        f.write_all(&txnlog::log_header()).unwrap();
        f.write_all(&record(1, 10)).unwrap();
        // Preallocated as ZooKeeper does: zeros well past the records.
        f.set_len(8 * PIECE).unwrap();
        let mut tail = LogTail::default();
        let (bytes, records) = tail.read(&path).unwrap();
        assert_eq!(zxids(records), [1]);
        assert_eq!(bytes.len(), LOG_HEADER + record(1, 10).len());
        // One piece read, not the 8 pieces of the file.
        assert_eq!(tail.read_bytes(), PIECE);

        // ZooKeeper appends two records, one longer than a piece, and starts
        // a third (cut short: still being written).
        let mut more = record(2, 10);
        more.extend(record(3, PIECE as usize + 100));
        let torn = record(4, 10);
        more.extend(&torn[..torn.len() / 2]);
        f.write_all_at(&more, bytes.len() as u64).unwrap();
        let before = tail.read_bytes();
        let (_, records) = tail.read(&path).unwrap();
        assert_eq!(zxids(records), [1, 2, 3]);
        // From the end of record 1 on, up to the padding: what was appended
        // and the rest of the piece it ended in.
        assert!(tail.read_bytes() - before <= more.len() as u64 + PIECE);
        let before = tail.read_bytes();
        assert_eq!(zxids(tail.read(&path).unwrap().1), [1, 2, 3]);
        assert_eq!(
            tail.read_bytes() - before,
            PIECE,
            "read again from the record still being written"
        );

        // The third completes.
        let at = LOG_HEADER
            + [
                record(1, 10),
                record(2, 10),
                record(3, PIECE as usize + 100),
            ]
            .iter()
            .map(Vec::len)
            .sum::<usize>();
        f.write_all_at(&torn, at as u64).unwrap();
        let (bytes, records) = tail.read(&path).unwrap();
        assert_eq!(zxids(records), [1, 2, 3, 4]);
        assert_eq!(txnlog::records(&bytes).unwrap(), records);
    }

    #[test]
    fn a_log_truncated_and_rewritten_is_read_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.100000001");
        let mut log = txnlog::log_header();
        log.extend(record(1, 10));
        log.extend(record(2, 10));
        std::fs::write(&path, &log).unwrap();
        let mut tail = LogTail::default();
        assert_eq!(zxids(tail.read(&path).unwrap().1), [1, 2]);
        // ZooKeeper truncated it after 1 (a follower past its leader) and
        // wrote another 2, longer, in its place.
        let mut rewritten = txnlog::log_header();
        rewritten.extend(record(1, 10));
        rewritten.extend(record(2, 30));
        std::fs::write(&path, &rewritten).unwrap();
        let (bytes, records) = tail.read(&path).unwrap();
        assert_eq!(zxids(records), [1, 2]);
        assert_eq!(&bytes[..], &rewritten[..]);
        // Not a log at all: nothing in it.
        std::fs::write(&path, b"not a transaction log at all").unwrap();
        assert!(tail.read(&path).unwrap().1.is_empty());
    }
}
