//! Space on a data directory's filesystem, as agents report it.

use serde::{Deserialize, Serialize};

/// Space on one filesystem, as statvfs(3) gives it to an unprivileged
/// process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskSpace {
    /// Bytes a process may still write.
    pub free_bytes: u64,
    /// The filesystem's size.
    pub total_bytes: u64,
}

/// Below this much free space a data directory is full: ZooKeeper cannot
/// write its next snapshot or transaction log and stops (or keeps failing
/// to sync from its leader).
pub const DATA_DISK_FULL_BELOW_BYTES: u64 = 16 * 1024 * 1024;

impl DiskSpace {
    /// Whether ZooKeeper can no longer count on writing here.
    pub fn full(&self) -> bool {
        self.free_bytes < DATA_DISK_FULL_BELOW_BYTES
    }
}
