//! zkop's vocabulary, shared by the controller, the agent and the CLI:
//! the `ZookeeperCluster` spec ([`cluster`], validated by [`validate`]),
//! ZooKeeper's configuration and replies ([`zk`]) and the wire types between
//! controller and agent ([`wire`]). No I/O.

pub mod backup;
pub mod canary;
pub mod clients;
pub mod cluster;
pub mod disk;
pub mod duration;
pub mod fourlw;
pub mod healing;
pub mod instance;
pub mod live;
pub mod network;
pub mod process;
pub mod releases;
pub mod tls;
pub mod tls_stage;
pub mod txnlog;
pub mod validate;
pub mod wire;
pub mod zk;

pub use instance::InstanceId;
pub use validate::{SpecError, ValidatedCluster, parse_spec};

/// The spec's JSON Schema, as `zkop schema` prints it.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(cluster::ZookeeperCluster);
    serde_json::to_value(&schema).unwrap_or_default()
}
