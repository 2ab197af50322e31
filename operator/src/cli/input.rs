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

/// Resolves `--state-dir` for commands without a spec: the flag, or the only
/// cluster under `.zkop/`.
pub fn find_state_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d);
    }
    let dirs: Vec<PathBuf> = std::fs::read_dir(".zkop")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(InputError::Usage(
            "no cluster under .zkop/: pass --state-dir DIR".into()
        )),
        _ => bail!(InputError::Usage(
            "several clusters under .zkop/: pass --state-dir DIR".into()
        )),
    }
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
