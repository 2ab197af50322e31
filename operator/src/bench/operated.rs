//! The zkop side: a `zkop local up` child process, driven and read through
//! its API as a user would.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use zkop_spec::wire::StatusReply;

use super::{BenchError, BenchOptions, io, wait_for};
use crate::local;
use crate::status::{fetch, read_api_file};

/// The zkop run's times.
pub struct Measured {
    /// From the kill to phase `QuorumLost`.
    pub detection: Duration,
    /// From the lost voters fenced to three voters serving.
    pub recovery: Duration,
}

/// `zkop local up` as a child that dies with the bench; stopped on drop.
struct LocalUp {
    child: Child,
}

impl LocalUp {
    fn start(opts: &BenchOptions, spec: &Path, state_dir: &Path) -> Result<LocalUp, BenchError> {
        let zkop = std::env::current_exe().map_err(io("locating the zkop binary"))?;
        let mut cmd = Command::new(zkop);
        cmd.args(["local", "up"])
            .arg(spec)
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--network", &opts.zkop_network])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(a) = &opts.agent_bin {
            cmd.arg("--agent-bin").arg(a);
        }
        zkop_zk::jvm::die_with_parent(&mut cmd, libc::SIGTERM);
        let child = cmd.spawn().map_err(io("starting zkop local up"))?;
        Ok(LocalUp { child })
    }

    /// SIGTERM, which stops the agents and their servers, then waits.
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn voters_serving(s: &StatusReply, n: usize) -> bool {
    let voters: Vec<_> = s
        .members
        .iter()
        .filter(|m| m.role == "leader" || m.role == "follower")
        .collect();
    voters.len() == n
        && s.members.len() == n
        && voters.iter().all(|m| m.healthy)
        && voters.iter().filter(|m| m.role == "leader").count() == 1
}

/// Brings up three voters, SIGKILLs the leader and one follower, and times
/// detection and recovery from the controller's own events.
pub async fn quorum_loss_recovery(
    opts: &BenchOptions,
    spec_text: &str,
    dir: &Path,
) -> Result<Measured, BenchError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let spec = dir.join("spec.yaml");
    std::fs::write(&spec, spec_text).map_err(io(format!("writing {}", spec.display())))?;
    let state_dir = dir.join("state");
    let up = LocalUp::start(opts, &spec, &state_dir)?;
    let result = measure(&state_dir).await;
    up.stop().await;
    result
}

async fn measure(state_dir: &Path) -> Result<Measured, BenchError> {
    let api = wait_for("the controller's api.json", || async {
        read_api_file(state_dir).ok()
    })
    .await?;
    let status = || async { fetch(&api.url, &api.token_file).await.ok() };
    // Running: the controller has seen the leader, so detection starts at the kill.
    let before = wait_for("three voters serving, phase Running", || async {
        status()
            .await
            .filter(|s| s.phase == "Running" && voters_serving(s, 3))
    })
    .await?;
    let survivor = before
        .members
        .iter()
        .find(|m| m.role == "follower")
        .ok_or_else(|| BenchError::Setup("no follower to keep".into()))?
        .clone();
    let killed_at = crate::controller::now_ms();
    for m in before.members.iter().filter(|m| m.id != survivor.id) {
        local::kill(state_dir, &m.instance).map_err(|e| BenchError::Setup(e.to_string()))?;
    }
    let after = wait_for("three voters serving after the recovery", || async {
        status()
            .await
            .filter(|s| s.events.iter().any(|e| e.kind == "force_config") && voters_serving(s, 3))
    })
    .await?;
    let done_at = crate::controller::now_ms();
    let detected_at = after
        .events
        .iter()
        .find(|e| e.at_ms >= killed_at && e.kind == "phase" && e.message.contains("-> QuorumLost"))
        .map(|e| e.at_ms)
        .ok_or_else(|| BenchError::Setup("no QuorumLost event after the kill".into()))?;
    // Fencing is done at the last fence, or at detection when the lost voters
    // were already gone (killed instances are).
    let fenced_at = after
        .events
        .iter()
        .filter(|e| e.at_ms >= killed_at && e.kind == "fence_instance")
        .map(|e| e.at_ms)
        .max()
        .unwrap_or(detected_at)
        .max(detected_at);
    Ok(Measured {
        detection: Duration::from_millis(detected_at - killed_at),
        recovery: Duration::from_millis(done_at.saturating_sub(fenced_at)),
    })
}
