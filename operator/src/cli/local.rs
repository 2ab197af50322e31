//! `zkop local up` and `zkop local kill`: the whole product on one machine.
//! The controller runs in this process; instances are `zkop-agent` processes on
//! loopback addresses; ids, state and secrets live in the state directory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use tracing::info;

use zkop_spec::ValidatedCluster;
use zkop_spec::cluster::Fleet;

use super::input::{InputError, agent_binary, load_spec, state_dir_for};
use super::serve::{self, StateDir};
use crate::adapters::StateStore;
pub use crate::adapters::local::fleet_support::parse_network;
use crate::adapters::local::fleet_support::{kill_server_of, parse_namespaced_network, process_is};
use crate::adapters::local::{
    AgentCommand, AgentSecrets, FileLedger, FileStore, LocalFleet, Namespaces, read_fleet_file,
};
use crate::controller::{AlwaysLeader, Controller, Shared, Signer, SpecFile};
use crate::model::Persisted;

/// The default loopback range for agents.
pub const DEFAULT_NETWORK: &str = "127.0.10.0/24";

/// Holds an exclusive lock on the state directory while `local up` runs.
fn lock_state_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock(2) on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(InputError::Usage(format!(
            "another `zkop local up` is running on {}",
            dir.display()
        )));
    }
    Ok(f)
}

