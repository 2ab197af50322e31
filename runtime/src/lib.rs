//! What zkop's controller (`zkop`) and agent (`zkop-agent`) both do at run
//! time, written once: the logging set-up, atomic file writes that keep
//! their fsync and mode, and the cluster's secrets (private files, or the SSM
//! SecureString parameter).

pub mod files;
pub mod logging;
pub mod secrets;
