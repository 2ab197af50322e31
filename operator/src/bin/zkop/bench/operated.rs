//! The zkop side: a `zkop local up` child process, driven through its spec
//! file and API and read through its status, as a user would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use zkop_spec::wire::StatusReply;

use super::{BenchError, BenchOptions, io, wait_for};
use zkop::cli::client::{ApiFile, fetch, read_api_file, request_replace, request_roll};
use zkop::cli::local;

/// An operation timed from the user's action to the cluster settled.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// One more replica (joins as an observer).
    AddMember,
    /// `zkop replace` on the leader (true) or a follower.
    Replace(bool),
    /// `zkop roll`.
    Roll,
}

/// The zkop run's times.
pub struct Measured {
    /// From the kill to phase `QuorumLost`.
    pub detection: Duration,
    /// From the lost voters fenced to three voters serving.
    pub recovery: Duration,
}

/// `zkop local up` as a child that dies with the bench; stopped on drop.
pub(super) struct LocalUp {
    pub(super) child: Child,
}

impl LocalUp {
    /// `zkop local up SPEC` (a file or a directory of specs).
    pub(super) fn start(
        opts: &BenchOptions,
        spec: &Path,
        state_dir: &Path,
    ) -> Result<LocalUp, BenchError> {
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
    pub(super) async fn stop(mut self) {
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

/// The resident memory of `pid`, MiB to a tenth.
pub(super) fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

fn voters_serving(s: &StatusReply, n: usize) -> bool {
    let voters: Vec<_> = s
        .members
        .iter()
        .filter(|m| m.role == "leader" || m.role == "follower")
        .collect();
    voters.len() == n
        && voters.iter().all(|m| m.healthy)
        && voters.iter().filter(|m| m.role == "leader").count() == 1
}

/// `n` voters and `o` observers, all serving, and nothing left to do.
fn settled(s: &StatusReply, n: usize, o: usize) -> bool {
    s.phase == "Running"
        && s.members.len() == n + o
        && voters_serving(s, n)
        && s.members.iter().filter(|m| m.role == "observer").count() == o
        && s.members.iter().all(|m| m.healthy)
}

/// One `zkop local up` cluster, driven through its spec file and API as a
/// user would, each operation timed from the user's action to the cluster
/// settled again.
pub struct Session {
    up: LocalUp,
    spec_path: PathBuf,
    state_dir: PathBuf,
    api: ApiFile,
    voters: usize,
}

impl Session {
    /// The cluster's state directory (`api.json`, `fleet.json`).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Starts `zkop local up` with `voters` replicas; returns the session and
    /// the time from the start to the first leader (then waits, untimed, for
    /// every voter to serve).
    pub async fn start(
        opts: &BenchOptions,
        spec_text: &str,
        voters: usize,
        dir: &Path,
    ) -> Result<(Session, Duration), BenchError> {
        Self::start_with(opts, spec_text, voters, 0, dir).await
    }

    /// `start`, waiting at the end for `observers` observers too (standbys).
    pub async fn start_with(
        opts: &BenchOptions,
        spec_text: &str,
        voters: usize,
        observers: usize,
        dir: &Path,
    ) -> Result<(Session, Duration), BenchError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let spec_path = dir.join("spec.yaml");
        let text = spec_text.replace("replicas: 3", &format!("replicas: {voters}"));
        std::fs::write(&spec_path, text).map_err(io(format!("writing {}", spec_path.display())))?;
        let state_dir = dir.join("state");
        // Started again on its state: a stopped controller's api.json names
        // its old port.
        let _ = std::fs::remove_file(state_dir.join("api.json"));
        let started = Instant::now();
        let up = LocalUp::start(opts, &spec_path, &state_dir)?;
        let api = wait_for("the controller's api.json", || async {
            read_api_file(&state_dir).ok()
        })
        .await?;
        let session = Session {
            up,
            spec_path,
            state_dir,
            api,
            voters,
        };
        session
            .wait("a first leader", |s| {
                s.members.iter().any(|m| m.role == "leader" && m.healthy)
            })
            .await?;
        let took = started.elapsed();
        session
            .wait("every voter serving", |s| settled(s, voters, observers))
            .await?;
        Ok((session, took))
    }

    /// A follower's ZooKeeper hangs (SIGSTOP; its agent and instance live):
    /// the time until the full voter count serves again without it.
    pub async fn voter_hangs(&self, observers: usize) -> Result<Duration, BenchError> {
        let n = self.voters;
        let before = self.wait("settled", |s| settled(s, n, observers)).await?;
        let victim = before
            .members
            .iter()
            .find(|m| m.role == "follower")
            .ok_or_else(|| BenchError::Setup("no follower".into()))?
            .instance
            .clone();
        let pid_file = self
            .state_dir
            .join("instances")
            .join(&*victim)
            .join("zookeeper.pid");
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .filter(|p| zkop::adapters::local::fleet_support::process_is(*p, "QuorumPeerMain"))
            .ok_or_else(|| BenchError::Setup(format!("no server PID in {}", pid_file.display())))?;
        let signal = |sig| {
            // SAFETY: kill(2) on a PID checked to run this member's ZooKeeper.
            unsafe { libc::kill(pid as libc::pid_t, sig) };
        };
        signal(libc::SIGSTOP);
        let started = Instant::now();
        let restored = self
            .wait(&format!("{n} voters serving without the hung one"), |s| {
                voters_serving(s, n)
                    && !s.members.iter().any(|m| {
                        m.instance == victim && (m.role == "leader" || m.role == "follower")
                    })
            })
            .await;
        let took = started.elapsed();
        // Resumed, so that the stop finds a process that answers SIGTERM.
        signal(libc::SIGCONT);
        restored.map(|_| took)
    }

    pub(super) async fn wait(
        &self,
        what: &str,
        pred: impl Fn(&StatusReply) -> bool,
    ) -> Result<StatusReply, BenchError> {
        wait_for(what, || async {
            fetch(&self.api).await.ok().filter(|s| pred(s))
        })
        .await
    }

    /// Replaces `from` with `to` in the spec file, as a user's edit.
    pub(super) fn edit_spec(&self, from: &str, to: &str) -> Result<(), BenchError> {
        let text = std::fs::read_to_string(&self.spec_path)
            .map_err(io(format!("reading {}", self.spec_path.display())))?;
        std::fs::write(&self.spec_path, text.replace(from, to))
            .map_err(io(format!("writing {}", self.spec_path.display())))
    }

    fn set_replicas(&self, from: usize, to: usize) -> Result<(), BenchError> {
        self.edit_spec(&format!("replicas: {from}"), &format!("replicas: {to}"))
    }

    /// `spec.zookeeper.version` edited from `from` to `to`: to the roll-out
    /// finished (the controller's event: the last member restarted serves
    /// again and has caught up, as the hand run's last wait), once every
    /// member serves on `to`.
    pub async fn upgrade(&self, from: &str, to: &str) -> Result<Duration, BenchError> {
        let since = zkop::clock::Clock::wall_ms(&zkop::clock::SystemClock);
        self.edit_spec(&format!("version: {from}"), &format!("version: {to}"))?;
        let done = |s: &StatusReply| {
            s.events
                .iter()
                .find(|e| e.at_ms >= since && e.kind == "finish_rollout")
                .map(|e| e.at_ms)
        };
        let s = self
            .wait(&format!("every member serving on {to}"), |s| {
                settled(s, self.voters, 0)
                    && s.members
                        .iter()
                        .all(|m| m.zookeeper_version.as_deref() == Some(to))
                    && done(s).is_some()
            })
            .await?;
        let finished = done(&s).unwrap_or(since);
        Ok(Duration::from_millis(finished.saturating_sub(since)))
    }

    /// Runs `op`; how long it took.
    pub async fn run(&self, op: Op) -> Result<Duration, BenchError> {
        match op {
            Op::AddMember => self.add_member().await,
            Op::Replace(leader) => self.replace_voter(leader).await,
            Op::Roll => self.rolling_restart().await,
        }
    }

    /// The controller's events stamped from `from_ms` to `until_ms` (ms
    /// since the Unix epoch), as steps from `from_ms` (none when its status
    /// cannot be read).
    pub async fn steps_between(
        &self,
        from_ms: u64,
        until_ms: u64,
    ) -> Vec<super::explain::StepTime> {
        match fetch(&self.api).await {
            Ok(s) => super::explain::steps_between(&s.events, from_ms, until_ms),
            Err(_) => Vec::new(),
        }
    }

    /// One more replica: a new member joins as an observer.
    async fn add_member(&self) -> Result<Duration, BenchError> {
        let started = Instant::now();
        self.set_replicas(self.voters, self.voters + 1)?;
        self.wait("the new member serving as an observer", |s| {
            settled(s, self.voters, 1)
        })
        .await?;
        Ok(started.elapsed())
    }

    /// `zkop replace` on the leader's or a follower's instance: to the old
    /// instance terminated and the cluster settled.
    async fn replace_voter(&self, leader: bool) -> Result<Duration, BenchError> {
        let before = self.wait("settled", |s| settled(s, self.voters, 1)).await?;
        let role = if leader { "leader" } else { "follower" };
        let old = before
            .members
            .iter()
            .find(|m| m.role == role)
            .ok_or_else(|| BenchError::Setup(format!("no {role}")))?
            .instance
            .clone();
        let started = Instant::now();
        request_replace(&self.api, &old).await?;
        self.wait(&format!("{old} replaced"), |s| {
            settled(s, self.voters, 1)
                && !s.members.iter().any(|m| m.instance == old)
                && s.events
                    .iter()
                    .any(|e| e.kind == "terminate_instance" && e.message.contains(&*old))
        })
        .await?;
        Ok(started.elapsed())
    }

    /// `zkop roll`: to the roll-out finished.
    async fn rolling_restart(&self) -> Result<Duration, BenchError> {
        let from = zkop::clock::Clock::wall_ms(&zkop::clock::SystemClock);
        let started = Instant::now();
        request_roll(&self.api).await?;
        self.wait("the roll-out finished", |s| {
            settled(s, self.voters, 1)
                && s.events
                    .iter()
                    .any(|e| e.at_ms >= from && e.kind == "finish_rollout")
        })
        .await?;
        Ok(started.elapsed())
    }

    /// Back to voters only (untimed).
    pub async fn remove_observer(&self) -> Result<(), BenchError> {
        self.set_replicas(self.voters + 1, self.voters)?;
        self.wait("voters only", |s| settled(s, self.voters, 0))
            .await
            .map(|_| ())
    }

    /// SIGKILLs the leader and followers until a minority is left; times
    /// detection and recovery from the controller's own events.
    pub async fn quorum_loss(&self) -> Result<Measured, BenchError> {
        let n = self.voters;
        let before = self.wait("settled", |s| settled(s, n, 0)).await?;
        let lost = n / 2 + 1;
        let mut victims: Vec<_> = before
            .members
            .iter()
            .filter(|m| m.role == "leader")
            .collect();
        victims.extend(
            before
                .members
                .iter()
                .filter(|m| m.role == "follower")
                .take(lost - 1),
        );
        let killed_at = zkop::clock::Clock::wall_ms(&zkop::clock::SystemClock);
        for m in victims {
            local::kill(&self.state_dir, &m.instance)
                .map_err(|e| BenchError::Setup(e.to_string()))?;
        }
        let after = self
            .wait(&format!("{n} voters serving after the recovery"), |s| {
                s.events
                    .iter()
                    .any(|e| e.at_ms >= killed_at && e.kind == "force_config")
                    && settled(s, n, 0)
            })
            .await?;
        let done_at = zkop::clock::Clock::wall_ms(&zkop::clock::SystemClock);
        let detected_at = after
            .events
            .iter()
            .find(|e| {
                e.at_ms >= killed_at && e.kind == "phase" && e.message.contains("-> QuorumLost")
            })
            .map(|e| e.at_ms)
            .ok_or_else(|| BenchError::Setup("no QuorumLost event after the kill".into()))?;
        // Fencing is done at the last fence, or at detection when the lost
        // voters were already gone (killed instances are).
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

    /// The controller's resident memory now, in MiB (`zkop local up` is the
    /// controller and the local fleet's bookkeeping in one process).
    pub fn controller_rss_mib(&self) -> Option<f64> {
        rss_mib(self.up.child.id()?)
    }

    /// The cluster's API, as its `api.json` names it.
    pub fn api(&self) -> &ApiFile {
        &self.api
    }

    /// Stops the cluster (every agent and server).
    pub async fn stop(self) {
        self.up.stop().await;
    }
}
