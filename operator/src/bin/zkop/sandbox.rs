//! The AWS sandbox's fleet simulator: moto's instances run nothing, so this
//! starts a `zkop-agent` on its own loopback address for every instance the
//! Auto Scaling group lists as running, and SIGKILLs it (and its ZooKeeper) when
//! the group no longer does, so the AWS code path is exercised for real.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tracing::{info, warn};

use zkop_spec::cluster::Fleet as FleetSpec;

use zkop::adapters::aws::{AsgFleet, sdk_config};
use zkop::adapters::local::fleet_support::parse_network;
use zkop::adapters::local::{AgentCommand, AgentProcesses, AgentSecrets, free_address};
use zkop::adapters::{Fleet, FleetView};
use zkop::cli::client::read_api_file;
use zkop::cli::input::{InputError, load_spec, state_dir_for};
use zkop::model::InstanceState;

/// Options of `zkop sandbox fleet`.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// The spec (with fleet.aws).
    pub spec: PathBuf,
    /// The controller's state dir (its `api.json` names the controller).
    pub state_dir: Option<PathBuf>,
    /// Loopback range for the agents.
    pub network: String,
    /// The zkop-agent binary.
    pub agent_bin: PathBuf,
    /// Every controller's URL for the agents (default: the one in `api.json`).
    pub controllers: Vec<String>,
    /// Zones to spread new instances over (none: moto's one zone).
    pub zones: Vec<String>,
}

/// Runs the simulator until SIGINT or SIGTERM.
pub async fn simulate(opts: SimulatorOptions) -> anyhow::Result<()> {
    let (spec, _) = load_spec(&opts.spec)?;
    let FleetSpec::Aws(aws) = &spec.fleet else {
        bail!(InputError::Usage(
            "spec.fleet: the sandbox needs fleet.aws".into()
        ));
    };
    let network = parse_network(&opts.network).map_err(InputError::Usage)?;
    let dir = state_dir_for(opts.state_dir.clone(), &spec.name);
    let api = loop {
        match read_api_file(&dir) {
            Ok(a) => break a,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let sdk = sdk_config(Some(aws.region.clone())).await;
    let fleet = AsgFleet::new(&sdk, &aws.auto_scaling_group_name);
    let agents = AgentProcesses::new(
        &dir.join("sandbox"),
        AgentCommand {
            binary: opts.agent_bin.clone(),
            controller_urls: if opts.controllers.is_empty() {
                vec![api.url.clone()]
            } else {
                opts.controllers.clone()
            },
            secrets: match &spec.secrets_parameter {
                Some(name) => AgentSecrets::Ssm(name.clone()),
                None => AgentSecrets::Files {
                    token_file: api.token_file.clone(),
                    password_file: dir.join("super-password"),
                },
            },
            namespaces: None,
            controller_ca: None,
        },
    );
    // Addresses survive a restart of the simulator (every node rebooting):
    // an instance keeps its address, as an EC2 instance keeps its private IP.
    let read = |path: &std::path::Path| -> BTreeMap<String, String> {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };
    let addresses_file = dir.join("sandbox").join("addresses.json");
    let zones_file = dir.join("sandbox").join("zones.json");
    let mut sim = Simulator {
        agents,
        network,
        addresses: read(&addresses_file),
        addresses_file,
        zone_names: opts.zones.clone(),
        zones: read(&zones_file),
        zones_file,
        lost: BTreeSet::new(),
    };
    let stop = zkop::cli::serve::until_signalled();
    tokio::pin!(stop);
    loop {
        match fleet.observe().await {
            Ok(view) => sim.follow(&view).await?,
            Err(e) => warn!(error = %e, "cannot observe the group"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            r = &mut stop => { r?; break; }
        }
    }
    sim.agents.stop_all(Duration::from_secs(20)).await;
    Ok(())
}

/// The moto instances' stand-ins: one agent process per running instance.
struct Simulator {
    agents: AgentProcesses,
    network: (std::net::Ipv4Addr, u8),
    /// Every address ever handed out: an instance's address is never reused.
    addresses: BTreeMap<String, String>,
    /// Where they are kept across restarts of the simulator.
    addresses_file: PathBuf,
    /// The zones to spread instances over (`--zones`).
    zone_names: Vec<String>,
    /// Each instance's zone, kept for the controller (`ZKOP_SANDBOX_ZONES`).
    zones: BTreeMap<String, String>,
    /// Where they are kept.
    zones_file: PathBuf,
    /// Instances whose agent died or whose instance left: never restarted.
    lost: BTreeSet<String>,
}

impl Simulator {
    /// Gives a new instance the zone with the fewest running instances, as
    /// an Auto Scaling group balances its zones, before its agent starts.
    fn place(&mut self, id: &str, up: &BTreeSet<&str>) -> anyhow::Result<()> {
        if self.zone_names.is_empty() || self.zones.contains_key(id) {
            return Ok(());
        }
        let running = |z: &String| {
            self.zones
                .iter()
                .filter(|(i, zone)| *zone == z && up.contains(i.as_str()))
                .count()
        };
        let Some(zone) = self.zone_names.iter().min_by_key(|z| running(z)).cloned() else {
            return Ok(());
        };
        info!(instance = %id, %zone, "instance placed in zone");
        self.zones.insert(id.to_string(), zone);
        zkop_runtime::files::write_atomic(
            &self.zones_file,
            serde_json::to_string(&self.zones)?.as_bytes(),
            0o600,
        )?;
        Ok(())
    }

    /// Kills the agents of instances gone from the group and starts one for
    /// each new running instance.
    async fn follow(&mut self, view: &FleetView) -> anyhow::Result<()> {
        let up: BTreeSet<&str> = view
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .map(|i| i.id.as_str())
            .collect();
        for id in self.agents.ids() {
            if !up.contains(id.as_str()) {
                warn!(instance = %id, "instance gone from the group; killing its agent and server");
                self.agents.kill(&id).await;
                self.lost.insert(id);
            }
        }
        for (id, status) in self.agents.reap() {
            warn!(instance = %id, %status, "agent exited");
            self.lost.insert(id);
        }
        for &id in &up {
            if self.agents.runs(id) || self.lost.contains(id) {
                continue;
            }
            let address = match self.addresses.get(id) {
                Some(a) => a.clone(),
                None => {
                    let used: BTreeSet<&str> =
                        self.addresses.values().map(String::as_str).collect();
                    let a = free_address(self.network, &used)?;
                    self.addresses.insert(id.to_string(), a.clone());
                    zkop_runtime::files::write_atomic(
                        &self.addresses_file,
                        serde_json::to_string(&self.addresses)?.as_bytes(),
                        0o600,
                    )?;
                    a
                }
            };
            self.place(id, &up)?;
            let pid = self
                .agents
                .spawn(id, &address)
                .with_context(|| format!("starting the agent of {id}"))?;
            info!(instance = %id, %address, pid, "agent started for instance");
        }
        Ok(())
    }
}
