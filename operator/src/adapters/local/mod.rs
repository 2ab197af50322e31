//! Local adapters: processes on loopback addresses, files in the state directory.

mod agents;
mod fleet;
mod ids;
mod netns;
mod store;

pub use agents::{AgentCommand, AgentProcesses, AgentSecrets};
pub use fleet::{LocalFleet, LocalInstanceRecord, free_address, read_fleet_file};
pub use netns::Namespaces;

/// Helpers of the local fleet that `zkop local` commands share.
pub mod fleet_support {
    pub use super::agents::{kill_server_of, process_is};
    pub use super::fleet::{parse_namespaced_network, parse_network};
    pub use super::netns::{bridge, hub_link};
}
pub use ids::FileLedger;
pub use store::FileStore;

pub use zkop_runtime::files::write_atomic;
