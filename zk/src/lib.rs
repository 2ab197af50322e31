//! Talking to one ZooKeeper server: what the agent does to its own server, and
//! what `zkop bench` does by hand to plain servers.

pub mod endpoint;
pub mod jvm;
pub mod probe;
pub mod reconfig;

pub use endpoint::{ClientTls, Endpoint};
pub use reconfig::super_digest;
