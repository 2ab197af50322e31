//! Restore drills: every object of every point is read back and checked
//! against its manifest, the points' zxids are checked for gaps, and the
//! backup is restored into a scratch ZooKeeper server at the newest zxid
//! whose tree digest the shipper recorded; the server must load exactly to
//! that zxid and compute the same digest there (the newest point, checked by
//! zxid alone, while no digest is recorded). The outcome is recorded in the
//! backup (`drills/<ms>.json`).

use std::collections::BTreeSet;

use zkop_spec::backup::drill::{DrillRecord, drill_key};
use zkop_spec::backup::manifest::{self, PointManifest, TreeDigest};
use zkop_spec::zk::Zxid;
use zkop_zk::jvm::JavaArgs;

use super::scratch::ScratchServer;
use super::{BackupError, Store};

/// Reads back every object of every point and checks it.
async fn check_objects(store: &Store, points: &[PointManifest]) -> Result<usize, BackupError> {
    let mut seen = BTreeSet::new();
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

/// Restores `zxid` into a scratch server and checks `digest` there.
async fn scratch_check(
    store: &Store,
    zxid: Zxid,
    digest: Option<&TreeDigest>,
    java: &JavaArgs,
    address: &str,
) -> Result<String, String> {
    let server = ScratchServer::restore(store, zxid, java, address).await?;
    let took = server.took.as_secs_f64();
    let on = server.endpoint().to_string();
    let checked = match digest {
        None => Ok(format!(
            "on {on}, serving exactly at {zxid} after {took:.1}s (no tree digest recorded yet: zxid checked only)"
        )),
        Some(want) => match server.digests().await {
            Err(e) => Err(e),
            Ok(seen) => match seen.iter().find(|d| d.zxid == want.zxid) {
                Some(d) if d.digest == want.digest => Ok(format!(
                    "on {on}, serving exactly at {zxid} after {took:.1}s with the tree digest the ensemble published there ({})",
                    want.digest
                )),
                Some(d) => Err(format!(
                    "the restored tree's digest at {zxid} is {}, but the ensemble published {}",
                    d.digest, want.digest
                )),
                None => Err(format!(
                    "the scratch server published no tree digest at {zxid}"
                )),
            },
        },
    };
    server.stop().await;
    checked
}

/// Runs a drill on `store` at `at_ms` and records it there.
pub async fn verify(
    store: &Store,
    java: &JavaArgs,
    address: &str,
    at_ms: u64,
) -> Result<DrillRecord, BackupError> {
    let points = store.points().await?;
    let digest = manifest::digest_to_check(&points).cloned();
    let zxid = digest
        .as_ref()
        .map(|d| d.zxid)
        .or(manifest::newest(&points));
    let point = zxid.and_then(|z| manifest::point_for(&points, z).ok().map(PointManifest::key));
    let outcome = match (check_objects(store, &points).await, zxid) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(_), None) => Err("the backup holds no point to restore".to_string()),
        (Ok(n), Some(z)) => scratch_check(store, z, digest.as_ref(), java, address)
            .await
            .map(|checked| {
                format!(
                    "{n} objects of {} points read back and checked; restored into a scratch ZooKeeper, {checked}",
                    points.len()
                )
            }),
    };
    let record = DrillRecord {
        at_ms,
        ok: outcome.is_ok(),
        point,
        zxid,
        digest: digest.map(|d| d.digest),
        detail: outcome.unwrap_or_else(|e| e),
    };
    let json = serde_json::to_vec_pretty(&record)
        .map_err(|e| BackupError::corrupt(&drill_key(at_ms), e))?;
    store.put(&drill_key(at_ms), &json).await?;
    Ok(record)
}

/// The newest `limit` drills recorded in the backup, oldest first
/// (unreadable ones skipped).
pub async fn drills(store: &Store, limit: usize) -> Result<Vec<DrillRecord>, BackupError> {
    let mut out = Vec::new();
    let keys = store.list("drills/").await?;
    for (key, _) in keys.iter().skip(keys.len().saturating_sub(limit)) {
        if let Some(bytes) = store.get(key).await?
            && let Ok(r) = serde_json::from_slice::<DrillRecord>(&bytes)
        {
            out.push(r);
        }
    }
    Ok(out)
}
