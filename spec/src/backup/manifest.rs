//! A backup's layout, pure: the objects it holds (snapshots, log segments,
//! one manifest per point), how they are named, what a point can restore,
//! which objects a restore needs and which a pruning may delete.
//!
//! A **point** is one snapshot plus the log segments after it; it restores
//! exactly to any zxid from the snapshot's trailer zxid (a snapshot is fuzzy)
//! to its last shipped transaction. The newest point grows as segments are
//! shipped; when a fresh snapshot starts a new point, the old one is sealed.
//! Points of one unbroken history share segments.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::txnlog::follows;
use crate::zk::Zxid;

/// How many tree digests a point keeps (ZooKeeper publishes one every 128
/// zxids; a drill checks the newest).
pub const MAX_DIGESTS: usize = 16;

/// The manifest format this release writes and reads.
pub const FORMAT: u32 = 1;

/// One stored object: its key under the backup's root, its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// The key, e.g. `logs/0000000100000001-0000000100000040-1f2e3d4c5b6a.log`.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// A snapshot in the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    /// The object.
    pub object: ObjectRef,
    /// The zxid in its name: where ZooKeeper started writing it.
    pub zxid: Zxid,
    /// Its tree digest's zxid: it holds every transaction up to this one.
    pub trailer_zxid: Zxid,
    /// Made by a throwaway server on a restored copy (exact: its zxid is
    /// its trailer zxid), not by the ensemble's own ZooKeeper.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
}

/// A log segment: a ZooKeeper log file of the complete records `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentRef {
    /// The object.
    pub object: ObjectRef,
    /// Its first transaction.
    pub first: Zxid,
    /// Its last transaction.
    pub last: Zxid,
    /// When its first transaction was proposed (ms since the Unix epoch).
    pub first_time_ms: u64,
    /// When its last transaction was proposed.
    pub last_time_ms: u64,
    /// The SHA-256 (hex) of its last transaction's record as the log holds
    /// it (checksum, length, transaction): a shipper continues a point only
    /// from that very transaction, not just its zxid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_record_sha256: Option<String>,
}

/// Where a point's history left another point's: the transactions in
/// `(after, upto]` are `point`'s, not this history's (a branch a forced
/// recovery or a restore into the same backup location left behind, or
/// transactions the shipping node skipped by a snapshot sync), so this point
/// never restores to them and never continues that point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Divergence {
    /// The other branch's point.
    pub point: String,
    /// The newest transaction both histories hold, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Zxid>,
    /// The other branch's last transaction.
    pub upto: Zxid,
}

impl Divergence {
    /// Whether `to` lies in the range only the other branch holds.
    pub fn only_in_other(&self, to: Zxid) -> bool {
        self.after.is_none_or(|a| a < to) && to <= self.upto
    }

    /// One line for `zkop backup list`. The other branch's transactions
    /// past `after` may be ones this history never had (a forced recovery)
    /// or ones this node skipped by a snapshot sync: either way this point
    /// never restores them, and says so rather than guess which.
    pub fn describe(&self) -> String {
        let from = self
            .after
            .map(|a| format!(" after {a}"))
            .unwrap_or_default();
        format!(
            "left {}: its transactions{from} up to {} are not this history's; a restore reaches them only from that point",
            self.point, self.upto
        )
    }
}

/// Who shipped a point: a controller's epoch fences an older shipper out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipper {
    /// The instance.
    pub instance: String,
    /// Its member's server id.
    pub server_id: u64,
    /// The controller epoch that gave it the job.
    pub epoch: u64,
}

/// A tree digest ZooKeeper published (`hash`), recorded for restore drills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeDigest {
    /// The zxid it is the digest at.
    pub zxid: Zxid,
    /// The digest, as ZooKeeper prints it.
    pub digest: String,
}

/// The manifest of one point: `points/<snapshot zxid>-<created ms>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointManifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The cluster whose data this is.
    pub cluster: String,
    /// The snapshot the point starts from.
    pub snapshot: SnapshotRef,
    /// The segments after it, in zxid order.
    pub segments: Vec<SegmentRef>,
    /// When the point was started (ms since the Unix epoch).
    pub created_ms: u64,
    /// When a segment was last added.
    pub updated_ms: u64,
    /// Who ships it.
    pub shipper: Shipper,
    /// A newer point continues from here: nothing more is added.
    #[serde(default)]
    pub sealed: bool,
    /// Tree digests seen while shipping, newest last.
    #[serde(default)]
    pub digests: Vec<TreeDigest>,
    /// The branch this point's history left, when it started because this
    /// node's history does not hold the previous point's last transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<Divergence>,
}

/// Hex as ZooKeeper names its files, padded so that keys sort by zxid.
fn hex(z: Zxid) -> String {
    format!("{:016x}", z.as_u64())
}

