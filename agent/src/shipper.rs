//! Shipping this member's transactions to the backup, when the controller
//! makes it the shipper: log segments of the records its server has
//! processed, continuing the newest point from its last transaction, and a
//! new point (with this node's newest snapshot) when that is not on this
//! node's disk or ZooKeeper wrote a newer snapshot.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use zkop_runtime::backup::{BackupError, Store};
use zkop_spec::backup::manifest::{
    self, Divergence, FORMAT, PointManifest, SegmentRef, Shipper as ShipperId, SnapshotRef,
    TreeDigest,
};
use zkop_spec::txnlog;
use zkop_spec::wire::{ShipOrder, ShippingReport};
use zkop_spec::zk::{ServerId, Zxid};

use crate::history::{self, Discontinuity, History, LocalRecord};
use crate::logtail::LogTail;
use crate::upkeep::{Done, Upkeep};

/// Who ships, and where the server stands.
pub struct ShipContext<'a> {
    /// The cluster's name (a backup holds one cluster's data).
    pub cluster: &'a str,
    /// The controller epoch that gave the job.
    pub epoch: u64,
    /// This instance.
    pub instance: &'a str,
    /// This member.
    pub server_id: ServerId,
    /// The server's client endpoint (its tree digests are read there).
    pub endpoint: &'a zkop_zk::Endpoint,
    /// The server's processed zxid (`srvr`): nothing past it is shipped.
    pub processed: Zxid,
    /// ZooKeeper's `dataDir/version-2`.
    pub version2: PathBuf,
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
    /// Where the last forced recovery forked the history (the controller's
    /// record), if one did.
    pub history_fork: Option<Zxid>,
}

/// One shipping job.
pub struct Shipper {
    order: ShipOrder,
    store: Store,
    /// The point being shipped to, as last written or read.
    point: Option<PointManifest>,
    last_tick: Option<Instant>,
    report: ShippingReport,
    upkeep: Upkeep,
    /// This node's logs as read so far.
    tail: LogTail,
}

fn io(key: &str) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        target: "this node's data directory".into(),
        key: key.to_string(),
        source,
    }
}

impl Shipper {
    /// A job for `order`; its scratch servers run with `java`, on loopback.
    pub async fn new(
        order: ShipOrder,
        java: zkop_zk::jvm::JavaArgs,
    ) -> Result<Shipper, BackupError> {
        Ok(Shipper {
            store: Store::open(&order.target).await?,
            order,
            point: None,
            last_tick: None,
            report: ShippingReport::default(),
            upkeep: Upkeep::new(java),
            tail: LogTail::default(),
        })
    }

    /// The order it carries out.
    pub fn order(&self) -> &ShipOrder {
        &self.order
    }

    /// What it reports.
    pub fn report(&self) -> ShippingReport {
        self.report.clone()
    }

    /// Whether a shipment is due: twice per recovery point.
    pub fn due(&self) -> bool {
        let every =
            Duration::from_millis(self.order.recovery_point_ms / 2).max(Duration::from_millis(200));
        self.last_tick.is_none_or(|t| t.elapsed() >= every)
    }

    /// Ships what is new, then looks after the scratch-server duties; a
    /// failure is reported and retried from the stored manifest next time.
    pub async fn tick(&mut self, c: &ShipContext<'_>) {
        self.last_tick = Some(Instant::now());
        self.report.tick_ms = Some(c.now_ms);
        // Unknown until this shipment says otherwise.
        self.report.lag_ms = None;
        let shipped = match self.ship(c).await {
            Ok(()) => self.upkeep(c).await,
            Err(e) => Err(e),
        };
        match shipped {
            Ok(()) => self.report.error = None,
            Err(e) => {
                warn!(cluster = c.cluster, member = %c.server_id, error = %e, "backup shipping failed");
                self.report.error = Some(e.to_string());
                self.point = None;
            }
        }
        self.report.log_bytes_read = self.tail.read_bytes();
        self.report.last_drill = self.upkeep.last_drill.clone();
        self.report.last_good_drill = self.upkeep.last_good_drill.clone();
    }

