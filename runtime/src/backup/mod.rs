//! A backup's storage: a directory or an S3 prefix, holding the
//! immutable snapshots and log segments and the point manifests
//! (`zkop_spec::backup::manifest`). Shipping writes through it, restores
//! and drills read through it, retention deletes through it.

mod dir;
pub mod drill;
pub mod restore;
mod s3;
pub mod scratch;

use sha2::Digest;

use zkop_spec::backup::BackupTarget;
use zkop_spec::backup::manifest::{self, ObjectRef, PointManifest};

pub use dir::DirStore;
pub use s3::S3Store;

/// Why a backup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing the storage failed.
    #[error("{target}: {key}: {source}")]
    Io {
        /// The backup.
        target: String,
        /// The object.
        key: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An object is not what its manifest says.
    #[error("{key}: {reason}")]
    Corrupt {
        /// The object.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A manifest names an object the backup does not hold.
    #[error("{key}: missing (named by {by})")]
    Missing {
        /// The object.
        key: String,
        /// The manifest naming it.
        by: String,
    },
    /// The backup cannot restore to the point asked for.
    #[error(transparent)]
    Restore(#[from] manifest::RestoreError),
    /// This backup belongs to another cluster, or a newer shipper owns it.
    #[error("{0}")]
    Refused(String),
}

impl BackupError {
    /// `key` is not what it should be, for `reason`.
    pub fn corrupt(key: &str, reason: impl std::fmt::Display) -> BackupError {
        BackupError::Corrupt {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// An object's SHA-256 in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a create-only write made the object or found it there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Written now.
    New,
    /// An object of that key was there (keys carry a checksum: same bytes).
    Existed,
}

/// One backup's storage.
#[derive(Debug, Clone)]
pub enum Store {
    /// A directory.
    Dir(DirStore),
    /// An S3 prefix.
    S3(S3Store),
}

impl Store {
    /// The store for `target`.
    pub async fn open(target: &BackupTarget) -> Result<Store, BackupError> {
        match target {
            BackupTarget::Dir { path } => Ok(Store::Dir(DirStore::new(path))),
            BackupTarget::S3(s) => Ok(Store::S3(S3Store::open(s).await)),
        }
    }

    /// Creates an object that must not change afterwards.
    pub async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Created, BackupError> {
        match self {
            Store::Dir(d) => d.put_new(key, bytes).await,
            Store::S3(d) => d.put_new(key, bytes).await,
        }
    }

    /// Writes (or replaces) a manifest.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BackupError> {
        match self {
            Store::Dir(d) => d.put(key, bytes).await,
            Store::S3(d) => d.put(key, bytes).await,
        }
    }

    /// An object's bytes, `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackupError> {
        match self {
            Store::Dir(d) => d.get(key).await,
            Store::S3(d) => d.get(key).await,
        }
    }

    /// Keys under `prefix` (e.g. `points/`), with their sizes, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
        match self {
            Store::Dir(d) => d.list(prefix).await,
            Store::S3(d) => d.list(prefix).await,
        }
    }

    /// Deletes an object (gone already is fine).
    pub async fn delete(&self, key: &str) -> Result<(), BackupError> {
        match self {
            Store::Dir(d) => d.delete(key).await,
            Store::S3(d) => d.delete(key).await,
        }
    }

    /// Stores an immutable object and returns its reference.
    pub async fn put_object(
        &self,
        key: impl FnOnce(&str) -> String,
        bytes: &[u8],
    ) -> Result<ObjectRef, BackupError> {
        let sha256 = sha256_hex(bytes);
        let key = key(&sha256);
        self.put_new(&key, bytes).await?;
        Ok(ObjectRef {
            key,
            bytes: bytes.len() as u64,
            sha256,
        })
    }

    /// An object's bytes, checked against its reference.
    pub async fn get_object(&self, o: &ObjectRef, by: &str) -> Result<Vec<u8>, BackupError> {
        let bytes = self
            .get(&o.key)
            .await?
            .ok_or_else(|| BackupError::Missing {
                key: o.key.clone(),
                by: by.to_string(),
            })?;
        let sha = sha256_hex(&bytes);
        if sha != o.sha256 || bytes.len() as u64 != o.bytes {
            return Err(BackupError::corrupt(
                &o.key,
                format!(
                    "{} bytes with SHA-256 {sha}, but {by} says {} bytes with SHA-256 {}",
                    bytes.len(),
                    o.bytes,
                    o.sha256
                ),
            ));
        }
        Ok(bytes)
    }

    /// Every point's manifest, oldest snapshot first. A manifest that does
    /// not parse is an error naming it.
    pub async fn points(&self) -> Result<Vec<PointManifest>, BackupError> {
        let mut out = Vec::new();
        for (key, _) in self.list("points/").await? {
            if !manifest::is_point_key(&key) {
                continue;
            }
            out.extend(self.point(&key).await?);
        }
        out.sort_by_key(|m| m.snapshot.zxid);
        Ok(out)
    }

    /// The point whose manifest is at `key`, `None` when there is none; a
    /// manifest that does not parse is an error naming it.
    pub async fn point(&self, key: &str) -> Result<Option<PointManifest>, BackupError> {
        let Some(bytes) = self.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| BackupError::corrupt(key, format!("not a point manifest: {e}")))
    }

    /// Writes a point's manifest.
    pub async fn put_point(&self, m: &PointManifest) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(m).map_err(|e| BackupError::corrupt(&m.key(), e))?;
        self.put(&m.key(), &json).await
    }
}
