//! State as a JSON file in the state directory, replaced atomically.

use std::path::PathBuf;

use crate::adapters::{StateStore, StoreError};
use crate::model::Persisted;

/// `state.json` in the state directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl StateStore for FileStore {
    async fn load(&self) -> Result<Option<Persisted>, StoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            })
    }

    async fn save(&self, state: &Persisted) -> Result<u64, StoreError> {
        // One writer per state dir (`local up` holds its lock); the version check
        // keeps the same contract as a shared store.
        let found = self.load().await?.map(|p| p.store_version).unwrap_or(0);
        if found != state.store_version {
            return Err(StoreError::Conflict {
                expected: state.store_version,
                found,
            });
        }
        let mut next = state.clone();
        next.store_version += 1;
        let json = serde_json::to_vec_pretty(&next).map_err(|e| StoreError::Corrupt {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        super::write_atomic(&self.path, &json, 0o600)?;
        Ok(next.store_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_conditionally_loads_and_names_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("state.json"));
        assert_eq!(store.load().await.unwrap(), None);
        let state = Persisted {
            cluster: "c".into(),
            epoch: 3,
            ..Default::default()
        };
        assert_eq!(store.save(&state).await.unwrap(), 1);
        let loaded = store.load().await.unwrap().unwrap();
        assert_eq!(
            loaded,
            Persisted {
                store_version: 1,
                ..state.clone()
            }
        );
        // A write based on the old version is refused, and nothing changes.
        assert!(matches!(
            store.save(&state).await,
            Err(StoreError::Conflict {
                expected: 0,
                found: 1
            })
        ));
        assert_eq!(store.load().await.unwrap(), Some(loaded));
        std::fs::write(dir.path().join("state.json"), "{").unwrap();
        let err = store.load().await.unwrap_err();
        assert!(err.to_string().contains("state.json"), "{err}");
    }
}