/// A snapshot's key: `snapshots/<zxid>-<trailer zxid>-<sha256 prefix>.snap`.
pub fn snapshot_key(zxid: Zxid, trailer: Zxid, sha256: &str) -> String {
    format!(
        "snapshots/{}-{}-{}.snap",
        hex(zxid),
        hex(trailer),
        &sha256[..sha256.len().min(12)]
    )
}

/// A segment's key: `logs/<first>-<last>-<sha256 prefix>.log`.
pub fn segment_key(first: Zxid, last: Zxid, sha256: &str) -> String {
    format!(
        "logs/{}-{}-{}.log",
        hex(first),
        hex(last),
        &sha256[..sha256.len().min(12)]
    )
}

/// A point's manifest key: `points/<snapshot zxid>-<created ms>.json` (two
/// histories, before and after a restore, may hold the same snapshot zxid).
pub fn point_key(snapshot_zxid: Zxid, created_ms: u64) -> String {
    format!("points/{}-{created_ms:013}.json", hex(snapshot_zxid))
}

/// Whether `key` names a point's manifest.
pub fn is_point_key(key: &str) -> bool {
    key.strip_prefix("points/")
        .and_then(|k| k.strip_suffix(".json"))
        .and_then(|k| k.split_once('-'))
        .is_some_and(|(z, t)| {
            z.len() == 16 && u64::from_str_radix(z, 16).is_ok() && t.parse::<u64>().is_ok()
        })
}

impl PointManifest {
    /// Its key.
    pub fn key(&self) -> String {
        point_key(self.snapshot.zxid, self.created_ms)
    }

    /// The last transaction it holds.
    pub fn last(&self) -> Zxid {
        self.segments
            .last()
            .map_or(self.snapshot.zxid, |s| s.last)
            .max(self.snapshot.zxid)
    }

    /// The zxids it restores exactly to, when any: from the snapshot's
    /// trailer zxid (all the snapshot may hold) to the last shipped one.
    pub fn restorable(&self) -> Option<(Zxid, Zxid)> {
        let (low, high) = (self.snapshot.trailer_zxid, self.last());
        (low <= high).then_some((low, high))
    }

    /// Whether it restores exactly to `to`: in its range, and not a
    /// transaction only the branch it diverged from holds.
    pub fn restores_to(&self, to: Zxid) -> bool {
        self.restorable()
            .is_some_and(|(lo, hi)| lo <= to && to <= hi)
            && !self.diverged.as_ref().is_some_and(|d| d.only_in_other(to))
    }

    /// The digest of its last transaction's record, when its last segment
    /// ends there and recorded one.
    pub fn last_record_sha256(&self) -> Option<&str> {
        self.segments
            .last()
            .filter(|s| s.last == self.last())
            .and_then(|s| s.last_record_sha256.as_deref())
    }

    /// Records the digests in `seen` that a restore of this point can check:
    /// those past the snapshot's trailer (a restore replays up to them, so
    /// ZooKeeper recomputes them) and not past the last shipped transaction.
    /// Keeps the newest [`MAX_DIGESTS`]; says whether any was new.
    pub fn record_digests(&mut self, seen: &[TreeDigest]) -> bool {
        let (low, high) = (self.snapshot.trailer_zxid, self.last());
        let before = self.digests.len();
        for d in seen.iter().filter(|d| low < d.zxid && d.zxid <= high) {
            if !self.digests.iter().any(|k| k.zxid == d.zxid) {
                self.digests.push(d.clone());
            }
        }
        let changed = self.digests.len() != before;
        self.digests.sort_by_key(|d| d.zxid);
        let extra = self.digests.len().saturating_sub(MAX_DIGESTS);
        self.digests.drain(..extra);
        changed
    }

    /// The first place where its segments do not follow on from the
    /// snapshot without a missing transaction, if there is one.
    pub fn gap(&self) -> Option<String> {
        let mut at = self.snapshot.zxid;
        for s in &self.segments {
            if s.first > at && !follows(at, s.first) {
                return Some(format!(
                    "transactions after {at} are missing: the next segment {} starts at {}",
                    s.object.key, s.first
                ));
            }
            if s.last < s.first {
                return Some(format!("segment {} ends before it starts", s.object.key));
            }
            at = at.max(s.last);
        }
        None
    }

    /// Every object it needs, its manifest aside.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectRef> {
        std::iter::once(&self.snapshot.object).chain(self.segments.iter().map(|s| &s.object))
    }

    /// The segments a restore to `to` needs: those holding transactions after
    /// the snapshot, up to the one holding `to`.
    pub fn segments_to(&self, to: Zxid) -> Vec<&SegmentRef> {
        self.segments
            .iter()
            .filter(|s| s.last > self.snapshot.zxid && s.first <= to)
            .collect()
    }
}

