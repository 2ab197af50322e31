//! This node's transaction history as its data directory holds it: the
//! complete snapshots and the log records, in zxid order, read for shipping.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zkop_spec::txnlog::{self, FileKind, zxid_of_file_name};
use zkop_spec::zk::Zxid;

use crate::logtail::LogTail;

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
    /// Where in that log its record lies.
    pub span: std::ops::Range<usize>,
}

/// Why a backup point cannot be continued from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discontinuity {
    /// This node lacks the transaction after the point's last (it was
    /// synced by a snapshot): a new point, nothing diverged.
    Gap,
    /// This node's history does not hold the point's last transaction (it
    /// holds later ones, or another transaction under that zxid): the two
    /// histories parted. `fork` is the newest zxid before it this node
    /// holds, as far as its logs and snapshots show.
    Diverged {
        /// The newest transaction both may share.
        fork: Option<Zxid>,
    },
}

/// The logs (names and bytes) and their records, from the one holding
/// the transaction after `after` on.
#[derive(Debug, Default)]
pub struct History {
    /// `(file name, bytes up to its last complete record)` in zxid order.
    pub logs: Vec<(String, Arc<Vec<u8>>)>,
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
/// starting at or before it, and every later one, read on from where `tail`
/// stopped.
pub fn read_after(version2: &Path, after: Zxid, tail: &mut LogTail) -> std::io::Result<History> {
    let (snaps, logs) = files(version2);
    let from = logs
        .iter()
        .rposition(|(start, _)| *start <= after)
        .unwrap_or(0);
    let logs = &logs[from.min(logs.len())..];
    tail.keep_only(&logs.iter().map(|(_, p)| p.as_path()).collect::<Vec<_>>());
    let mut h = History {
        snapshots: snaps.into_iter().map(|(z, _)| z).collect(),
        ..History::default()
    };
    for (start, path) in logs {
        let (bytes, records) = match tail.read(path) {
            Ok(read) => read,
            // Purged between the listing and the read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if records.is_empty() {
            continue;
        }
        let log = h.logs.len();
        h.records.extend(records.iter().map(|r| LocalRecord {
            zxid: r.zxid,
            time_ms: r.time_ms,
            log,
            span: r.span.clone(),
        }));
        h.logs.push((format!("log.{:x}", start.as_u64()), bytes));
    }
    Ok(h)
}

impl History {
    /// Whether this node's logs or snapshots hold `zxid`.
    pub fn holds(&self, zxid: Zxid) -> bool {
        self.records.iter().any(|r| r.zxid == zxid) || self.snapshots.contains(&zxid)
    }

    /// The SHA-256 (hex) of `r`'s record as its log holds it.
    pub fn record_sha256(&self, r: &LocalRecord) -> Option<String> {
        let (_, bytes) = self.logs.get(r.log)?;
        bytes
            .get(r.span.clone())
            .map(zkop_runtime::backup::sha256_hex)
    }