    /// Takes in what a finished scratch server produced, and starts the
    /// duty that is due next.
    async fn upkeep(&mut self, c: &ShipContext<'_>) -> Result<(), BackupError> {
        match self.upkeep.finished().await {
            Some(Done::Snapshot {
                zxid,
                bytes: Ok(bytes),
            }) => {
                if let Some(point) = self.point.take() {
                    let next = if zxid > point.snapshot.zxid && !point.sealed {
                        self.roll_over(c, &point, bytes, zxid, true).await
                    } else {
                        Ok(None)
                    };
                    self.point = Some(match next {
                        Ok(next) => next.unwrap_or(point),
                        Err(e) => return Err(e),
                    });
                }
            }
            Some(Done::Snapshot {
                zxid,
                bytes: Err(e),
            }) => {
                warn!(cluster = c.cluster, member = %c.server_id, %zxid, error = %e, "no offline snapshot");
            }
            Some(Done::Drill(Ok(r))) if !r.ok => {
                warn!(cluster = c.cluster, member = %c.server_id, detail = %r.detail, "the backup FAILED its restore drill");
            }
            Some(Done::Drill(Ok(r))) => {
                info!(cluster = c.cluster, member = %c.server_id, detail = %r.detail, "the backup passed its restore drill");
            }
            Some(Done::Drill(Err(e))) => {
                warn!(cluster = c.cluster, member = %c.server_id, error = %e, "no restore drill");
            }
            None => {}
        }
        match &self.point {
            Some(point) => {
                self.upkeep
                    .start_due(&self.store, &self.order, point, c.now_ms)
                    .await
            }
            None => Ok(()),
        }
    }

    async fn ship(&mut self, c: &ShipContext<'_>) -> Result<(), BackupError> {
        let mut point = match self.point.take() {
            Some(p) => self.still_ours(p, c).await?,
            None => self.take_over(c).await?,
        };
        let history = history::read_after(&c.version2, point.last(), &mut self.tail)
            .map_err(io("version-2"))?;
        let new = match history.continuing(
            point.last(),
            point.last_record_sha256(),
            c.processed,
            c.history_fork,
        ) {
            Ok(new) => new,
            Err(why) => {
                info!(cluster = c.cluster, member = %c.server_id, last = %point.last(), ?why, "this node's history does not continue the backup's last transaction: starting a new point");
                let next = self.new_point(c, Some(point), why).await?;
                self.point = Some(next);
                return Ok(());
            }
        };
        if !new.is_empty() {
            // Unknown digests are no reason to hold a shipment back.
            let digests = zkop_zk::probe::tree_digests(c.endpoint)
                .await
                .unwrap_or_default();
            self.append(&mut point, &history, &new, &digests, c).await?;
        }
        // How old the oldest processed transaction the backup lacks is.
        let unshipped = history
            .records
            .iter()
            .find(|r| r.zxid > point.last() && r.zxid <= c.processed);
        self.report.lag_ms = Some(unshipped.map_or(0, |r| c.now_ms.saturating_sub(r.time_ms)));
        if point.last() >= c.processed {
            self.report.caught_up_ms = Some(c.now_ms);
        }
        self.report.point = Some(point.key());
        self.report.newest_zxid = Some(point.last());
        self.report.newest_time_ms = point.segments.last().map(|s| s.last_time_ms);
        // ZooKeeper wrote a newer snapshot whose transactions are all shipped:
        // it starts a new point sharing the segments after it. Only when this
        // node's history holds the point's last transaction: a node behind
        // the point (just forced into a config of its own, say) would pair
        // its snapshot with segments it never had.
        if let Some(snap) = history::newest_snapshot_after(&c.version2, Some(point.snapshot.zxid))
            && snap.zxid <= point.last()
            && history.holds(point.last())
        {
            let bytes = std::fs::read(&snap.path).map_err(io("snapshot"))?;
            let next = self.roll_over(c, &point, bytes, snap.zxid, false).await?;
            self.point = Some(next.unwrap_or(point));
            return Ok(());
        }
        self.point = Some(point);
        Ok(())
    }

