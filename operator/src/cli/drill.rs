//! Restore drills (`zkop backup verify`): every object of every point is
//! read back and checked against its manifest, the points' zxids are checked
//! for gaps, and the newest point is restored into a scratch ZooKeeper
//! server, which must load exactly to the point's last zxid. The outcome is
//! recorded in the backup (`drills/<ms>.json`).

use std::path::Path;
use std::time::{Duration, Instant};

use zkop_runtime::backup::restore::restore_into;
use zkop_runtime::backup::{BackupError, Store};
use zkop_spec::backup::manifest::{self, PointManifest};
use zkop_spec::backup::{BackupTarget, RestorePoint};
use zkop_spec::zk::Zxid;
use zkop_zk::jvm::{JavaArgs, JvmCommand};

use crate::clock::{Clock, SystemClock};

/// How long a scratch server may take to load a restored point.
const LOAD_LIMIT: Duration = Duration::from_secs(300);

/// The outcome of one drill, as recorded in the backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillRecord {
    /// When it ran (ms since the Unix epoch).
    pub at_ms: u64,
    /// Whether the backup proved restorable.
    pub ok: bool,
    /// The point restored, when one was.
    pub point: Option<String>,
    /// The zxid it restored to.
    pub zxid: Option<Zxid>,
    /// What was checked, or what failed (naming the object).
    pub detail: String,
}

/// Where drills are recorded.
pub fn drill_key(at_ms: u64) -> String {
    format!("drills/{at_ms:013}.json")
}

/// Reads back every object of every point and checks it.
async fn check_objects(store: &Store, points: &[PointManifest]) -> Result<usize, BackupError> {
    let mut seen = std::collections::BTreeSet::new();
    for p in points {
        if let Some(gap) = p.gap() {
            return Err(BackupError::corrupt(&p.key(), gap));
        }
        for o in p.objects() {
            if seen.insert(o.key.clone()) {
                store.get_object(o, &p.key()).await?;
            }
        }
    }
    Ok(seen.len())
}

/// Restores `zxid` into a scratch server on `address` and waits for it to
/// serve at exactly that zxid.
async fn scratch_load(
    store: &Store,
    zxid: Zxid,
    java: &JavaArgs,
    address: &str,
) -> Result<Duration, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    restore_into(store, RestorePoint::Zxid { zxid }, &data)
        .await
        .map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind((address, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port on {address}: {e}"))?
        .port();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress={address}\nstandaloneEnabled=true\nadmin.enableServer=false\n4lw.commands.whitelist=srvr\n",
            data.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let jvm = JvmCommand {
        java: java.java.clone(),
        classpath: java.zookeeper_classpath.clone(),
        heap_mb: 512,
        jvm_flags: vec!["-XX:+UseSerialGC".into()],
        super_digest: zkop_zk::super_digest("drill"),
    };
    let log = std::fs::File::create(dir.path().join("zookeeper.out")).map_err(|e| e.to_string())?;
    let mut child = jvm
        .command(&cfg, dir.path(), log)
        .and_then(|mut c| c.spawn())
        .map_err(|e| format!("cannot start a scratch ZooKeeper: {e}"))?;
    let started = Instant::now();
    let endpoint = format!("{address}:{port}");
    let result = loop {
        if let Ok(p) = zkop_zk::probe::probe(&endpoint).await
            && p.serving
        {
            break match p.zxid {
                Some(z) if z == zxid => Ok(started.elapsed()),
                other => Err(format!(
                    "the scratch server loaded to {}, not {zxid}",
                    other.map_or("nothing".into(), |z| z.to_string())
                )),
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!(
                "the scratch server exited ({status}) loading the restored point: {}",
                tail(&dir.path().join("zookeeper.out"))
            ));
        }
        if started.elapsed() > LOAD_LIMIT {
            break Err(format!(
                "the scratch server did not serve within {LOAD_LIMIT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill().await;
    result
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Runs a drill on `target` and records it there.
pub async fn verify(
    target: &BackupTarget,
    java: &JavaArgs,
    address: &str,
) -> Result<DrillRecord, BackupError> {
    let store = Store::open(target).await?;
    let at_ms = SystemClock.wall_ms();
    let points = store.points().await?;
    let newest = manifest::newest(&points);
    let point = newest.and_then(|z| manifest::point_for(&points, z).ok().map(PointManifest::key));
    let outcome = match (check_objects(&store, &points).await, newest) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(_), None) => Err("the backup holds no point to restore".to_string()),
        (Ok(n), Some(z)) => scratch_load(&store, z, java, address)
            .await
            .map(|took| format!("{n} objects of {} points read back and checked; the newest point restored into a scratch ZooKeeper, serving exactly at {z} after {:.1}s", points.len(), took.as_secs_f64())),
    };
    let record = DrillRecord {
        at_ms,
        ok: outcome.is_ok(),
        point,
        zxid: newest,
        detail: outcome.unwrap_or_else(|e| e),
    };
    let json = serde_json::to_vec_pretty(&record)
        .map_err(|e| BackupError::corrupt(&drill_key(at_ms), e))?;
    store.put(&drill_key(at_ms), &json).await?;
    Ok(record)
}

/// Every drill recorded in the backup, oldest first (unreadable ones skipped).
pub async fn drills(store: &Store) -> Result<Vec<DrillRecord>, BackupError> {
    let mut out = Vec::new();
    for (key, _) in store.list("drills/").await? {
        if let Some(bytes) = store.get(&key).await?
            && let Ok(r) = serde_json::from_slice::<DrillRecord>(&bytes)
        {
            out.push(r);
        }
    }
    Ok(out)
}
