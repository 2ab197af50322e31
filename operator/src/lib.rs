//! zkop's controller: keeps a ZooKeeper ensemble's membership equal to its spec.
//!
//! The pipeline of one reconcile pass, and whether each part does I/O:
//! [`controller`] observes (fleet + agent reports + persisted state; I/O) ->
//! [`plan`] (pure) -> [`act`] (one step; I/O) -> persist -> requeue. [`api`]
//! serves agents and the CLI; [`adapters`] hold every port (fleet, id ledger,
//! state store, lease) and its adapters; [`cli`] loads input and starts it all.
//! Time comes from a [`clock`]. docs/design.md maps who may depend on whom.

pub mod act;
pub mod adapters;
pub mod api;
pub mod api_tls;
pub mod canary;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod desired;
pub mod group_api;
pub mod metrics;
pub mod model;
pub mod plan;
