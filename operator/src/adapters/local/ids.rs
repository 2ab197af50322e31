//! Ids claimed as create-exclusive files: `ids/<id>` holds the instance, so a
//! claim the state never recorded is found again by its instance.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use zkop_spec::InstanceId;

use zkop_spec::zk::ServerId;

use crate::adapters::{Claim, IdLedger, LedgerError, ORPHAN_AFTER, TakenIds};

/// ZooKeeper ids go up to 255 for zkop's local clusters; far more than a loopback
/// network holds.
const MAX_ID: u64 = 255;

/// A ledger of `ids/<id>` files.
#[derive(Debug, Clone)]
pub struct FileLedger {
    dir: PathBuf,
    orphan_after: Duration,
}

impl FileLedger {
    /// A ledger in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            orphan_after: ORPHAN_AFTER,
        }
    }

    /// Empty files this old are orphans (a claim that stopped between
    /// creating its file and writing its instance) and are removed.
    pub fn with_orphan_after(mut self, after: Duration) -> Self {
        self.orphan_after = after;
        self
    }

    /// Removes the orphans among the files of ids not taken.
    fn release_orphans(&self, taken: &TakenIds) -> Result<(), LedgerError> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let meta = entry.metadata()?;
            let age = meta.modified()?.elapsed().unwrap_or_default();
            if !taken.contains_key(&ServerId(id)) && meta.len() == 0 && age >= self.orphan_after {
                tracing::warn!(id, "removing an id file that never named its holder");
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// The id not taken whose file names `instance`, if any.
    fn earlier_claim(
        &self,
        instance: &str,
        taken: &TakenIds,
    ) -> Result<Option<ServerId>, LedgerError> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let id = ServerId(id);
            if !taken.contains_key(&id) && std::fs::read_to_string(entry.path())? == instance {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Creates `id`'s file for `instance`; false when it exists.
    fn create(&self, id: ServerId, instance: &str) -> Result<bool, LedgerError> {
        let path = self.dir.join(id.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(instance.as_bytes())?;
                f.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl IdLedger for FileLedger {
    async fn claim(&self, instance: &InstanceId, taken: &TakenIds) -> Result<Claim, LedgerError> {
        std::fs::create_dir_all(&self.dir)?;
        self.release_orphans(taken)?;
        let mut restored = Vec::new();
        for (id, holder) in taken {
            if let Some(holder) = holder
                && self.create(*id, holder)?
            {
                restored.push(*id);
            }
        }
        if let Some(id) = self.earlier_claim(instance, taken)? {
            return Ok(Claim {
                id,
                resumed: true,
                restored,
            });
        }
        for id in (1..=MAX_ID).map(ServerId) {
            if !taken.contains_key(&id) && self.create(id, instance)? {
                return Ok(Claim {
                    id,
                    resumed: false,
                    restored,
                });
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
        let none = TakenIds::new();
        let a = ledger
            .claim(&InstanceId::from("i-a"), &none)
            .await
            .unwrap()
            .id;
        let b = ledger
            .claim(&InstanceId::from("i-b"), &none)
            .await
            .unwrap()
            .id;
        assert_ne!(a, b);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ids").join(a.to_string())).unwrap(),
            "i-a"
        );
        ledger.release(a).await.unwrap();
        assert_eq!(
            ledger
                .claim(&InstanceId::from("i-c"), &TakenIds::from([(b, None)]))
                .await
                .unwrap()
                .id,
            a
        );
    }

    #[tokio::test]
    async fn an_unrecorded_claim_is_resumed_by_its_instance_only() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = FileLedger::new(dir.path().join("ids"));
        let none = TakenIds::new();
        let a = ledger
            .claim(&InstanceId::from("i-a"), &none)
            .await
            .unwrap()
            .id;
        // The state never recorded `a`: i-a gets it back, nobody else does.
        let again = ledger.claim(&InstanceId::from("i-a"), &none).await.unwrap();
        assert_eq!(
            again,
            Claim {
                id: a,
                resumed: true,
                restored: vec![]
            }
        );
        let b = ledger.claim(&InstanceId::from("i-b"), &none).await.unwrap();
        assert!(!b.resumed, "{b:?}");
        assert_ne!(b.id, a);
        // Once recorded, an id is not looked at again.
        let c = ledger
            .claim(
                &InstanceId::from("i-a"),
                &TakenIds::from([(a, None), (b.id, None)]),
            )
            .await
            .unwrap();
        assert!(!c.resumed && c.id != a && c.id != b.id, "{c:?}");
    }

    #[tokio::test]
    async fn orphans_an_id_file_that_never_named_its_holder_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = FileLedger::new(dir.path().join("ids")).with_orphan_after(Duration::ZERO);
        std::fs::create_dir_all(dir.path().join("ids")).unwrap();
        // A claim stopped between creating id 1's file and writing to it.
        std::fs::write(dir.path().join("ids").join("1"), b"").unwrap();
        let a = ledger
            .claim(&InstanceId::from("i-a"), &TakenIds::new())
            .await
            .unwrap();
        assert_eq!((a.id, a.resumed), (ServerId(1), false));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ids").join("1")).unwrap(),
            "i-a"
        );
    }

    #[tokio::test]
    async fn uniqueness_at_claim_a_lost_entry_is_recreated_for_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = FileLedger::new(dir.path().join("ids"));
        let mut taken = TakenIds::new();
        for i in ["i-a", "i-b", "i-c"] {
            let instance = InstanceId::from(i);
            let claim = ledger.claim(&instance, &taken).await.unwrap();
            taken.insert(claim.id, Some(instance));
        }
        std::fs::remove_file(dir.path().join("ids").join("2")).unwrap();
        let d = ledger
            .claim(&InstanceId::from("i-d"), &taken)
            .await
            .unwrap();
        assert_eq!((d.id, d.restored), (ServerId(4), vec![ServerId(2)]));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ids").join("2")).unwrap(),
            "i-b"
        );
    }
}
