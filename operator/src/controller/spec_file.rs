//! The spec file, followed while running: re-read each pass, so edits apply
//! live; an invalid or renamed spec is refused with an event and the running
//! spec kept.

use std::path::PathBuf;

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
