//! Backup retention: while this controller leads, the points the spec's
//! retention (`keep`, `keepFor`) lets go are deleted, manifests first, then
//! the objects no remaining point needs. Only the controller deletes:
//! shippers only create.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;
use zkop_runtime::backup::{BackupError, Store};
use zkop_spec::backup::BackupPolicy;
use zkop_spec::backup::manifest;

use crate::controller::Shared;

/// How often retention runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// How many restore drill records retention keeps.
pub const KEEP_DRILLS: usize = 100;

/// What one pruning deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Point manifests.
    pub points: usize,
    /// Snapshots and segments.
    pub objects: usize,
}

/// Applies `policy`'s retention to its backup once.
pub async fn prune_once(policy: &BackupPolicy, now_ms: u64) -> Result<Pruned, BackupError> {
    let store = Store::open(&policy.target).await?;
    let points = store.points().await?;
    let mut stored: Vec<String> = Vec::new();
    for prefix in ["snapshots/", "logs/"] {
        stored.extend(store.list(prefix).await?.into_iter().map(|(k, _)| k));
    }
    let keep_for_ms = policy
        .keep_for
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let gone = manifest::prune(&points, &stored, policy.keep, keep_for_ms, now_ms);
    // Manifests first: a point is never listed with objects already gone.
    for key in &gone.points {
        store.delete(key).await?;
    }
    for key in &gone.objects {
        store.delete(key).await?;
    }
    // Drill records are small, but one a day adds up: the newest stay.
    let drills = store.list("drills/").await?;
    for (key, _) in drills.iter().take(drills.len().saturating_sub(KEEP_DRILLS)) {
        store.delete(key).await?;
    }
    Ok(Pruned {
        points: gone.points.len(),
        objects: gone.objects.len(),
    })
}

/// Runs retention every [`PRUNE_EVERY`] while this controller leads, until `stop`.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
        let Some(policy) = shared.spec().backup else {
            continue;
        };
        if shared.lease_left() < PRUNE_EVERY {
            continue;
        }
        match prune_once(&policy, shared.clock.wall_ms()).await {
            Ok(p) if p.points > 0 || p.objects > 0 => shared.event(
                "backup_pruned",
                format!(
                    "retention (keep {}{}) pruned {} points and {} objects from the backup at {}",
                    policy.keep,
                    policy
                        .keep_for
                        .map(|d| format!(", keepFor {}s", d.as_secs()))
                        .unwrap_or_default(),
                    p.points,
                    p.objects,
                    policy.target
                ),
            ),
            Ok(_) => {}
            Err(e) => warn!(cluster = %policy.target, error = %e, "backup retention failed"),
        }
    }
}
