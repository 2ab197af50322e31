//! A fleet of local `zkop-agent` processes, each on its own loopback address,
//! behaving as an Auto Scaling group would: it keeps the desired capacity
//! running, replaces an instance whose agent died with a new instance on a new
//! address, and terminates instances when told. Stopping the fleet (`zkop local
//! up` ending) stops processes without terminating instances: the next start
//! brings the same instances back with their data.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::agents::{AgentCommand, AgentProcesses};
use crate::adapters::{Fleet, FleetError, FleetView};
use crate::model::{Instance, InstanceState};
use zkop_spec::InstanceId;
use zkop_spec::zk::ServerId;

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
    /// Its simulated zone (`fleet.local.zones`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
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
    agents: AgentProcesses,
}

/// Local processes as a fleet.
pub struct LocalFleet {
    state_dir: PathBuf,
    network: (Ipv4Addr, u8),
    /// Addresses of `network` that are not the fleet's to hand out (the hub's).
    reserved: Vec<String>,
    /// Simulated zones new instances are spread over.
    zones: Vec<String>,
    inner: Mutex<Inner>,
}

/// Parses `127.0.10.0/24`; only loopback ranges are allowed.
pub fn parse_network(cidr: &str) -> Result<(Ipv4Addr, u8), String> {
    let net = parse_cidr(cidr)?;
    if !net.0.is_loopback() {
        return Err(format!("--network {cidr}: must be inside 127.0.0.0/8"));
    }
    Ok(net)
}

/// Parses the network of instances in their own namespaces (`--netns`): a
/// private range (10/8, 172.16/12, 192.168/16), used only inside those
/// namespaces. Loopback addresses cannot cross a veth pair.
pub fn parse_namespaced_network(cidr: &str) -> Result<(Ipv4Addr, u8), String> {
    let net = parse_cidr(cidr)?;
    if !net.0.is_private() {
        return Err(format!(
            "--network {cidr}: with --netns, must be a private range (10.0.0.0/8, \
             172.16.0.0/12 or 192.168.0.0/16)"
        ));
    }
    Ok(net)
}

fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), String> {
    zkop_spec::network::parse_cidr(cidr).map_err(|e| format!("--network {e}"))
}

/// The first address of `network` not in `used`. Callers never release an
/// address: one an instance ever had may still be listed in the config.
pub fn free_address(network: (Ipv4Addr, u8), used: &BTreeSet<&str>) -> Result<String, FleetError> {
    let base = u32::from(network.0) & (u32::MAX << (32 - network.1));
    let hosts = (1u32 << (32 - network.1)) - 2;
    (1..=hosts)
        .map(|h| Ipv4Addr::from(base + h).to_string())
        .find(|a| !used.contains(a.as_str()))
        .ok_or_else(|| FleetError::NoAddress(format!("{}/{}", network.0, network.1)))
}

impl LocalFleet {
    /// A fleet in `state_dir` (bookkeeping in `fleet.json`, instances in
    /// `instances/<id>/`), handing out addresses from `network` but `reserved`,
    /// and spreading instances over `zones` (none: one zone, `local`).
    pub fn open(
        state_dir: &Path,
        network: (Ipv4Addr, u8),
        reserved: Vec<String>,
        zones: Vec<String>,
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
            reserved,
            zones,
            inner: Mutex::new(Inner {
                file,
                agents: AgentProcesses::new(state_dir, agent),
            }),
        })
    }

    /// An instance's directory.
    pub fn instance_dir(state_dir: &Path, id: &str) -> PathBuf {
        AgentProcesses::instance_dir(state_dir, id)
    }

    fn save(&self, file: &FleetFile) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
        super::write_atomic(&self.state_dir.join("fleet.json"), &json, 0o644)
    }

    /// Starts the agents of every instance that is not terminated (after a stop).
    pub async fn resume(&self) -> Result<(), FleetError> {
        let mut guard = self.inner.lock().await;
        let inner = &mut *guard;
        for rec in inner.file.instances.values_mut().filter(|i| !i.terminated) {
            rec.agent_pid = inner.agents.spawn(&rec.id, &rec.address)?;
            info!(instance = %rec.id, address = %rec.address, pid = rec.agent_pid, "instance resumed");
        }
        self.save(&inner.file)?;
        Ok(())
    }

    /// The zone a new instance goes to: the one with the fewest running
    /// instances (ties: the first listed), as an Auto Scaling group balances.
    fn zone_for_next(&self, file: &FleetFile) -> Option<String> {
        let running = |z: &String| {
            file.instances
                .values()
                .filter(|i| !i.terminated && i.zone.as_ref() == Some(z))
                .count()
        };
        self.zones
            .iter()
            .enumerate()
            .min_by_key(|(i, z)| (running(z), *i))
            .map(|(_, z)| z.clone())
    }

    /// Stops every agent (each stops its server), without terminating instances.
    pub async fn stop_all(&self) {
        let mut inner = self.inner.lock().await;
        for id in inner.agents.stop_all(Duration::from_secs(20)).await {
            if let Some(r) = inner.file.instances.get_mut(&id) {
                r.agent_pid = None;
            }
        }
        if let Err(e) = self.save(&inner.file) {
            warn!(error = %e, "cannot save fleet.json");
        }
    }
}

