//! This node's transaction history as its data directory holds it: the
//! complete snapshots and the log records, in zxid order, read for shipping.

use std::path::{Path, PathBuf};

use zkop_spec::txnlog::{self, FileKind, zxid_of_file_name};
use zkop_spec::zk::Zxid;

/// A complete snapshot on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSnapshot {
    /// The zxid in its name.
    pub zxid: Zxid,
    /// Its file.
    pub path: PathBuf,
}

/// One log record on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRecord {
    /// Its zxid.
    pub zxid: Zxid,
    /// When it was proposed (ms since the Unix epoch).
    pub time_ms: u64,
    /// Which of [`History::logs`] holds it.
    pub log: usize,
}

/// The logs (names and bytes) and their records, from the one holding
/// the transaction after `after` on.
#[derive(Debug, Default)]
pub struct History {
    /// `(file name, bytes)` in zxid order.
    pub logs: Vec<(String, Vec<u8>)>,
    /// Every complete record of those logs, in file order.
    pub records: Vec<LocalRecord>,
    /// The zxids of every snapshot on disk.
    pub snapshots: Vec<Zxid>,
}

/// Files of one kind, by the zxid in their names.
pub type Named = Vec<(Zxid, PathBuf)>;

/// The snapshots and the logs in `version2`, each in zxid order.
pub fn files(version2: &Path) -> (Named, Named) {
    let (mut snaps, mut logs) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(version2).into_iter().flatten().flatten() {
        match e.file_name().to_str().and_then(zxid_of_file_name) {
            Some((FileKind::Snapshot, z)) => snaps.push((z, e.path())),
            Some((FileKind::Log, z)) => logs.push((z, e.path())),
            None => {}
        }
    }
    snaps.sort();
    logs.sort();
    (snaps, logs)
}

/// The newest complete snapshot (a snapshot being written is skipped).
pub fn newest_snapshot(version2: &Path) -> Option<LocalSnapshot> {
    newest_snapshot_after(version2, None)
}

/// The newest complete snapshot named above `after`: only those are read
/// (a snapshot can be tens of megabytes, and this runs every shipment).
pub fn newest_snapshot_after(version2: &Path, after: Option<Zxid>) -> Option<LocalSnapshot> {
    files(version2)
        .0
        .into_iter()
        .filter(|(z, _)| after.is_none_or(|a| *z > a))
        .rev()
        .find_map(|(zxid, path)| {
            let bytes = std::fs::read(&path).ok()?;
            txnlog::snapshot_trailer_zxid(&bytes).ok()?;
            Some(LocalSnapshot { zxid, path })
        })
}

/// The logs that may hold transactions after `after`: the newest one
/// starting at or before it, and every later one.
pub fn read_after(version2: &Path, after: Zxid) -> std::io::Result<History> {
    let (snaps, logs) = files(version2);
    let from = logs
        .iter()
        .rposition(|(start, _)| *start <= after)
        .unwrap_or(0);
    let mut h = History {
        snapshots: snaps.into_iter().map(|(z, _)| z).collect(),
        ..History::default()
    };
    for (start, path) in logs.into_iter().skip(from) {
        let bytes = std::fs::read(&path)?;
        let Ok(records) = txnlog::records(&bytes) else {
            continue;
        };
        let log = h.logs.len();
        h.records.extend(records.into_iter().map(|r| LocalRecord {
            zxid: r.zxid,
            time_ms: r.time_ms,
            log,
        }));
        h.logs.push((format!("log.{:x}", start.as_u64()), bytes));
    }
    Ok(h)
}

