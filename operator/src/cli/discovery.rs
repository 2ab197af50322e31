//! The connect string where clients' tooling looks on the controller's
//! host: `STATE_DIR/connect-string`, rewritten atomically (never half
//! written) when it changes, with a `connect_string` event.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::controller::Shared;

/// The file's name in the state directory.
pub const FILE: &str = "connect-string";

/// How often the string is compared with the file's (within a pass).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Keeps `file` equal to the connect string while this controller leads.
pub async fn run(shared: Arc<Shared>, file: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut written: Option<String> = None;
    loop {
        let now = shared.status().connect_string;
        if shared.lease_left() > Duration::ZERO && written.as_ref() != Some(&now) {
            match zkop_runtime::files::write_atomic(&file, format!("{now}\n").as_bytes(), 0o644) {
                Ok(()) => {
                    info!(file = %file.display(), connect_string = %now, "the connect string changed");
                    if !now.is_empty() {
                        shared.event("connect_string", format!("clients connect with {now}"));
                    }
                    written = Some(now);
                }
                Err(e) => {
                    warn!(file = %file.display(), error = %e, "cannot write the connect string")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
