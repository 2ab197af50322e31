//! The spec file, followed while running: re-read each pass, so edits apply
//! live; an invalid or renamed spec, or one that changes a field that cannot
//! change live (`zkop_spec::live`), is refused with an event and the running
//! spec kept.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use zkop_spec::live::fixed_fields_changed;

use super::requeue::GRID;
use super::state::Shared;
use crate::clock::{SharedClock, on_grid};

/// A file's size, modification time (seconds, nanoseconds) and inode, as
/// `stat` gives them.
type Stamp = (u64, i64, i64, u64);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}

/// Where the spec comes from: re-read each pass, so edits apply while running.
#[derive(Debug)]
pub struct SpecFile {
    path: PathBuf,
    last_text: Option<String>,
    /// The file's stamp when `last_text` was read (taken just before).
    last_stamp: Option<Stamp>,
    /// `edited` read a new text under an unchanged stamp: the next `poll`
    /// reads the file even so.
    read_next: AtomicBool,
}

impl SpecFile {
    /// Watches `path`; `text` is what was loaded at start.
    pub fn new(path: PathBuf, text: String) -> Self {
        Self {
            last_stamp: stamp(&path),
            path,
            last_text: Some(text),
            read_next: AtomicBool::new(false),
        }
    }

    /// Resolves once the file's text differs from the one last read: its
    /// size, time and inode are looked at every 100 ms (a `stat`, no read:
    /// a controller of many clusters idles on this), and its text read when
    /// one of them changed, or once a second in case an edit kept all three.
    /// An edit starts a pass at once, not at the next idle one (500 ms on).
    pub async fn edited(&self, clock: &SharedClock) {
        let mut seen = self.last_stamp;
        for tick in 1u64.. {
            // On the process's grid: the spec files of many clusters are
            // looked at on one wake-up.
            let next = clock.now() + std::time::Duration::from_millis(1);
            tokio::time::sleep_until(on_grid(next, GRID)).await;
            let now = stamp(&self.path);
            if now == seen && tick % 10 != 0 {
                continue;
            }
            seen = now;
            if let Ok(text) = std::fs::read_to_string(&self.path)
                && self.last_text.as_deref() != Some(text.as_str())
            {
                self.read_next.store(true, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Applies the file if it changed: a valid new spec replaces the running
    /// one; anything else is refused with an event. The text is read only
    /// when the file's stamp moved or `edited` saw a new one (each pass of
    /// every cluster polls).
    pub fn poll(&mut self, shared: &Shared) {
        let stamp = stamp(&self.path);
        let told = self.read_next.swap(false, Ordering::Relaxed);
        if stamp.is_some() && stamp == self.last_stamp && !told {
            return;
        }
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return;
        };
        self.last_stamp = stamp;
        if self.last_text.as_deref() == Some(text.as_str()) {
            return;
        }
        self.last_text = Some(text.clone());
        let current = shared.spec();
        match zkop_spec::parse_spec(&text) {
            Ok(spec) if spec.name != current.name => shared.event(
                "spec-refused",
                format!(
                    "{}: metadata.name changed from {} to {}; keeping the running spec",
                    self.path.display(),
                    current.name,
                    spec.name
                ),
            ),
            Ok(spec) if spec == current => {}
            Ok(spec) => {
                let fixed = fixed_fields_changed(&current, &spec);
                if !fixed.is_empty() {
                    shared.event(
                        "spec-refused",
                        format!(
                            "{}: {} cannot change while the cluster runs; keeping the running spec",
                            self.path.display(),
                            fixed.join(", ")
                        ),
                    );
                    return;
                }
                shared.event(
                    "spec",
                    format!(
                        "spec changed: replicas {} -> {}, voters {} -> {}",
                        current.replicas,
                        spec.replicas,
                        current.target_voters(),
                        spec.target_voters()
                    ),
                );
                shared.set_spec(spec);
            }
            Err(e) => shared.event(
                "spec-refused",
                format!(
                    "{} is invalid; keeping the running spec: {}",
                    self.path.display(),
                    e.lines().join("; ")
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Persisted;

    const SPEC: &str = "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  fleet:\n    local: {}\n";

    #[test]
    fn a_live_edit_that_cannot_apply_is_refused_naming_the_field_and_the_running_spec_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, SPEC).unwrap();
        let running = zkop_spec::parse_spec(SPEC).unwrap();
        let shared = Shared::new("t".into(), running.clone(), Persisted::default());
        let mut file = SpecFile::new(path.clone(), SPEC.to_string());
        let edit = format!("{SPEC}  zookeeper:\n    clientPort: 2182\n");
        std::fs::write(&path, &edit).unwrap();
        file.poll(&shared);
        assert_eq!(shared.spec(), running);
        let events = shared.status().events;
        let last = events.last().unwrap();
        assert_eq!(last.kind, "spec-refused", "{events:?}");
        assert!(
            last.message.contains("spec.zookeeper.clientPort"),
            "{}",
            last.message
        );
        // A change that can apply live still does.
        std::fs::write(&path, SPEC.replace("replicas: 3", "replicas: 5")).unwrap();
        file.poll(&shared);
        assert_eq!(shared.spec().replicas, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn an_edit_is_noticed_within_a_tick_and_one_keeping_size_and_time_within_a_second_then_applied()
     {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, SPEC).unwrap();
        let file = SpecFile::new(path.clone(), SPEC.to_string());
        let clock = crate::clock::system();
        let tick = std::time::Duration::from_millis(100);
        // Nothing changed: it waits.
        assert!(
            tokio::time::timeout(tick * 25, file.edited(&clock))
                .await
                .is_err()
        );
        // An edit of another size: within a tick or two.
        std::fs::write(&path, SPEC.replace("replicas: 3", "replicas: 13")).unwrap();
        assert!(
            tokio::time::timeout(tick * 2, file.edited(&clock))
                .await
                .is_ok()
        );
        // The same size and, as a coarse clock may leave it, the same time.
        let same = SPEC.replace("replicas: 3", "replicas: 5");
        std::fs::write(&path, SPEC).unwrap();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut file = SpecFile::new(path.clone(), SPEC.to_string());
        let shared = Shared::new(
            "t".into(),
            zkop_spec::parse_spec(SPEC).unwrap(),
            Persisted::default(),
        );
        std::fs::write(&path, &same).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(before)
            .unwrap();
        // A pass alone does not read a file whose stamp stayed (every pass
        // of every cluster polls); the look that read the new text makes
        // the next pass read it.
        file.poll(&shared);
        assert_eq!(shared.spec().replicas, 3);
        assert!(
            tokio::time::timeout(tick * 11, file.edited(&clock))
                .await
                .is_ok()
        );
        file.poll(&shared);
        assert_eq!(shared.spec().replicas, 5);
    }
}