impl History {
    /// The records after `after` up to `upto` that follow on from it with no
    /// transaction missing, up to the first gap; `None` when this node lacks
    /// the very next one, or holds later ones but not `after` itself (in a
    /// log or as a snapshot): its history may have diverged from the
    /// backup's there (a forced recovery whose lost shipper had shipped
    /// transactions the survivor never had; a restore to an earlier point
    /// shipping into its own backup), so appending would splice two
    /// histories. Crossing into a new epoch counts as a gap when a snapshot
    /// lies between (a leader's snapshot sync: the transactions before it
    /// are not in this node's logs).
    pub fn continuing(&self, after: Zxid, upto: Zxid) -> Option<Vec<&LocalRecord>> {
        let mut prev = after;
        let mut out = Vec::new();
        let newer = || {
            self.records
                .iter()
                .filter(|r| r.zxid > after && r.zxid <= upto)
        };
        let holds_after =
            self.records.iter().any(|r| r.zxid == after) || self.snapshots.contains(&after);
        if !holds_after && newer().next().is_some() {
            return None;
        }
        for r in newer() {
            let synced_between = r.zxid.epoch != prev.epoch
                && self.snapshots.iter().any(|s| prev < *s && *s < r.zxid);
            if !txnlog::follows(prev, r.zxid) || synced_between {
                break;
            }
            prev = r.zxid;
            out.push(r);
        }
        if out.is_empty() && newer().next().is_some() {
            return None;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(e: u32, c: u32) -> Zxid {
        Zxid {
            epoch: e,
            counter: c,
        }
    }

    fn history(zxids: &[Zxid], snapshots: &[Zxid]) -> History {
        History {
            logs: vec![],
            records: zxids
                .iter()
                .map(|&zxid| LocalRecord {
                    zxid,
                    time_ms: 0,
                    log: 0,
                })
                .collect(),
            snapshots: snapshots.to_vec(),
        }
    }

    fn zxids(v: Option<Vec<&LocalRecord>>) -> Option<Vec<Zxid>> {
        v.map(|v| v.iter().map(|r| r.zxid).collect())
    }

    #[test]
    fn shipping_continues_only_from_the_next_transaction_and_stops_at_a_gap() {
        let h = history(&[z(1, 1), z(1, 2), z(1, 3), z(1, 5), z(2, 1)], &[]);
        assert_eq!(
            zxids(h.continuing(z(1, 1), z(9, 9))),
            Some(vec![z(1, 2), z(1, 3)])
        );
        // Nothing past the server's processed zxid.
        assert_eq!(zxids(h.continuing(z(1, 1), z(1, 2))), Some(vec![z(1, 2)]));
        // This node lacks 0x100000004, the transaction after 0x100000003.
        assert_eq!(zxids(h.continuing(z(1, 3), z(9, 9))), None);
        // Nor does it hold 0x100000004 itself: nothing proves its history
        // and the backup's agree there.
        assert_eq!(zxids(h.continuing(z(1, 4), z(9, 9))), None);
        assert_eq!(zxids(h.continuing(z(1, 5), z(9, 9))), Some(vec![z(2, 1)]));
        assert_eq!(zxids(h.continuing(z(2, 1), z(9, 9))), Some(vec![]));
    }

    #[test]
    fn backup_continuity_a_backup_ahead_of_this_node_on_a_diverged_branch_is_never_continued() {
        // Issue 24, finding 2: the lost shipper shipped 0x100000006..7,
        // which the survivor never had; the survivor was forced into epoch 2
        // and wrote 0x200000001.. on top of 0x100000005.
        let survivor = history(&[z(1, 4), z(1, 5), z(2, 1), z(2, 2)], &[]);
        assert_eq!(zxids(survivor.continuing(z(1, 7), z(9, 9))), None);
        // A node merely behind the backup waits to catch up.
        let behind = history(&[z(1, 4), z(1, 5)], &[]);
        assert_eq!(zxids(behind.continuing(z(1, 7), z(9, 9))), Some(vec![]));
        // A point that starts at one of this node's snapshots continues.
        let snapped = history(&[z(2, 3), z(2, 4)], &[z(2, 2)]);
        assert_eq!(
            zxids(snapped.continuing(z(2, 2), z(9, 9))),
            Some(vec![z(2, 3), z(2, 4)])
        );
    }

    #[test]
    fn a_snapshot_sync_across_epochs_is_a_gap() {
        // Synced by a snapshot at 0x100000009: 0x100000006..9 are in no log here.
        let h = history(&[z(1, 5), z(2, 1)], &[z(1, 9)]);
        assert_eq!(zxids(h.continuing(z(1, 5), z(9, 9))), None);
    }
}
