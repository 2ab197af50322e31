//! A fleet of local `zkop-agent` processes, each on its own loopback address,
//! behaving as an Auto Scaling group would: it keeps the desired capacity
//! running, replaces an instance whose agent died with a new instance on a new
//! address, and terminates instances when told. Stopping the fleet (`zkop local
//! up` ending) stops processes without terminating instances: the next start
//! brings the same instances back with their data.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::adapters::{Fleet, FleetError, FleetView};
use crate::model::{Instance, InstanceState};

/// How to start an agent.
#[derive(Debug, Clone)]
pub struct AgentCommand {
    /// The `zkop-agent` binary.
    pub binary: PathBuf,
    /// The controller's URL.
    pub controller_url: String,
    /// The API token file.
    pub token_file: PathBuf,
    /// The super-user password file.
    pub password_file: PathBuf,
}

/// One local instance, as `fleet.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalInstanceRecord {
    /// Instance id (`i-0001`).
    pub id: String,
    /// Its loopback address.
    pub address: String,
    /// Running, or terminated (stopped instances are running ones whose
    /// processes are down while `zkop local up` is not running).
    pub terminated: bool,
    /// The agent's PID while it runs.
    pub agent_pid: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FleetFile {
    desired_capacity: u32,
    next_instance: u32,
    instances: BTreeMap<String, LocalInstanceRecord>,
}

