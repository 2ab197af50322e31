//! Porcupine (github.com/anishathalye/porcupine, the checker etcd's
//! robustness tests use) run on a recorded history: `tools/linearizability`
//! is built once per test process with Go, offline (`scripts/install-deps`
//! fetched its one module), into the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

/// Porcupine's verdict, as `tools/linearizability` prints it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linearizability {
    /// Operations checked (reads without an answer are left out).
    pub operations: usize,
    /// Znodes (one register each).
    pub keys: usize,
    /// `Ok`, `Illegal`, or `Unknown` when the search timed out.
    pub result: String,
    /// The first znode whose history is not linearizable.
    #[serde(default)]
    pub failing_key: String,
    /// Operations in its shortest failing slice.
    #[serde(default)]
    pub slice_operations: usize,
    /// How long the check took.
    pub millis: u64,
}

/// Builds the checker (once) and returns its path.
pub fn checker_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // The target directory: the parent of the test executable's `deps/`.
        let target = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.to_path_buf()))
            .unwrap_or_else(|| PathBuf::from("target"));
        let bin = target.join("zkop-linearizability");
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(super::super::repo_root().join("tools/linearizability"))
            // Offline: scripts/install-deps downloaded the module.
            .env("GOFLAGS", "-mod=readonly")
            .env("GOPROXY", "off")
            .output()
            .unwrap_or_else(|e| panic!("running go build (scripts/install-deps installs Go): {e}"));
        assert!(
            out.status.success(),
            "go build tools/linearizability: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

/// Checks the history at `history`; an illegal one leaves its shortest
/// failing slice at `slice` and Porcupine's drawing of it at `html`.
pub fn check_linearizable(history: &Path, slice: &Path, html: &Path) -> Linearizability {
    let out = Command::new(checker_bin())
        .arg("-history")
        .arg(history)
        .arg("-slice")
        .arg(slice)
        .arg("-html")
        .arg(html)
        .output()
        .unwrap_or_else(|e| panic!("running the linearizability checker: {e}"));
    assert!(
        out.status.success(),
        "the linearizability checker failed on {}: {}",
        history.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the linearizability checker's answer {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
