//! Planner tests: table tests per concern on builders (`kit`), and a property
//! test that drives the real planner and `act` against an in-memory fleet and
//! a simulated ensemble (`sim`).

mod backup;
mod bootstrap;
mod hooks;
pub(crate) mod kit;
mod liveness;
mod membership;
mod recovery;
mod replacement;
mod rollout;
mod sim;
mod standby;
mod tls;
mod uniqueness;
mod upgrade;
mod zones;
