//! `zkop backup`: what a backup holds, read straight from its storage.

use zkop_runtime::backup::{BackupError, Store};
use zkop_spec::backup::manifest::PointManifest;
use zkop_spec::backup::{BackupTarget, format_time};

/// One point as `zkop backup list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PointRow {
    /// Its manifest key.
    pub point: String,
    /// The cluster whose data it is.
    pub cluster: String,
    /// When it was started (RFC 3339).
    pub created: String,
    /// When a segment was last added.
    pub updated: String,
    /// Its snapshot's zxid.
    pub snapshot_zxid: String,
    /// Who wrote its snapshot: `zookeeper` (the ensemble's server, fuzzy)
    /// or `offline` (a scratch server on the backup, exact).
    pub snapshot: &'static str,
    /// The zxids it restores exactly to (`from..=to`), if any yet.
    pub restores: Option<String>,
    /// When its newest transaction was proposed.
    pub newest_time: Option<String>,
    /// Log segments.
    pub segments: usize,
    /// Bytes of its snapshot and segments.
    pub bytes: u64,
    /// `open` (still shipped to) or `sealed`.
    pub state: &'static str,
    /// A missing transaction, if its segments have a gap.
    pub gap: Option<String>,
    /// The branch its history left, if it started where this cluster's
    /// history parted from the previous point's (a forced recovery, a
    /// restore into the same backup location): what exists only there.
    pub diverged: Option<String>,
    /// The last restore drill's outcome (none yet).
    pub verified: Option<String>,
}

/// A point's row.
pub fn row(p: &PointManifest) -> PointRow {
    PointRow {
        point: p.key(),
        cluster: p.cluster.clone(),
        created: format_time(p.created_ms),
        updated: format_time(p.updated_ms),
        snapshot_zxid: p.snapshot.zxid.to_string(),
        snapshot: if p.snapshot.offline {
            "offline"
        } else {
            "zookeeper"
        },
        restores: p.restorable().map(|(lo, hi)| format!("{lo}..={hi}")),
        newest_time: p.segments.last().map(|s| format_time(s.last_time_ms)),
        segments: p.segments.len(),
        bytes: p.objects().map(|o| o.bytes).sum(),
        state: if p.sealed { "sealed" } else { "open" },
        gap: p.gap(),
        diverged: p.diverged.as_ref().map(|d| d.describe()),
        verified: None,
    }
}

/// The rows of every point in `target`, oldest first, each with its last drill.
pub async fn list(target: &BackupTarget) -> Result<Vec<PointRow>, BackupError> {
    let store = Store::open(target).await?;
    let drills = zkop_runtime::backup::drill::drills(&store, usize::MAX).await?;
    Ok(store
        .points()
        .await?
        .iter()
        .map(|p| {
            let mut r = row(p);
            r.verified = drills
                .iter()
                .rfind(|d| d.point.as_deref() == Some(r.point.as_str()))
                .map(|d| {
                    let when = format_time(d.at_ms);
                    if d.ok {
                        format!("ok {when}")
                    } else {
                        format!("FAILED {when}")
                    }
                });
            r
        })
        .collect())
}

/// The rows as a table.
pub fn table(rows: &[PointRow]) -> String {
    let mut out = format!(
        "{:<24} {:<24} {:<30} {:<9} {:>8} {:>12} {:<7} {}\n",
        "CREATED",
        "NEWEST TXN TIME",
        "RESTORES EXACTLY TO",
        "SNAPSHOT",
        "SEGMENTS",
        "BYTES",
        "STATE",
        "VERIFIED"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<24} {:<24} {:<30} {:<9} {:>8} {:>12} {:<7} {}\n",
            r.created,
            r.newest_time.as_deref().unwrap_or("-"),
            r.restores.as_deref().unwrap_or("nothing yet"),
            r.snapshot,
            r.segments,
            r.bytes,
            r.state,
            r.verified.as_deref().unwrap_or("never"),
        ));
        if let Some(gap) = &r.gap {
            out.push_str(&format!("  GAP in {}: {gap}\n", r.point));
        }
        if let Some(diverged) = &r.diverged {
            out.push_str(&format!("  BRANCH {}: {diverged}\n", r.point));
        }
    }
    if rows.is_empty() {
        out.push_str("(no points)\n");
    }
    out
}
