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
    data_refused: Option<String>,
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
            data_refused: None,
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

    /// Why ZooKeeper refused its data directory, if its last run ended so;
    /// said while it is down (a run that starts may be on repaired data).
    pub fn data_refused(&self) -> Option<String> {
        self.data_refused.clone().filter(|_| !self.running())
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
                if ran >= STABLE_RUN {
                    self.data_refused = None;
                }
                if let Some(why) = read_tail(&log).as_deref().and_then(refused_data) {
                    self.data_refused = Some(why);
                }
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

/// The end of the log at `path` (its last 8 KiB).
fn read_tail(path: &std::path::Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 8 * 1024;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// What ZooKeeper 3.9 says when the committed log it loads at start has a
/// hole (`ZKDatabase.addCommittedProposal`); a 3.8 follower's log can hold
/// one (ZOOKEEPER-4394), and so can 3.9.3's (ZOOKEEPER-4925).
const LOG_HOLE: &str = "Committed proposal cached out of order:";

/// Why ZooKeeper refused its own data directory, from the end of its log:
/// the last run's error naming a hole in the transaction log, if any.
fn refused_data(log_tail: &str) -> Option<String> {
    // Only the last run's lines: from its last start on.
    let run = log_tail
        .rfind("Server environment:zookeeper.version")
        .map_or(log_tail, |at| &log_tail[at..]);
    let line = run.lines().rev().find(|l| l.contains(LOG_HOLE))?;
    let said = line.split_once(LOG_HOLE).map_or("", |(_, r)| r).trim();
    Some(format!(
        "its transaction log has a hole ({said}): ZooKeeper will not load it; the quorum holds these transactions, this copy cannot be trusted"
    ))
}

/// The last `n` non-empty lines of the log at `path`, joined with ` | `:
/// why a server that exited at once did (a release not installed, a bad
/// config), for status and the halt of a roll-out.
fn last_lines(path: &std::path::Path, n: usize) -> Option<String> {
    let text = read_tail(path)?;
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

    #[test]
    fn a_hole_in_the_transaction_log_is_named_from_the_last_run_only() {
        // As ZooKeeper 3.9.5 logged it on a member whose 3.8.6 follower had
        // left a hole in its log (seed 2612 of the fault suite).
        let hole = "2026-12-07 10:53:38,176 [myid:3] - ERROR [main:o.a.z.s.ZKDatabase@340] - Committed proposal cached out of order: 0xd00000162 is not the next proposal of 0xd00000144\n\
            2026-12-07 10:53:38,176 [myid:3] - ERROR [main:o.a.z.s.q.QuorumPeerMain@114] - Unexpected exception, exiting abnormally\n\
            java.lang.IllegalStateException: Committed proposal cached out of order: 0xd00000162 is not the next proposal of 0xd00000144\n\
            \tat org.apache.zookeeper.server.ZKDatabase.addCommittedProposal(ZKDatabase.java:340)\n\
            2026-12-07 10:53:38,184 [myid:3] - ERROR [main:o.a.z.u.ServiceUtils@48] - Exiting JVM with code 1\n";
        let start = "2026-12-07 10:53:37,100 [myid:3] - INFO  [main:o.a.z.Environment@98] - Server environment:zookeeper.version=3.9.5\n";
        let why = refused_data(&format!("{start}{hole}")).unwrap();
        assert!(
            why.starts_with("its transaction log has a hole (0xd00000162 is not the next proposal of 0xd00000144)"),
            "{why}"
        );
        // A later run that started and failed otherwise says nothing of it.
        let later = format!(
            "{start}{hole}{start}... ERROR Unable to load database on disk: No space left on device\n"
        );
        assert_eq!(refused_data(&later), None);
        assert_eq!(refused_data(""), None);
    }

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
