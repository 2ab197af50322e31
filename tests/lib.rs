//! The harness zkop's end-to-end suites share: clusters started through the
//! real `zkop` and `zkop-agent` binaries, real ZooKeeper servers, moto, and
//! waiting for conditions with deadlines. The suites are this package's tests.

pub mod common;