    /// The point we ship to, unless someone else wrote its manifest since.
    async fn still_ours(
        &mut self,
        p: PointManifest,
        c: &ShipContext<'_>,
    ) -> Result<PointManifest, BackupError> {
        let stored = self.store.point(&p.key()).await?;
        if stored.as_ref() == Some(&p) {
            return Ok(p);
        }
        match stored {
            Some(s) if s.shipper.epoch > c.epoch => Err(BackupError::Refused(format!(
                "{}: a shipper of a newer controller epoch ({}) owns it",
                s.key(),
                s.shipper.epoch
            ))),
            _ => self.take_over(c).await,
        }
    }

    /// Continues the newest point when this node holds what follows it,
    /// else starts a new one.
    async fn take_over(&mut self, c: &ShipContext<'_>) -> Result<PointManifest, BackupError> {
        let points = self.store.points().await?;
        if let Some(other) = points.iter().find(|p| p.cluster != c.cluster) {
            return Err(BackupError::Refused(format!(
                "{}: this backup holds cluster `{}`'s data, not `{}`'s",
                other.key(),
                other.cluster,
                c.cluster
            )));
        }
        let Some(newest) = points
            .into_iter()
            .max_by_key(|p| (p.snapshot.zxid, p.created_ms))
        else {
            return self.new_point(c, None, Discontinuity::Gap).await;
        };
        if newest.shipper.epoch > c.epoch {
            return Err(BackupError::Refused(format!(
                "{}: a shipper of a newer controller epoch ({}) owns it",
                newest.key(),
                newest.shipper.epoch
            )));
        }
        let history = history::read_after(&c.version2, newest.last(), &mut self.tail)
            .map_err(io("version-2"))?;
        let continuing = history.continuing(
            newest.last(),
            newest.last_record_sha256(),
            c.processed,
            c.history_fork,
        );
        if newest.gap().is_none() && !newest.sealed && continuing.is_ok() {
            let mut p = newest;
            p.shipper = shipper_id(c);
            self.store.put_point(&p).await?;
            info!(cluster = c.cluster, member = %c.server_id, point = %p.key(), last = %p.last(), "continuing the backup's newest point");
            return Ok(p);
        }
        self.new_point(
            c,
            Some(newest),
            continuing.err().unwrap_or(Discontinuity::Gap),
        )
        .await
    }

    /// A new point from this node's newest complete snapshot; the previous
    /// point (if any) is sealed. When `why` says this node's history parted
    /// from the previous point's, the new point records the range only the
    /// previous branch holds (`backup list` shows it; no restore of the new
    /// point reaches into it).
    async fn new_point(
        &self,
        c: &ShipContext<'_>,
        previous: Option<PointManifest>,
        why: Discontinuity,
    ) -> Result<PointManifest, BackupError> {
        let snap = history::newest_snapshot(&c.version2).ok_or_else(|| {
            BackupError::Refused("no complete snapshot on this node yet to start a point".into())
        })?;
        let bytes = std::fs::read(&snap.path).map_err(io("snapshot"))?;
        let snapshot = self.put_snapshot(&bytes, snap.zxid, false).await?;
        let mut point = fresh_point(c, snapshot, Vec::new());
        if let (Some(prev), Discontinuity::Diverged { fork }) = (&previous, why) {
            let divergence = Divergence {
                point: prev.key(),
                after: fork,
                upto: prev.last(),
            };
            warn!(cluster = c.cluster, member = %c.server_id, point = %point.key(), "{}", divergence.describe());
            point.diverged = Some(divergence);
        }
        if self.store.get(&point.key()).await?.is_some() {
            return Err(BackupError::Refused(format!(
                "{} exists already",
                point.key()
            )));
        }
        self.store.put_point(&point).await?;
        if let Some(mut prev) = previous.filter(|p| !p.sealed) {
            prev.sealed = true;
            self.store.put_point(&prev).await?;
        }
        info!(cluster = c.cluster, member = %c.server_id, point = %point.key(), "started a new backup point");
        Ok(point)
    }

