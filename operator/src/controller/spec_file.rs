//! The spec file, followed while running: re-read each pass, so edits apply
//! live; an invalid or renamed spec, or one that changes a field that cannot
//! change live (`zkop_spec::live`), is refused with an event and the running
//! spec kept.

use std::path::PathBuf;

use zkop_spec::live::fixed_fields_changed;

use super::state::Shared;

/// Where the spec comes from: re-read each pass, so edits apply while running.
#[derive(Debug)]
pub struct SpecFile {
    path: PathBuf,
    last_text: Option<String>,
}

impl SpecFile {
    /// Watches `path`; `text` is what was loaded at start.
    pub fn new(path: PathBuf, text: String) -> Self {
        Self {
            path,
            last_text: Some(text),
        }
    }

    /// Resolves once the file's text differs from the one last read (looked
    /// at every 100 ms): an edit starts a pass at once, not at the next idle
    /// one (500 ms on).
    pub async fn edited(&self) {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if let Ok(text) = tokio::fs::read_to_string(&self.path).await
                && self.last_text.as_deref() != Some(text.as_str())
            {
                return;
            }
        }
    }

    /// Applies the file if it changed: a valid new spec replaces the running
    /// one; anything else is refused with an event.
    pub fn poll(&mut self, shared: &Shared) {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return;
        };
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
}