    /// The records after `after` up to `upto` that follow on from it with no
    /// transaction missing, up to the first gap. Refused when this node
    /// lacks the very next one ([`Discontinuity::Gap`]), or when it holds
    /// later ones but not `after` itself (in a log or as a snapshot), or
    /// holds another transaction under `after`'s zxid than the one whose
    /// record digest the backup keeps ([`Discontinuity::Diverged`]): its
    /// history parted from the backup's there (a forced recovery whose lost
    /// shipper had shipped transactions the survivor never had; a restore
    /// to an earlier point shipping into its own backup), so appending
    /// would splice two histories. Crossing into a new epoch counts as a gap
    /// when a snapshot lies between (a leader's snapshot sync: the
    /// transactions before it are not in this node's logs).
    /// A node synced by a snapshot newer than `after`, whose logs cannot
    /// tell, trusts `known_fork` (the controller's record of the last forced
    /// recovery): `after` in its epoch past it is the lost branch.
    pub fn continuing(
        &self,
        after: Zxid,
        after_sha256: Option<&str>,
        upto: Zxid,
        known_fork: Option<Zxid>,
    ) -> Result<Vec<&LocalRecord>, Discontinuity> {
        let mut prev = after;
        let mut out = Vec::new();
        let newer = || {
            self.records
                .iter()
                .filter(|r| r.zxid > after && r.zxid <= upto)
        };
        let at_after = self.records.iter().find(|r| r.zxid == after);
        let contradicted = match (at_after, after_sha256) {
            (Some(r), Some(want)) => self.record_sha256(r).is_some_and(|have| have != want),
            _ => false,
        };
        let holds_after = match at_after {
            Some(_) => !contradicted,
            None => self.snapshots.contains(&after),
        };
        // A node synced by a snapshot newer than `after` (a member that
        // joined since, say) logged nothing at or before it: its logs cannot
        // tell whether that snapshot's history holds `after`. Unless the
        // controller's record of a forced recovery says `after` is past its
        // fork, it starts a new point (a gap) rather than claim a branch it
        // cannot see.
        let synced_past = self.snapshots.iter().any(|s| *s > after)
            && self.records.iter().all(|r| r.zxid > after);
        if synced_past && let Some(f) = known_fork.filter(|f| after > *f && after.epoch == f.epoch)
        {
            return Err(Discontinuity::Diverged { fork: Some(f) });
        }
        if contradicted || (!holds_after && !synced_past && newer().next().is_some()) {
            let fork = self
                .records
                .iter()
                .map(|r| r.zxid)
                .chain(self.snapshots.iter().copied())
                .filter(|z| *z < after)
                .max();
            return Err(Discontinuity::Diverged { fork });
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
            return Err(Discontinuity::Gap);
        }
        Ok(out)
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
                    span: 0..0,
                })
                .collect(),
            snapshots: snapshots.to_vec(),
        }
    }

    fn zxids(v: Result<Vec<&LocalRecord>, Discontinuity>) -> Option<Vec<Zxid>> {
        v.ok().map(|v| v.iter().map(|r| r.zxid).collect())
    }

    #[test]
    fn shipping_continues_only_from_the_next_transaction_and_stops_at_a_gap() {
        let h = history(&[z(1, 1), z(1, 2), z(1, 3), z(1, 5), z(2, 1)], &[]);
        assert_eq!(
            zxids(h.continuing(z(1, 1), None, z(9, 9), None)),
            Some(vec![z(1, 2), z(1, 3)])
        );
        // Nothing past the server's processed zxid.
        assert_eq!(
            zxids(h.continuing(z(1, 1), None, z(1, 2), None)),
            Some(vec![z(1, 2)])
        );
        // This node lacks 0x100000004, the transaction after 0x100000003.
        assert_eq!(zxids(h.continuing(z(1, 3), None, z(9, 9), None)), None);
        // Nor does it hold 0x100000004 itself: nothing proves its history
        // and the backup's agree there.
        assert_eq!(zxids(h.continuing(z(1, 4), None, z(9, 9), None)), None);
        assert_eq!(
            zxids(h.continuing(z(1, 5), None, z(9, 9), None)),
            Some(vec![z(2, 1)])
        );
        assert_eq!(
            zxids(h.continuing(z(2, 1), None, z(9, 9), None)),
            Some(vec![])
        );
    }

    #[test]
    fn backup_continuity_a_backup_ahead_of_this_node_on_a_diverged_branch_is_never_continued() {
        // Issue 24, finding 2: the lost shipper shipped 0x100000006..7,
        // which the survivor never had; the survivor was forced into epoch 2
        // and wrote 0x200000001.. on top of 0x100000005.
        let survivor = history(&[z(1, 4), z(1, 5), z(2, 1), z(2, 2)], &[]);
        assert_eq!(
            zxids(survivor.continuing(z(1, 7), None, z(9, 9), None)),
            None
        );
        // A node merely behind the backup waits to catch up.
        let behind = history(&[z(1, 4), z(1, 5)], &[]);
        assert_eq!(
            zxids(behind.continuing(z(1, 7), None, z(9, 9), None)),
            Some(vec![])
        );
        // A point that starts at one of this node's snapshots continues.
        let snapped = history(&[z(2, 3), z(2, 4)], &[z(2, 2)]);
        assert_eq!(
            zxids(snapped.continuing(z(2, 2), None, z(9, 9), None)),
            Some(vec![z(2, 3), z(2, 4)])
        );
    }

    #[test]
    fn a_snapshot_sync_across_epochs_is_a_gap() {
        // Synced by a snapshot at 0x100000009: 0x100000006..9 are in no log here.
        let h = history(&[z(1, 5), z(2, 1)], &[z(1, 9)]);
        assert_eq!(zxids(h.continuing(z(1, 5), None, z(9, 9), None)), None);
    }

    #[test]
    fn backup_continuity_a_member_synced_by_a_newer_snapshot_is_a_gap_not_a_branch() {
        // The survivor's new point ends at its snapshot 0x10000006c; a member
        // that joined since was synced by the leader's snapshot 0x200000003
        // and logged only what followed: nothing says it parted from the
        // point (seen in tests/backup_branches.rs as a second, false branch
        // "after 0x0").
        let joined = history(&[z(2, 4), z(2, 5)], &[z(0, 0), z(2, 3)]);
        assert_eq!(
            joined.continuing(z(1, 0x6c), None, z(9, 9), Some(z(1, 0x6c))),
            Err(Discontinuity::Gap)
        );
        // The lost shipper's point (up to 0x1000000d2), past the fork the
        // controller recorded at the forced recovery: the lost branch.
        assert_eq!(
            joined.continuing(z(1, 0xd2), None, z(9, 9), Some(z(1, 0x6c))),
            Err(Discontinuity::Diverged {
                fork: Some(z(1, 0x6c))
            })
        );
        assert_eq!(
            joined.continuing(z(1, 0xd2), None, z(9, 9), None),
            Err(Discontinuity::Gap),
            "no record of a fork: nothing to tell by"
        );
        // The survivor itself logged the old epoch up to its fork: a branch.
        let survivor = history(&[z(1, 0x6b), z(1, 0x6c), z(2, 1)], &[z(2, 3)]);
        assert_eq!(
            survivor.continuing(z(1, 0xd2), None, z(9, 9), None),
            Err(Discontinuity::Diverged {
                fork: Some(z(1, 0x6c))
            })
        );
    }

    #[test]
    fn backup_continuity_the_same_zxid_with_another_transaction_is_a_diverged_branch() {
        // Issue 24, finding 2, by content: this node holds 0x100000005, but
        // not the transaction the backup shipped under that zxid (its log
        // bytes differ). Two records in one log: 0x100000005 and 0x100000006.
        let log = b"record-five.record-six".to_vec();
        let h = History {
            logs: vec![("log.100000001".into(), Arc::new(log.clone()))],
            records: vec![
                LocalRecord {
                    zxid: z(1, 5),
                    time_ms: 0,
                    log: 0,
                    span: 0..11,
                },
                LocalRecord {
                    zxid: z(1, 6),
                    time_ms: 0,
                    log: 0,
                    span: 12..22,
                },
            ],
            snapshots: vec![z(1, 2)],
        };
        let same = zkop_runtime::backup::sha256_hex(b"record-five");
        assert_eq!(
            zxids(h.continuing(z(1, 5), Some(&same), z(9, 9), None)),
            Some(vec![z(1, 6)])
        );
        let other = zkop_runtime::backup::sha256_hex(b"another txn");
        assert_eq!(
            h.continuing(z(1, 5), Some(&other), z(9, 9), None),
            Err(Discontinuity::Diverged {
                fork: Some(z(1, 2))
            })
        );
        // Held later records but not the backup's last: diverged, with the
        // newest zxid below it this node holds as the fork.
        assert_eq!(
            h.continuing(z(1, 7), None, z(9, 9), None).err(),
            None,
            "a node behind the backup's last is not diverged: it waits"
        );
        let ahead = history(&[z(1, 4), z(2, 1)], &[]);
        assert_eq!(
            ahead.continuing(z(1, 6), None, z(9, 9), None),
            Err(Discontinuity::Diverged {
                fork: Some(z(1, 4))
            })
        );
    }
}