/// Options of `zkop local up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The spec file.
    pub spec: PathBuf,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--api`.
    pub api: SocketAddr,
    /// `--network`.
    pub network: String,
    /// `--agent-bin`.
    pub agent_bin: Option<PathBuf>,
    /// `--netns`: each instance in its own network namespace, on this prefix's bridge.
    pub netns: Option<String>,
}

/// What `local up` starts from, once every refusal is past.
struct Checked {
    spec: ValidatedCluster,
    text: String,
    network: (std::net::Ipv4Addr, u8),
    namespaces: Option<Namespaces>,
    agent_bin: PathBuf,
    dir: PathBuf,
    store: FileStore,
}

/// Everything that can be refused is checked before anything is touched.
async fn check(opts: &UpOptions) -> anyhow::Result<Checked> {
    let (spec, text) = load_spec(&opts.spec)?;
    if !matches!(spec.fleet, Fleet::Local(_)) {
        bail!(InputError::Usage(format!(
            "{}: spec.fleet: `zkop local up` needs fleet.local (use `zkop run` for fleet.aws)",
            opts.spec.display()
        )));
    }
    let spec_network = match &spec.fleet {
        Fleet::Local(l) => l.network.clone(),
        Fleet::Aws(_) => None,
    };
    let (network, namespaces) = check_network(opts, spec_network.as_deref())?;
    let agent_bin = agent_binary(opts.agent_bin.clone())?;
    let dir = state_dir_for(opts.state_dir.clone(), &spec.name);
    let store = FileStore::new(dir.join("state.json"));
    if dir.exists()
        && let Some(p) = store.load().await?
        && p.cluster != spec.name
    {
        bail!(InputError::Usage(format!(
            "{} holds cluster `{}`, but the spec names `{}`",
            dir.display(),
            p.cluster,
            spec.name
        )));
    }
    Ok(Checked {
        spec,
        text,
        network,
        namespaces,
        agent_bin,
        dir,
        store,
    })
}

/// The instances' network, and their namespaces with `--netns`. On loopback
/// the API listens on loopback; with namespaces it listens on the hub's
/// address in that network, which no instance may then take.
fn check_network(
    opts: &UpOptions,
    spec_network: Option<&str>,
) -> Result<((Ipv4Addr, u8), Option<Namespaces>), InputError> {
    let Some(prefix) = &opts.netns else {
        if !opts.api.ip().is_loopback() {
            return Err(InputError::Usage(format!(
                "--api {}: must be a loopback address",
                opts.api
            )));
        }
        // The spec's own network, when it names one, over the flag's default.
        let network = spec_network.unwrap_or(&opts.network);
        return Ok((parse_network(network).map_err(InputError::Usage)?, None));
    };
    if let Some(n) = spec_network {
        return Err(InputError::Usage(format!(
            "{}: spec.fleet.local.network ({n}) is for loopback; with --netns the network is --network",
            opts.spec.display()
        )));
    }
    let network = parse_namespaced_network(&opts.network).map_err(InputError::Usage)?;
    let namespaces = Namespaces::new(prefix, network).map_err(InputError::Usage)?;
    let in_network = match opts.api.ip() {
        IpAddr::V4(a) => {
            u32::from(a) >> (32 - network.1) == u32::from(network.0) >> (32 - network.1)
        }
        IpAddr::V6(_) => false,
    };
    if !in_network {
        return Err(InputError::Usage(format!(
            "--api {}: with --netns, must be the hub's address in --network {}",
            opts.api, opts.network
        )));
    }
    namespaces.check_hub().map_err(InputError::Usage)?;
    Ok((network, Some(namespaces)))
}

/// The cluster CA (made once, kept in the state directory's `tls/`) as the
/// signer, so that TLS can be switched on live; and with TLS on at start,
/// the API's TLS with a certificate from it.
fn local_tls(
    spec: &ValidatedCluster,
    dir: &Path,
    api: IpAddr,
    namespaced: bool,
) -> anyhow::Result<(Signer, Option<serve::ApiTls>)> {
    let ca = zkop_runtime::pki::ensure_local_ca(&dir.join("tls"), &spec.name)?;
    let api_tls = match spec.tls {
        Some(_) => Some(serve::ApiTls {
            config: crate::api_tls::server_config(&ca, &[api])
                .map_err(|e| anyhow::anyhow!("the API's TLS: {e}"))?,
            ca_file: dir.join("tls").join("ca.pem"),
        }),
        None => None,
    };
    // On shared loopback every member connects from 127.0.0.1; in its own
    // namespace, from its own address only.
    let shared_source = match namespaced {
        true => Vec::new(),
        false => vec![IpAddr::from(Ipv4Addr::LOCALHOST)],
    };
    Ok((Signer { ca, shared_source }, api_tls))
}

/// One local cluster, running: its loop and API, its instances, and the
/// lock on its state directory.
pub struct LocalRun {
    /// The cluster's metadata.name.
    pub name: String,
    /// Its API's URL.
    pub url: String,
    /// Its state directory.
    pub dir: PathBuf,
    running: serve::Running,
    fleet: Arc<LocalFleet>,
    _lock: std::fs::File,
}

impl LocalRun {
    /// What its API and loop share.
    pub fn shared(&self) -> Arc<crate::controller::Shared> {
        self.running.shared.clone()
    }

    /// Stops managing the cluster: the loop, then (with `stop_instances`)
    /// every agent and server, then the API. Without, the instances keep
    /// running, as after a controller's crash.
    pub async fn stop(mut self, stop_instances: bool) {
        self.running.stop_loop().await;
        if stop_instances {
            self.fleet.stop_all().await;
        }
        self.running.finish().await;
    }
}

/// Starts the cluster of `opts.spec`: its loop, its API and its instances.
pub async fn start(opts: &UpOptions) -> anyhow::Result<LocalRun> {
    let Checked {
        spec,
        text,
        network,
        namespaces,
        agent_bin,
        dir,
        store,
    } = check(opts).await?;
    let state = StateDir::create(&dir)?;
    let dir = state.dir.clone();
    let lock = lock_state_dir(&dir)?;
    let token = state.ensure_secrets()?;
    let StateDir {
        token_file,
        password_file,
        ..
    } = state;
    let persisted = store.load().await?.unwrap_or_else(|| Persisted {
        cluster: spec.name.clone(),
        ..Persisted::default()
    });
    // The controller's first pass stores this epoch, above every one before.
    let epoch = persisted.epoch + 1;

    let (signer, api_tls) = local_tls(&spec, &dir, opts.api.ip(), namespaces.is_some())?;
    let ca_file = api_tls.as_ref().map(|t| t.ca_file.clone());
    let api = serve::Api::bind(opts.api, None, &dir, &token_file, api_tls).await?;
    let url = api.url.clone();
    let zones = match &spec.fleet {
        zkop_spec::cluster::Fleet::Local(l) => l.zones.clone(),
        zkop_spec::cluster::Fleet::Aws(_) => Vec::new(),
    };
    let fleet = Arc::new(LocalFleet::open(
        &dir,
        network,
        vec![opts.api.ip().to_string()],
        zones,
        AgentCommand {
            binary: agent_bin,
            controller_urls: vec![url.clone()],
            secrets: AgentSecrets::Files {
                token_file,
                password_file,
            },
            namespaces,
            controller_ca: ca_file,
        },
    )?);
    let shared = Shared::new(token, spec.clone(), persisted);
    shared.set_signer(signer);
    info!(cluster = %spec.name, api = %url, state_dir = %dir.display(), epoch, "zkop local up");
    eprintln!(
        "zkop: cluster {} (epoch {epoch}), API {url}, state in {}",
        spec.name,
        dir.display()
    );
    fleet.resume().await?;
    let controller = Controller::new(
        shared.clone(),
        fleet.clone(),
        FileLedger::new(dir.join("ids")),
        store,
        Some(SpecFile::new(opts.spec.clone(), text)),
        AlwaysLeader { epoch },
    );
    Ok(LocalRun {
        name: spec.name.clone(),
        url,
        dir,
        running: serve::start(api, shared, controller),
        fleet,
        _lock: lock,
    })
}

/// Runs the cluster of a spec file in the foreground until SIGINT or
/// SIGTERM (a directory: `local_many::up`).
pub async fn up(opts: UpOptions) -> anyhow::Result<()> {
    let run = start(&opts).await?;
    eprintln!("zkop: Ctrl-C stops it");
    serve::until_signalled().await?;
    eprintln!("zkop: stopping (a stop, not a scale-in: every member stays in the config)");
    run.stop(true).await;
    eprintln!("zkop: stopped");
    Ok(())
}

/// `zkop local kill`: SIGKILLs an instance's agent and ZooKeeper server, and
/// says what it killed.
pub fn kill(state_dir: &Path, instance: &str) -> anyhow::Result<String> {
    let instances = read_fleet_file(state_dir)
        .with_context(|| format!("reading {}/fleet.json", state_dir.display()))?;
    let Some(rec) = instances.iter().find(|i| i.id == instance) else {
        let known: Vec<&str> = instances
            .iter()
            .filter(|i| !i.terminated)
            .map(|i| i.id.as_str())
            .collect();
        bail!(InputError::Usage(format!(
            "no instance `{instance}` in {} (running: {})",
            state_dir.display(),
            known.join(", ")
        )));
    };
    let mut killed = Vec::new();
    // The server first: killing the agent first would let the server die of its
    // parent-death signal instead.
    if let Some(pid) = kill_server_of(&LocalFleet::instance_dir(state_dir, instance)) {
        killed.push(format!("ZooKeeper {pid}"));
    }
    if let Some(pid) = rec.agent_pid.filter(|p| process_is(*p, "zkop-agent")) {
        // SAFETY: kill(2) on a PID checked to run zkop-agent.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        killed.push(format!("agent {pid}"));
    }
    if killed.is_empty() {
        bail!("instance {instance} has no running processes");
    }
    Ok(format!("killed {instance}: {}", killed.join(", ")))
}
