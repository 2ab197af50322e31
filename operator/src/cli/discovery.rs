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

/// Whether the file is to be rewritten with `now`, `written` being what it
/// was written with last: only a string that changed, and never an empty
/// one (no member serves yet, or none does for a moment): a client reading
/// the file then would get nothing, where the last good string still works
/// as well as it can.
fn to_write(now: &str, written: Option<&str>) -> bool {
    !now.is_empty() && written != Some(now)
}

/// Keeps `file` equal to the connect string while this controller leads.
pub async fn run(shared: Arc<Shared>, file: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut written: Option<String> = None;
    loop {
        let now = shared.status().connect_string;
        if shared.lease_left() > Duration::ZERO && to_write(&now, written.as_deref()) {
            match zkop_runtime::files::write_atomic(&file, format!("{now}\n").as_bytes(), 0o644) {
                Ok(()) => {
                    info!(file = %file.display(), connect_string = %now, "the connect string changed");
                    shared.event("connect_string", format!("clients connect with {now}"));
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

#[cfg(test)]
mod tests {
    use super::to_write;

    #[test]
    fn the_file_is_written_only_with_a_string_and_never_emptied() {
        // Issue 24, finding 9: at start no member serves yet.
        assert!(!to_write("", None));
        assert!(to_write("10.0.1.5:2181", None));
        assert!(!to_write("10.0.1.5:2181", Some("10.0.1.5:2181")));
        assert!(to_write(
            "10.0.1.5:2181,10.0.1.6:2181",
            Some("10.0.1.5:2181")
        ));
        // Every member down for a moment: the good string stays.
        assert!(!to_write("", Some("10.0.1.5:2181")));
    }
}