/// Why a backup cannot restore to a point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The backup holds no point at all.
    #[error("the backup holds no point to restore")]
    Empty,
    /// No point restores exactly to the zxid asked for.
    #[error("no backup point restores exactly to {to}: the points cover {covered}")]
    NotCovered {
        /// The zxid asked for.
        to: Zxid,
        /// What the points cover, for the person to choose.
        covered: String,
    },
    /// The backup starts after the time asked for.
    #[error("the backup holds no transaction at or before {0} ms since the epoch")]
    TooEarly(u64),
}

/// The newest zxid any point restores to exactly, on the newest branch: a
/// point another point's history left (a forced recovery's lost shipper's,
/// say) is not the cluster's newest state, however high its zxids.
pub fn newest(points: &[PointManifest]) -> Option<Zxid> {
    let left_behind: Vec<&str> = points
        .iter()
        .filter_map(|p| p.diverged.as_ref().map(|d| d.point.as_str()))
        .collect();
    points
        .iter()
        .filter(|p| !left_behind.contains(&p.key().as_str()))
        .filter(|p| p.gap().is_none())
        .filter_map(|p| p.restorable().map(|(_, high)| high))
        .max()
}

/// The point to restore `to` from: the one with the newest snapshot among
/// those that restore exactly to it (the fewest transactions to replay).
pub fn point_for(points: &[PointManifest], to: Zxid) -> Result<&PointManifest, RestoreError> {
    if points.is_empty() {
        return Err(RestoreError::Empty);
    }
    points
        .iter()
        .filter(|p| p.gap().is_none())
        .filter(|p| p.restores_to(to))
        .max_by_key(|p| p.snapshot.zxid)
        .ok_or_else(|| RestoreError::NotCovered {
            to,
            covered: points
                .iter()
                .map(|p| match p.restorable() {
                    Some((lo, hi)) => format!("{lo}..={hi}"),
                    None => format!("nothing yet ({})", p.key()),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The newest recorded tree digest a restore can check: a restore to its
/// zxid replays up to it from an older snapshot (a snapshot whose trailer is
/// at the digest's zxid would be loaded without replaying, and ZooKeeper
/// would not publish it).
pub fn digest_to_check(points: &[PointManifest]) -> Option<&TreeDigest> {
    points
        .iter()
        .flat_map(|p| p.digests.iter())
        .filter(|d| point_for(points, d.zxid).is_ok_and(|p| p.snapshot.trailer_zxid < d.zxid))
        .max_by_key(|d| d.zxid)
}

/// The segment holding the last transaction at or before `unix_ms`: the one
/// starting latest among those whose first transaction is not after it.
pub fn segment_at_time(
    points: &[PointManifest],
    unix_ms: u64,
) -> Result<&SegmentRef, RestoreError> {
    points
        .iter()
        .flat_map(|p| p.segments.iter())
        .filter(|s| s.first_time_ms <= unix_ms)
        .max_by_key(|s| (s.first, std::cmp::Reverse(s.last)))
        .ok_or(RestoreError::TooEarly(unix_ms))
}

/// What a pruning deletes: the manifests of points no longer kept, then the
/// objects no kept point needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruning {
    /// Point manifests to delete.
    pub points: Vec<String>,
    /// Snapshots and segments to delete.
    pub objects: Vec<String>,
}

/// Which points and objects retention lets go: the `keep` newest points and
/// every point younger than `keep_for` stay, and so does every object a
/// staying point needs (points share segments). The newest point always stays.
/// `stored` lists every snapshot and segment key the backup holds.
pub fn prune(
    points: &[PointManifest],
    stored: &[String],
    keep: u32,
    keep_for_ms: Option<u64>,
    now_ms: u64,
) -> Pruning {
    let mut by_age: Vec<&PointManifest> = points.iter().collect();
    by_age.sort_by_key(|p| std::cmp::Reverse(p.snapshot.zxid));
    let keep = (keep as usize).max(1);
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    for (i, p) in by_age.into_iter().enumerate() {
        let young = keep_for_ms.is_some_and(|f| now_ms.saturating_sub(p.created_ms) < f);
        if i < keep || young {
            kept.push(p);
        } else {
            gone.push(p);
        }
    }
    let needed: BTreeSet<&str> = kept
        .iter()
        .flat_map(|p| p.objects().map(|o| o.key.as_str()))
        .collect();
    // An object no manifest names yet may be a shipment in flight: it goes
    // only when a pruned point named it.
    let named_by_gone: BTreeSet<&str> = gone
        .iter()
        .flat_map(|p| p.objects().map(|o| o.key.as_str()))
        .collect();
    Pruning {
        points: gone.iter().map(|p| p.key()).collect(),
        objects: stored
            .iter()
            .filter(|k| named_by_gone.contains(k.as_str()) && !needed.contains(k.as_str()))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
