//! The shipper's slower duties, each a scratch ZooKeeper server run beside
//! the member's own on a restored copy of the backup, in the background so
//! that shipping goes on meanwhile: an offline snapshot every
//! `snapshotEvery` (ZooKeeper 3.8 cannot be told to take one, and a point
//! with a fresh snapshot restores with little to replay), and a restore
//! drill every `verifyEvery`.

use tokio::task::JoinHandle;
use tracing::info;
use zkop_runtime::backup::drill::{self, drills};
use zkop_runtime::backup::scratch::{SCRATCH_ADDRESS, ScratchServer};
use zkop_runtime::backup::{BackupError, Store};
use zkop_spec::backup::drill::DrillRecord;
use zkop_spec::backup::manifest::PointManifest;
use zkop_spec::wire::ShipOrder;
use zkop_spec::zk::Zxid;
use zkop_zk::jvm::JavaArgs;

/// How many recorded drills are read back looking for the last good one.
const DRILLS_READ: usize = 50;

/// What a finished duty produced.
pub enum Done {
    /// A drill ran (and was recorded in the backup).
    Drill(Result<DrillRecord, BackupError>),
    /// A snapshot of the backup at `zxid`, as a scratch server wrote it.
    Snapshot {
        /// Its zxid: exactly the point's last transaction when it started.
        zxid: Zxid,
        /// Its bytes, or why there are none.
        bytes: Result<Vec<u8>, String>,
    },
}

/// Where the scratch servers run, and the duty under way.
pub struct Upkeep {
    java: JavaArgs,
    running: Option<JoinHandle<Done>>,
    /// When the last drill ran, or (before the first) when the backup's
    /// oldest point was made; known once the backup has been read.
    drills_since_ms: Option<u64>,
    /// When the running (or last) drill started.
    drill_started_ms: u64,
    /// The newest drill.
    pub last_drill: Option<DrillRecord>,
    /// The newest successful drill.
    pub last_good_drill: Option<DrillRecord>,
}

impl Upkeep {
    /// Scratch servers run with `java`, on loopback (`SCRATCH_ADDRESS`).
    pub fn new(java: JavaArgs) -> Upkeep {
        Upkeep {
            java,
            running: None,
            drills_since_ms: None,
            drill_started_ms: 0,
            last_drill: None,
            last_good_drill: None,
        }
    }

    /// The duty that finished since the last call, if one did.
    pub async fn finished(&mut self) -> Option<Done> {
        if !self.running.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        let done = match self.running.take()?.await {
            Ok(done) => done,
            Err(e) => Done::Drill(Err(BackupError::Refused(format!(
                "the scratch server's task failed: {e}"
            )))),
        };
        if let Done::Drill(result) = &done {
            // A drill that could not run waits its turn too.
            self.drills_since_ms = Some(match result {
                Ok(r) => r.at_ms,
                Err(_) => self.drill_started_ms,
            });
            if let Ok(r) = result {
                self.note_drill(r.clone());
            }
        }
        Some(done)
    }

    fn note_drill(&mut self, r: DrillRecord) {
        if r.ok {
            self.last_good_drill = Some(r.clone());
        }
        self.last_drill = Some(r);
    }

    /// Starts the duty that is due, if none runs: an offline snapshot when
    /// `point`'s snapshot is older than `snapshotEvery` and transactions
    /// followed it, else a drill when the last is older than `verifyEvery`
    /// (the first once the backup is that old: a new one has little to prove).
    pub async fn start_due(
        &mut self,
        store: &Store,
        order: &ShipOrder,
        point: &PointManifest,
        now_ms: u64,
    ) -> Result<(), BackupError> {
        if self.running.is_some() {
            return Ok(());
        }
        let older =
            |at: u64, every: Option<u64>| every.is_some_and(|e| now_ms.saturating_sub(at) >= e);
        if older(point.created_ms, order.snapshot_every_ms)
            && point.last() > point.snapshot.trailer_zxid
        {
            let (store, java, zxid) = (store.clone(), self.java.clone(), point.last());
            info!(point = %point.key(), zxid = %zxid, "making an offline snapshot of the backup");
            self.running = Some(tokio::spawn(async move {
                let bytes = match ScratchServer::restore(&store, zxid, &java, SCRATCH_ADDRESS).await
                {
                    Ok(server) => {
                        let bytes = server.snapshot(zxid);
                        server.stop().await;
                        bytes
                    }
                    Err(e) => Err(e),
                };
                Done::Snapshot { zxid, bytes }
            }));
            return Ok(());
        }
        if order.verify_every_ms.is_none() {
            return Ok(());
        }
        if self.drills_since_ms.is_none() {
            self.read_drills(store).await?;
        }
        if self
            .drills_since_ms
            .is_some_and(|since| older(since, order.verify_every_ms))
        {
            let (store, java) = (store.clone(), self.java.clone());
            info!(target = %order.target, "running a restore drill");
            self.drill_started_ms = now_ms;
            self.running = Some(tokio::spawn(async move {
                Done::Drill(drill::verify(&store, &java, SCRATCH_ADDRESS, now_ms).await)
            }));
        }
        Ok(())
    }

    /// The newest drill and the newest good one, from the backup.
    async fn read_drills(&mut self, store: &Store) -> Result<(), BackupError> {
        for r in drills(store, DRILLS_READ).await? {
            self.note_drill(r);
        }
        self.drills_since_ms = match &self.last_drill {
            Some(d) => Some(d.at_ms),
            None => store.points().await?.iter().map(|p| p.created_ms).min(),
        };
        Ok(())
    }
}

impl Drop for Upkeep {
    /// A shipper that loses its job stops its scratch server with it.
    fn drop(&mut self) {
        if let Some(task) = &self.running {
            task.abort();
        }
    }
}