/// Reads `fleet.json` from a state directory (for `zkop local kill`).
pub fn read_fleet_file(state_dir: &Path) -> std::io::Result<Vec<LocalInstanceRecord>> {
    let text = std::fs::read_to_string(state_dir.join("fleet.json"))?;
    let file: FleetFile = serde_json::from_str(&text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(file.instances.into_values().collect())
}

struct Inner {
    file: FleetFile,
    children: BTreeMap<String, Child>,
}

/// Local processes as a fleet.
pub struct LocalFleet {
    state_dir: PathBuf,
    network: (Ipv4Addr, u8),
    agent: AgentCommand,
    inner: Mutex<Inner>,
}

/// Parses `127.0.10.0/24`; only loopback ranges are allowed.
pub fn parse_network(cidr: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("--network {cidr}: expected an IPv4 CIDR like 127.0.10.0/24"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("--network {cidr}: `{addr}` is not an IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| format!("--network {cidr}: the prefix must be between 8 and 30"))?;
    if !addr.is_loopback() {
        return Err(format!("--network {cidr}: must be inside 127.0.0.0/8"));
    }
    Ok((addr, prefix))
}

impl LocalFleet {
    /// A fleet in `state_dir` (bookkeeping in `fleet.json`, instances in
    /// `instances/<id>/`), handing out addresses from `network`.
    pub fn open(
        state_dir: &Path,
        network: (Ipv4Addr, u8),
        agent: AgentCommand,
    ) -> std::io::Result<Self> {
        let file = match std::fs::read_to_string(state_dir.join("fleet.json")) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("fleet.json: {e}"))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FleetFile::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            state_dir: state_dir.to_path_buf(),
            network,
            agent,
            inner: Mutex::new(Inner {
                file,
                children: BTreeMap::new(),
            }),
        })
    }

    /// An instance's directory.
    pub fn instance_dir(state_dir: &Path, id: &str) -> PathBuf {
        state_dir.join("instances").join(id)
    }

    fn save(&self, file: &FleetFile) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
        super::write_atomic(&self.state_dir.join("fleet.json"), &json, 0o644)
    }

    fn spawn_agent(&self, rec: &LocalInstanceRecord) -> std::io::Result<Child> {
        let dir = Self::instance_dir(&self.state_dir, &rec.id);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))?;
        let mut cmd = Command::new(&self.agent.binary);
        cmd.arg("--instance")
            .arg(&rec.id)
            .arg("--address")
            .arg(&rec.address)
            .arg("--data-dir")
            .arg(&dir)
            .arg("--controller")
            .arg(&self.agent.controller_url)
            .arg("--token-file")
            .arg(&self.agent.token_file)
            .arg("--super-password-file")
            .arg(&self.agent.password_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches zkop, which
            // stops the agents in order.
            .process_group(0);
        // If zkop dies, its agents stop (and stop their servers) instead of
        // running on unsupervised.
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
    }

    fn next_address(&self, file: &FleetFile) -> Result<String, FleetError> {
        let used: BTreeSet<&str> = file
            .instances
            .values()
            .map(|i| i.address.as_str())
            .collect();
        let base = u32::from(self.network.0) & (u32::MAX << (32 - self.network.1));
        let hosts = (1u32 << (32 - self.network.1)) - 2;
        // Never reuse an address an instance of this state dir ever had: it may
        // still be listed in the config.
        (1..=hosts)
            .map(|h| Ipv4Addr::from(base + h).to_string())
            .find(|a| !used.contains(a.as_str()))
            .ok_or_else(|| FleetError::NoAddress(format!("{}/{}", self.network.0, self.network.1)))
    }

    /// Starts the agents of every instance that is not terminated (after a stop).
    pub async fn resume(&self) -> Result<(), FleetError> {
        let mut inner = self.inner.lock().await;
        let ids: Vec<String> = inner
            .file
            .instances
            .values()
            .filter(|i| !i.terminated)
            .map(|i| i.id.clone())
            .collect();
        for id in ids {
            let rec = inner.file.instances[&id].clone();
            let child = self.spawn_agent(&rec)?;
            info!(instance = %id, address = %rec.address, pid = child.id(), "instance resumed");
            if let Some(r) = inner.file.instances.get_mut(&id) {
                r.agent_pid = child.id();
            }
            inner.children.insert(id, child);
        }
        self.save(&inner.file)?;
        Ok(())
    }

    /// Stops every agent (each stops its server), without terminating instances.
    pub async fn stop_all(&self) {
        let mut inner = self.inner.lock().await;
        let children: Vec<(String, Child)> =
            std::mem::take(&mut inner.children).into_iter().collect();
        // Signal all first, then wait: they stop in parallel.
        for (_, child) in &children {
            signal(child, libc::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for (id, mut child) in children {
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            kill_server_of(&Self::instance_dir(&self.state_dir, &id));
            if let Some(r) = inner.file.instances.get_mut(&id) {
                r.agent_pid = None;
            }
        }
        if let Err(e) = self.save(&inner.file) {
            warn!(error = %e, "cannot save fleet.json");
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
async fn stop_child(mut child: Child, grace: Duration) {
    signal(&child, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

impl Fleet for LocalFleet {
    async fn observe(&self) -> Result<FleetView, FleetError> {
        let mut inner = self.inner.lock().await;
        let mut changed = false;
        // An agent that exited without being told to: its instance is lost, as an
        // EC2 instance that failed its health check.
        let mut lost = Vec::new();
        for (id, child) in inner.children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                lost.push((id.clone(), status));
            }
        }
        for (id, status) in lost {
            inner.children.remove(&id);
            kill_server_of(&Self::instance_dir(&self.state_dir, &id));
            if let Some(r) = inner.file.instances.get_mut(&id) {
                warn!(instance = %id, %status, "agent died; instance terminated");
                r.terminated = true;
                r.agent_pid = None;
                changed = true;
            }
        }
        let running = inner
            .file
            .instances
            .values()
            .filter(|i| !i.terminated)
            .count() as u32;
        for _ in running..inner.file.desired_capacity {
            inner.file.next_instance += 1;
            let id = format!("i-{:04}", inner.file.next_instance);
            let address = self.next_address(&inner.file)?;
            let mut rec = LocalInstanceRecord {
                id: id.clone(),
                address: address.clone(),
                terminated: false,
                agent_pid: None,
            };
            let child = self.spawn_agent(&rec)?;
            rec.agent_pid = child.id();
            info!(instance = %id, %address, pid = child.id(), "instance launched");
            inner.children.insert(id.clone(), child);
            inner.file.instances.insert(id, rec);
            changed = true;
        }
        if changed {
            self.save(&inner.file)?;
        }
        let instances = inner
            .file
            .instances
            .values()
            .map(|r| Instance {
                id: r.id.clone(),
                state: if r.terminated {
                    InstanceState::Terminated
                } else {
                    InstanceState::Running
                },
                zone: Some("local".into()),
            })
            .collect();
        Ok(FleetView {
            instances,
            desired_capacity: inner.file.desired_capacity,
        })
    }

    async fn set_desired_capacity(&self, capacity: u32) -> Result<(), FleetError> {
        let mut inner = self.inner.lock().await;
        inner.file.desired_capacity = capacity;
        self.save(&inner.file)?;
        Ok(())
    }

    async fn terminate(&self, instance: &str) -> Result<(), FleetError> {
        let mut inner = self.inner.lock().await;
        if !inner.file.instances.contains_key(instance) {
            return Err(FleetError::UnknownInstance(instance.to_string()));
        }
        if let Some(child) = inner.children.remove(instance) {
            stop_child(child, Duration::from_secs(20)).await;
        }
        kill_server_of(&Self::instance_dir(&self.state_dir, instance));
        if let Some(r) = inner.file.instances.get_mut(instance) {
            r.terminated = true;
            r.agent_pid = None;
        }
        inner.file.desired_capacity = inner.file.desired_capacity.saturating_sub(1);
        self.save(&inner.file)?;
        Ok(())
    }
}

/// Kills the ZooKeeper server an agent left behind (normally it dies with its
/// agent), checking the PID still is a ZooKeeper server first.
pub fn kill_server_of(instance_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(instance_dir.join("zookeeper.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !process_is(pid, "QuorumPeerMain") {
        return None;
    }
    // SAFETY: kill(2) on a PID we checked runs ZooKeeper.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    Some(pid)
}

/// Whether `pid` runs a command line containing `needle` (guards against PID reuse).
pub fn process_is(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_networks_are_accepted() {
        assert_eq!(
            parse_network("127.0.10.0/24").unwrap(),
            (Ipv4Addr::new(127, 0, 10, 0), 24)
        );
        assert!(
            parse_network("10.0.0.0/24")
                .unwrap_err()
                .contains("127.0.0.0/8")
        );
        assert!(parse_network("127.0.10.0").is_err());
        assert!(parse_network("127.0.10.0/31").is_err());
    }
}
