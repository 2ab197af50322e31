//! A backup in a directory: one file per object, manifests replaced
//! atomically, immutable objects created without overwriting.

use std::path::{Path, PathBuf};

use super::{BackupError, Created};

/// A backup directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// The backup in `root`.
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }

    fn err(&self, key: &str) -> impl FnOnce(std::io::Error) -> BackupError {
        let (target, key) = (self.root.display().to_string(), key.to_string());
        move |source| BackupError::Io {
            target,
            key,
            source,
        }
    }

    /// The path of `key`, refusing keys that would leave the directory.
    fn path(&self, key: &str) -> Result<PathBuf, BackupError> {
        let ok = !key.is_empty()
            && Path::new(key)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !ok {
            return Err(BackupError::Refused(format!("`{key}` is not a backup key")));
        }
        Ok(self.root.join(key))
    }

    pub(super) async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Created, BackupError> {
        let path = self.path(key)?;
        let bytes = bytes.to_vec();
        let err = self.err(key);
        tokio::task::spawn_blocking(move || create_new(&path, &bytes))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(err)
    }

    pub(super) async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let path = self.path(key)?;
        let bytes = bytes.to_vec();
        let err = self.err(key);
        tokio::task::spawn_blocking(move || crate::files::write_atomic(&path, &bytes, 0o644))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(err)
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackupError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
        let (dir, stem) = match prefix.rsplit_once('/') {
            Some((d, s)) => (self.root.join(d), s.to_string()),
            None => (self.root.clone(), prefix.to_string()),
        };
        let base = prefix.rsplit_once('/').map(|(d, _)| format!("{d}/"));
        let mut out = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(self.err(prefix)(e)),
        };
        while let Some(e) = entries.next_entry().await.map_err(self.err(prefix))? {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().await.map_err(self.err(prefix))?;
            if meta.is_file() && name.starts_with(&stem) && !name.ends_with(".tmp") {
                out.push((
                    format!("{}{name}", base.as_deref().unwrap_or("")),
                    meta.len(),
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), BackupError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(key)(e)),
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it and links it
/// in only if `path` does not exist.
fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<Created> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    if path.exists() {
        return Ok(Created::Existed);
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(Created::New),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::Existed),
        Err(e) => Err(e.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn objects_are_created_once_listed_by_prefix_and_kept_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::new(dir.path());
        assert_eq!(s.put_new("logs/a.log", b"one").await.unwrap(), Created::New);
        assert_eq!(
            s.put_new("logs/a.log", b"two").await.unwrap(),
            Created::Existed
        );
        assert_eq!(s.get("logs/a.log").await.unwrap().unwrap(), b"one");
        s.put("points/p.json", b"{}").await.unwrap();
        s.put("points/p.json", b"{1}").await.unwrap();
        assert_eq!(s.get("points/p.json").await.unwrap().unwrap(), b"{1}");
        assert_eq!(
            s.list("logs/").await.unwrap(),
            vec![("logs/a.log".to_string(), 3)]
        );
        assert!(s.list("nothing/").await.unwrap().is_empty());
        assert_eq!(s.get("logs/b.log").await.unwrap(), None);
        s.delete("logs/a.log").await.unwrap();
        s.delete("logs/a.log").await.unwrap();
        assert!(s.list("logs/").await.unwrap().is_empty());
        assert!(matches!(
            s.put_new("../escape", b"x").await,
            Err(BackupError::Refused(_))
        ));
    }
}