    async fn put_snapshot(
        &self,
        bytes: &[u8],
        zxid: Zxid,
        offline: bool,
    ) -> Result<SnapshotRef, BackupError> {
        let trailer = txnlog::snapshot_trailer_zxid(bytes)
            .map_err(|e| BackupError::corrupt(&format!("snapshot.{:x}", zxid.as_u64()), e))?;
        let object = self
            .store
            .put_object(|sha| manifest::snapshot_key(zxid, trailer, sha), bytes)
            .await?;
        Ok(SnapshotRef {
            object,
            zxid,
            trailer_zxid: trailer,
            offline,
        })
    }

    /// A new point at a newer snapshot (ZooKeeper's, or an `offline` one),
    /// sharing the segments of `point` after it (the same history).
    async fn roll_over(
        &mut self,
        c: &ShipContext<'_>,
        point: &PointManifest,
        bytes: Vec<u8>,
        zxid: Zxid,
        offline: bool,
    ) -> Result<Option<PointManifest>, BackupError> {
        // Not before every transaction it holds is shipped.
        if txnlog::snapshot_trailer_zxid(&bytes).is_ok_and(|t| t > point.last()) {
            return Ok(None);
        }
        let snapshot = self.put_snapshot(&bytes, zxid, offline).await?;
        let shared = point.segments.iter().filter(|s| s.last > zxid).cloned();
        let mut next = fresh_point(c, snapshot, shared.collect());
        // The same history: whatever branch it left, it still left.
        next.diverged = point.diverged.clone();
        self.store.put_point(&next).await?;
        let mut sealed = point.clone();
        sealed.sealed = true;
        self.store.put_point(&sealed).await?;
        info!(cluster = c.cluster, member = %c.server_id, point = %next.key(), offline, "a new snapshot starts a new backup point");
        Ok(Some(next))
    }

    /// Ships `new` (records following on from the point's last) as one
    /// segment per local log, then the manifest.
    async fn append(
        &mut self,
        point: &mut PointManifest,
        history: &History,
        new: &[&LocalRecord],
        digests: &[TreeDigest],
        c: &ShipContext<'_>,
    ) -> Result<(), BackupError> {
        for group in new.chunk_by(|a, b| a.log == b.log) {
            let (first, last) = (group[0], group[group.len() - 1]);
            let (name, log) = &history.logs[first.log];
            let bytes =
                txnlog::segment_of(log, group.iter().map(|r| r.span.clone())).ok_or_else(|| {
                    BackupError::corrupt(name, format!("no record {}..={}", first.zxid, last.zxid))
                })?;
            let object = self
                .store
                .put_object(
                    |sha| manifest::segment_key(first.zxid, last.zxid, sha),
                    &bytes,
                )
                .await?;
            self.report.bytes_shipped += object.bytes;
            point.segments.push(SegmentRef {
                object,
                first: first.zxid,
                last: last.zxid,
                first_time_ms: first.time_ms,
                last_time_ms: last.time_ms,
                last_record_sha256: history.record_sha256(last),
            });
        }
        point.updated_ms = c.now_ms;
        point.record_digests(digests);
        self.store.put_point(point).await
    }
}

/// A new point of this shipper's, from `snapshot` with `segments` after it.
fn fresh_point(
    c: &ShipContext<'_>,
    snapshot: SnapshotRef,
    segments: Vec<SegmentRef>,
) -> PointManifest {
    PointManifest {
        format: FORMAT,
        cluster: c.cluster.to_string(),
        snapshot,
        segments,
        created_ms: c.now_ms,
        updated_ms: c.now_ms,
        shipper: shipper_id(c),
        sealed: false,
        digests: Vec::new(),
        diverged: None,
    }
}

fn shipper_id(c: &ShipContext<'_>) -> ShipperId {
    ShipperId {
        instance: c.instance.to_string(),
        server_id: c.server_id.0,
        epoch: c.epoch,
    }
}
