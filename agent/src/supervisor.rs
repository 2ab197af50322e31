//! The supervised ZooKeeper JVM: started on demand, restarted with backoff after
//! it exits, stopped with SIGTERM (then SIGKILL) when told.

use std::time::{Duration, Instant};

use tokio::process::Child;
use zkop_zk::jvm::JvmCommand;

use crate::node::{Layout, write_atomic};

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long resets the backoff: the crash was not a start-up failure.
const STABLE_RUN: Duration = Duration::from_secs(30);

/// Supervises at most one ZooKeeper process.
#[derive(Debug)]
pub struct Supervisor {
    layout: Layout,
    child: Option<Child>,
    started_at: Option<Instant>,
    starts: u32,
    last_exit: Option<String>,
    backoff: Duration,
    not_before: Option<Instant>,
}

impl Supervisor {
    /// A supervisor for the node under `layout`; nothing runs yet.
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            child: None,
            started_at: None,
            starts: 0,
            last_exit: None,
            backoff: MIN_BACKOFF,
            not_before: None,
        }
    }

    /// Whether the JVM runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// The JVM's PID when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// How many times it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// How the last run ended.
    pub fn last_exit(&self) -> Option<&str> {
        self.last_exit.as_deref()
    }

    /// Notices an exit; returns its description when the process just ended.
    pub fn reap(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                let ran = self.started_at.map(|t| t.elapsed()).unwrap_or_default();
                self.backoff = if ran >= STABLE_RUN {
                    MIN_BACKOFF
                } else {
                    (self.backoff * 2).min(MAX_BACKOFF)
                };
                self.not_before = Some(Instant::now() + self.backoff);
                self.child = None;
                let _ = std::fs::remove_file(self.layout.pid_file());
                let log = self.layout.log_dir().join("zookeeper.out");
                let what = format!(
                    "ZooKeeper exited ({status}) after {:.1}s{}",
                    ran.as_secs_f64(),
                    last_lines(&log, 3)
                        .map(|l| format!("; its log ends: {l}"))
                        .unwrap_or_default()
                );
                self.last_exit = Some(what.clone());
                Some(what)
            }
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for ZooKeeper: {e}")),
        }
    }

    /// Whether a start is allowed now (not inside a crash backoff).
    pub fn may_start(&self) -> bool {
        self.child.is_none() && self.not_before.is_none_or(|t| Instant::now() >= t)
    }

    /// Forgets the crash backoff: the next start is a new attempt (new
    /// settings, another release), not a repeat of the one that crashed.
    pub fn clear_backoff(&mut self) {
        self.backoff = MIN_BACKOFF;
        self.not_before = None;
    }

    /// Starts the JVM on the node's `zoo.cfg`.
    pub fn start(&mut self, cmd: &JvmCommand) -> std::io::Result<u32> {
        let log_dir = self.layout.log_dir();
        std::fs::create_dir_all(&log_dir)?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join("zookeeper.out"))?;
        let mut command = cmd.command(&self.layout.zoo_cfg(), &log_dir, out)?;
        let child = command.spawn()?;
        let pid = child.id().unwrap_or_default();
        let _ = write_atomic(&self.layout.pid_file(), &format!("{pid}\n"));
        self.child = Some(child);
        self.started_at = Some(Instant::now());
        self.starts += 1;
        Ok(pid)
    }

    /// Stops the JVM: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            // SAFETY: plain kill(2) on our own child's PID, which we have not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        let _ = std::fs::remove_file(self.layout.pid_file());
        self.last_exit = Some("stopped by the agent".into());
        self.not_before = None;
    }
}

/// The last `n` non-empty lines of the log at `path`, joined with ` | `:
/// why a server that exited at once did (a release not installed, a bad
/// config), for status and the halt of a roll-out.
fn last_lines(path: &std::path::Path, n: usize) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 8 * 1024;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    (!tail.is_empty()).then(|| tail.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn a_server_that_exits_at_once_is_reported_with_its_last_log_lines() {
        let dir = tempfile::tempdir().unwrap();
        // A "java" that fails as a broken install does.
        let java = dir.path().join("java");
        std::fs::write(
            &java,
            "#!/bin/sh\necho starting\necho 'Error: Could not find or load main class org.apache.zookeeper.server.quorum.QuorumPeerMain' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).unwrap();
        let layout = Layout::new(dir.path().join("node"));
        let mut s = Supervisor::new(layout);
        let cmd = JvmCommand {
            java,
            classpath: "/nowhere/*".into(),
            heap_mb: 64,
            jvm_flags: vec![],
            super_digest: "super:x".into(),
        };
        s.start(&cmd).unwrap();
        let exit = loop {
            if let Some(exit) = s.reap() {
                break exit;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            exit.contains("exit status: 1")
                && exit.ends_with("its log ends: starting | Error: Could not find or load main class org.apache.zookeeper.server.quorum.QuorumPeerMain"),
            "{exit}"
        );
        assert_eq!(s.last_exit(), Some(exit.as_str()));
    }
}
