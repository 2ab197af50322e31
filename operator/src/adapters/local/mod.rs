//! Local adapters: processes on loopback addresses, files in the state directory.

mod agents;
mod fleet;
mod ids;
mod store;

pub use agents::{AgentCommand, AgentProcesses, AgentSecrets};
pub use fleet::{LocalFleet, LocalInstanceRecord, free_address, read_fleet_file};

/// Helpers of the local fleet that `zkop local` commands share.
pub mod fleet_support {
    pub use super::agents::{kill_server_of, process_is};
    pub use super::fleet::parse_network;
}
pub use ids::FileLedger;
pub use store::FileStore;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file, fsync, rename), with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
