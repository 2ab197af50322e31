//! Input the commands take: the spec file, the state directory, the agent
//! binary; and the refusals of bad input (exit code 2), made before anything
//! is started or changed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use zkop_spec::{SpecError, ValidatedCluster};

/// Refusals of bad input, before anything is started or changed (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The spec file is invalid.
    #[error("{path}:\n{error}")]
    Spec {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: SpecError,
    },
    /// A flag or the spec does not fit this command.
    #[error("{0}")]
    Usage(String),
}

/// Reads and validates a spec file.
pub fn load_spec(path: &Path) -> anyhow::Result<(ValidatedCluster, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::Usage(format!("{}: {e}", path.display())))?;
    let spec = zkop_spec::parse_spec(&text).map_err(|error| InputError::Spec {
        path: path.to_path_buf(),
        error,
    })?;
    Ok((spec, text))
}

/// The state directory: the flag, or `.zkop/<metadata.name>`.
pub fn state_dir_for(flag: Option<PathBuf>, name: &str) -> PathBuf {
    flag.unwrap_or_else(|| PathBuf::from(".zkop").join(name))
}

/// Whether `dir` is one cluster's state directory.
fn holds_a_cluster(dir: &Path) -> bool {
    dir.join("api.json").is_file() || dir.join("state.json").is_file()
}

/// The state directories `--state-dir` and `--cluster` name: one cluster's
/// directory, or each cluster's under a directory holding several (as
/// `zkop local up DIR` keeps them, and `.zkop/` by default).
pub fn cluster_state_dirs(
    flag: Option<PathBuf>,
    cluster: Option<&str>,
) -> anyhow::Result<Vec<PathBuf>> {
    let given = flag.is_some();
    let root = flag.unwrap_or_else(|| PathBuf::from(".zkop"));
    if let Some(name) = cluster {
        return Ok(vec![root.join(name)]);
    }
    if given && holds_a_cluster(&root) {
        return Ok(vec![root]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir() && (!given || holds_a_cluster(p)))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    if dirs.is_empty() {
        if given {
            // Reading its api.json says what is missing.
            return Ok(vec![root]);
        }
        bail!(InputError::Usage(
            "no cluster under .zkop/: pass --state-dir DIR".into()
        ));
    }
    Ok(dirs)
}

/// The one cluster's state directory `--state-dir` and `--cluster` name.
pub fn find_state_dir(flag: Option<PathBuf>, cluster: Option<&str>) -> anyhow::Result<PathBuf> {
    let shown = flag
        .as_ref()
        .map_or(".zkop".to_string(), |f| f.display().to_string());
    let mut dirs = cluster_state_dirs(flag, cluster)?;
    if dirs.len() == 1 {
        return Ok(dirs.remove(0));
    }
    let names: Vec<String> = dirs
        .iter()
        .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    bail!(InputError::Usage(format!(
        "several clusters under {shown} ({}): pass --cluster NAME",
        names.join(", ")
    )))
}

/// The `zkop-agent` binary: the flag, `$ZKOP_AGENT_BIN`, or the one beside `zkop`.
pub fn agent_binary(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match flag.or_else(|| std::env::var_os("ZKOP_AGENT_BIN").map(PathBuf::from)) {
        Some(p) => p,
        None => std::env::current_exe()
            .context("locating the zkop binary")?
            .with_file_name("zkop-agent"),
    };
    if !path.is_file() {
        bail!(InputError::Usage(format!(
            "zkop-agent not found at {} (build it with `cargo build --workspace`, or pass --agent-bin)",
            path.display()
        )));
    }
    Ok(path)
}