impl Fleet for LocalFleet {
    async fn observe(&self) -> Result<FleetView, FleetError> {
        let mut guard = self.inner.lock().await;
        let inner = &mut *guard;
        let mut changed = false;
        // An agent that exited without being told to: its instance is lost, as an
        // EC2 instance that failed its health check.
        for (id, status) in inner.agents.reap() {
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
            let used: BTreeSet<&str> = inner
                .file
                .instances
                .values()
                .map(|i| i.address.as_str())
                .chain(self.reserved.iter().map(String::as_str))
                .collect();
            let address = free_address(self.network, &used)?;
            let zone = self.zone_for_next(&inner.file);
            let agent_pid = inner.agents.spawn(&id, &address)?;
            info!(instance = %id, %address, pid = agent_pid, zone = zone.as_deref().unwrap_or("local"), "instance launched");
            let rec = LocalInstanceRecord {
                id: id.clone(),
                address,
                terminated: false,
                agent_pid,
                zone,
            };
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
                id: r.id.clone().into(),
                state: if r.terminated {
                    InstanceState::Terminated
                } else {
                    InstanceState::Running
                },
                zone: Some(r.zone.clone().unwrap_or_else(|| "local".into())),
                launch_template: None,
                private_ip: Some(r.address.clone()),
            })
            .collect();
        Ok(FleetView {
            instances,
            desired_capacity: inner.file.desired_capacity,
            launch_template: None,
        })
    }

    async fn set_desired_capacity(&self, capacity: u32) -> Result<(), FleetError> {
        let mut inner = self.inner.lock().await;
        inner.file.desired_capacity = capacity;
        self.save(&inner.file)?;
        Ok(())
    }

    async fn fence(&self, instance: &InstanceId) -> Result<(), FleetError> {
        let mut inner = self.inner.lock().await;
        if !inner.file.instances.contains_key(instance.as_str()) {
            return Err(FleetError::UnknownInstance(instance.to_string()));
        }
        // SIGKILL: a paused or partitioned server must not get another word in.
        inner.agents.kill(instance).await;
        if let Some(r) = inner.file.instances.get_mut(instance.as_str()) {
            r.terminated = true;
            r.agent_pid = None;
        }
        self.save(&inner.file)?;
        Ok(())
    }

    async fn complete_termination(&self, _instance: &InstanceId) -> Result<(), FleetError> {
        // Local instances have no lifecycle hooks.
        Ok(())
    }

    async fn adopt(
        &self,
        _instance: &InstanceId,
        _cluster: &str,
        _id: ServerId,
    ) -> Result<(), FleetError> {
        // Local instances have no tags, and only the controller scales them in.
        Ok(())
    }

    async fn terminate(&self, instance: &InstanceId) -> Result<(), FleetError> {
        let mut inner = self.inner.lock().await;
        if !inner.file.instances.contains_key(instance.as_str()) {
            return Err(FleetError::UnknownInstance(instance.to_string()));
        }
        inner.agents.stop(instance, Duration::from_secs(20)).await;
        if let Some(r) = inner.file.instances.get_mut(instance.as_str()) {
            r.terminated = true;
            r.agent_pid = None;
        }
        inner.file.desired_capacity = inner.file.desired_capacity.saturating_sub(1);
        self.save(&inner.file)?;
        Ok(())
    }
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

    #[test]
    fn instances_in_namespaces_take_private_networks_only() {
        assert_eq!(
            parse_namespaced_network("10.77.0.0/24").unwrap(),
            (Ipv4Addr::new(10, 77, 0, 0), 24)
        );
        for bad in ["127.0.10.0/24", "8.8.8.0/24"] {
            let e = parse_namespaced_network(bad).unwrap_err();
            assert!(e.contains("private range"), "{e}");
        }
    }
}
