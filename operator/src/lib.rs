//! zkop's controller: keeps a ZooKeeper ensemble's membership equal to its spec.
//!
//! The pipeline of one reconcile pass, and whether each part does I/O:
//! `observe` (fleet + agent reports + persisted state; I/O) -> [`plan`] (pure)
//! -> [`act`] (one step; I/O) -> persist -> requeue. [`api`] serves agents and the
//! CLI; [`adapters`] hold the fleet, id ledger and state store behind traits.

pub mod act;
pub mod adapters;
pub mod api;
pub mod bench;
pub mod controller;
pub mod desired;
pub mod leadership;
pub mod local;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod run;
pub mod sandbox;
pub mod secrets;
pub mod serve;
pub mod status;
