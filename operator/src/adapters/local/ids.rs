//! Ids claimed as create-exclusive files: `ids/<id>` holds the instance.

use std::io::Write;
use std::path::PathBuf;

use zkop_spec::zk::ServerId;

use crate::adapters::{IdLedger, LedgerError};

/// ZooKeeper ids go up to 255 for zkop's local clusters; far more than a loopback
/// network holds.
const MAX_ID: u64 = 255;

/// A ledger of `ids/<id>` files.
#[derive(Debug, Clone)]
pub struct FileLedger {
    dir: PathBuf,
}

impl FileLedger {
    /// A ledger in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl IdLedger for FileLedger {
    async fn claim(&self, instance: &str) -> Result<ServerId, LedgerError> {
        std::fs::create_dir_all(&self.dir)?;
        for id in 1..=MAX_ID {
            let path = self.dir.join(id.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(instance.as_bytes())?;
                    f.sync_all()?;
                    return Ok(ServerId(id));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(LedgerError::Exhausted(MAX_ID))
    }

    async fn release(&self, id: ServerId) -> Result<(), LedgerError> {
        match std::fs::remove_file(self.dir.join(id.to_string())) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_claims_never_get_one_id_and_a_released_id_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = FileLedger::new(dir.path().join("ids"));
        let a = ledger.claim("i-a").await.unwrap();
        let b = ledger.claim("i-b").await.unwrap();
        assert_ne!(a, b);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ids").join(a.to_string())).unwrap(),
            "i-a"
        );
        ledger.release(a).await.unwrap();
        assert_eq!(ledger.claim("i-c").await.unwrap(), a);
    }
}
