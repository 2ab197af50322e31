//! Backups: `spec.backup` (where and how often a cluster's data is shipped),
//! `spec.bootstrap.restore` (a new cluster seeded from a backup), their
//! validated forms, and the backup's own layout ([`manifest`]).

pub mod drill;
pub mod manifest;
mod validate;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::zk::Zxid;

pub(crate) use validate::{check_backup, check_bootstrap};
pub use validate::{format_time, parse_time};

/// `spec.backup`: a copy of the ensemble's data outside it, shipped
/// continuously. Exactly one of `dir` or `s3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSpec {
    /// A directory holding this cluster's backup (local fleets, or a shared
    /// file system), e.g. `/var/backups/zk/prod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// An S3 bucket and prefix holding this cluster's backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
    /// How old the newest shipped transaction may be (default `5s`, 1s to 1h).
    #[serde(default = "default_recovery_point")]
    #[schemars(schema_with = "crate::duration::schema")]
    pub recovery_point: String,
    /// How often a fresh snapshot starts a new backup point (default `1h`).
    #[serde(default = "default_snapshot_every")]
    #[schemars(schema_with = "crate::duration::schema")]
    pub snapshot_every: String,
    /// Keep at least this many newest points (default 3 when `keepFor` is not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// Keep every point younger than this, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::optional_schema")]
    pub keep_for: Option<String>,
    /// How often a restore drill proves the backup restorable (default `24h`).
    #[serde(default = "default_verify_every")]
    #[schemars(schema_with = "crate::duration::schema")]
    pub verify_every: String,
}

fn default_recovery_point() -> String {
    "5s".into()
}
fn default_snapshot_every() -> String {
    "1h".into()
}
fn default_verify_every() -> String {
    "24h".into()
}

/// An S3 location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, e.g. `zk/prod/` (default: the bucket's root).
    #[serde(default)]
    pub prefix: String,
    /// A KMS key for server-side encryption (default: SSE-S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// Where a restore reads from: exactly one of `dir` or `s3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSource {
    /// A backup directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// A backup in S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
}

/// `spec.bootstrap`: how a new cluster's first ensemble starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootstrapSpec {
    /// Seed the ensemble from a backup instead of starting empty. Applies only
    /// while the cluster has never held members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSpec>,
}

/// `spec.bootstrap.restore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreSpec {
    /// The backup to restore.
    pub from: BackupSource,
    /// Restore exactly to this zxid, in hex as status prints it (`"0x100000123"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_zxid: Option<String>,
    /// Restore to the last transaction at or before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_time: Option<String>,
}

/// A backup's location, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum BackupTarget {
    /// A directory.
    Dir {
        /// Its path.
        path: String,
    },
    /// An S3 bucket and prefix.
    S3(S3Location),
}

impl std::fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupTarget::Dir { path } => write!(f, "dir:{path}"),
            BackupTarget::S3(s) => write!(f, "s3://{}/{}", s.bucket, s.prefix),
        }
    }
}

impl std::str::FromStr for BackupTarget {
    type Err = String;
    /// `dir:PATH` or `s3://bucket/prefix`, as `zkop backup` takes them.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("dir:").filter(|p| !p.is_empty()) {
            return Ok(BackupTarget::Dir { path: path.into() });
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if !bucket.is_empty() {
                return Ok(BackupTarget::S3(S3Location {
                    bucket: bucket.into(),
                    prefix: prefix.into(),
                    kms_key_id: None,
                }));
            }
        }
        Err(format!(
            "`{s}` is not a backup location: write `dir:PATH` or `s3://BUCKET/PREFIX`"
        ))
    }
}

/// `spec.backup`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupPolicy {
    /// Where the backup goes.
    pub target: BackupTarget,
    /// How old the newest shipped transaction may be.
    pub recovery_point: std::time::Duration,
    /// How often a fresh snapshot starts a new point.
    pub snapshot_every: std::time::Duration,
    /// Newest points always kept.
    pub keep: u32,
    /// Points younger than this are kept.
    pub keep_for: Option<std::time::Duration>,
    /// How often a restore drill runs.
    pub verify_every: std::time::Duration,
}

/// The point a restore goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum RestorePoint {
    /// The newest transaction the backup holds.
    Newest,
    /// Exactly this zxid.
    Zxid {
        /// The zxid.
        zxid: Zxid,
    },
    /// The last transaction at or before this time.
    Time {
        /// Milliseconds since the Unix epoch.
        unix_ms: u64,
    },
}

/// `spec.bootstrap.restore`, validated: where from and to which point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFrom {
    /// The backup.
    pub target: BackupTarget,
    /// The point.
    pub to: RestorePoint,
}
