//! A restore: the files a ZooKeeper data directory needs to come back at a
//! point, written from a backup. The newest snapshot whose trailer zxid is at
//! or below the point, the segments from the one holding the transaction
//! after it on, the last one cut exactly at the point, and no newer snapshot
//! (ZooKeeper loads the newest it finds). Every object is checked against
//! its manifest's checksum, and the segments against each other, before
//! anything is written.

use std::path::Path;

use zkop_spec::backup::RestorePoint;
use zkop_spec::backup::manifest::{self, PointManifest, RestoreError};
use zkop_spec::txnlog;
use zkop_spec::zk::Zxid;

use super::{BackupError, Store};

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The point's manifest key.
    pub point: String,
    /// The zxid the data directory now ends at.
    pub zxid: Zxid,
    /// The files written into `version-2`.
    pub files: Vec<String>,
}

/// The zxid `to` means in this backup.
pub async fn resolve(
    store: &Store,
    points: &[PointManifest],
    to: RestorePoint,
) -> Result<Zxid, BackupError> {
    match to {
        RestorePoint::Zxid { zxid } => Ok(zxid),
        RestorePoint::Newest => Ok(manifest::newest(points).ok_or(RestoreError::Empty)?),
        RestorePoint::Time { unix_ms } => {
            let seg = manifest::segment_at_time(points, unix_ms)?;
            let bytes = store.get_object(&seg.object, "its point").await?;
            let records =
                txnlog::records(&bytes).map_err(|e| BackupError::corrupt(&seg.object.key, e))?;
            records
                .iter()
                .take_while(|r| r.time_ms <= unix_ms)
                .last()
                .map(|r| r.zxid)
                .ok_or(BackupError::Restore(RestoreError::TooEarly(unix_ms)))
        }
    }
}

/// ZooKeeper's own file name for a zxid: lower-case hex, no padding.
fn zk_name(prefix: &str, z: Zxid) -> String {
    format!("{prefix}.{:x}", z.as_u64())
}

/// Fetches and checks what a restore of `point` to `to` needs: the snapshot
/// and one log file of the segments after it, cut at `to` (name, bytes).
pub async fn fetch(
    store: &Store,
    point: &PointManifest,
    to: Zxid,
) -> Result<Vec<(String, Vec<u8>)>, BackupError> {
    let by = point.key();
    let snap = store.get_object(&point.snapshot.object, &by).await?;
    let trailer = txnlog::snapshot_trailer_zxid(&snap)
        .map_err(|e| BackupError::corrupt(&point.snapshot.object.key, e))?;
    if trailer != point.snapshot.trailer_zxid {
        return Err(BackupError::corrupt(
            &point.snapshot.object.key,
            format!(
                "its trailer zxid is {trailer}, the manifest says {}",
                point.snapshot.trailer_zxid
            ),
        ));
    }
    let mut files = vec![(zk_name("snapshot", point.snapshot.zxid), snap)];
    let mut log: Option<(String, Vec<u8>)> = None;
    let mut at = point.snapshot.zxid;
    for seg in point.segments_to(to) {
        let key = &seg.object.key;
        let bytes = store.get_object(&seg.object, &by).await?;
        let records = txnlog::records(&bytes).map_err(|e| BackupError::corrupt(key, e))?;
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Err(BackupError::corrupt(key, "holds no complete record"));
        };
        if first.zxid != seg.first || last.zxid != seg.last {
            return Err(BackupError::corrupt(
                key,
                format!(
                    "holds {}..={}, the manifest says {}..={}",
                    first.zxid, last.zxid, seg.first, seg.last
                ),
            ));
        }
        if let Some(w) = records
            .windows(2)
            .find(|w| !txnlog::follows(w[0].zxid, w[1].zxid))
        {
            return Err(BackupError::corrupt(
                key,
                format!("skips from {} to {}", w[0].zxid, w[1].zxid),
            ));
        }
        if seg.first > at && !txnlog::follows(at, seg.first) {
            return Err(BackupError::corrupt(
                key,
                format!("starts at {}, after a gap from {at}", seg.first),
            ));
        }
        let cut = if seg.last > to {
            txnlog::segment(&bytes, seg.first, to)
                .map_err(|e| BackupError::corrupt(key, e))?
                .ok_or_else(|| BackupError::corrupt(key, format!("holds nothing up to {to}")))?
        } else {
            bytes
        };
        at = at.max(seg.last.min(to));
        // One log file of every segment (each is the log header and its
        // records): thousands of small files would slow ZooKeeper's load.
        match &mut log {
            None => log = Some((zk_name("log", seg.first), cut)),
            Some((_, bytes)) => bytes.extend_from_slice(&cut[txnlog::LOG_HEADER..]),
        }
    }
    files.extend(log);
    if at < to {
        return Err(BackupError::Restore(RestoreError::NotCovered {
            to,
            covered: format!("{}..={at}", point.snapshot.trailer_zxid),
        }));
    }
    Ok(files)
}

/// Restores the backup at `to` into `data_dir/version-2`, which must not
/// exist: written beside it first and renamed in whole.
pub async fn restore_into(
    store: &Store,
    to: RestorePoint,
    data_dir: &Path,
) -> Result<Restored, BackupError> {
    let points = store.points().await?;
    let zxid = resolve(store, &points, to).await?;
    let point = manifest::point_for(&points, zxid)?;
    let files = fetch(store, point, zxid).await?;
    let io = |key: &str| {
        let key = key.to_string();
        let target = data_dir.display().to_string();
        move |source| BackupError::Io {
            target,
            key,
            source,
        }
    };
    let version2 = data_dir.join("version-2");
    if version2.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists: a restore never writes over a server's data",
            version2.display()
        )));
    }
    let staging = data_dir.join("version-2.restoring");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io("version-2.restoring"))?;
    }
    for (name, bytes) in &files {
        crate::files::write_atomic(&staging.join(name), bytes, 0o600).map_err(io(name))?;
    }
    std::fs::rename(&staging, &version2).map_err(io("version-2"))?;
    Ok(Restored {
        point: point.key(),
        zxid,
        files: files.into_iter().map(|(n, _)| n).collect(),
    })
}
