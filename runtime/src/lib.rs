//! What zkop's controller (`zkop`) and agent (`zkop-agent`) both do at run
//! time, written once: the logging set-up, atomic file writes that keep
//! their fsync and mode, the cluster's secrets (private files, or the SSM
//! SecureString parameter), the cluster CA (a local file, or SSM), and
//! backup storage with restores from it.

pub mod backup;
pub mod files;
pub mod logging;
pub mod pki;
pub mod pki_ssm;
pub mod secrets;
