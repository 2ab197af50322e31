//! `zkop-agent`: runs one ZooKeeper server on its instance as the controller
//! instructs. It long-polls its desired state, writes `myid` and the configs it
//! owns, supervises the JVM, probes it with four-letter words, runs the reconfigs
//! it is told to run, seeds an empty data directory from a backup and ships
//! the backup when told, and reports what it sees. It keeps ZooKeeper running
//! while the controller is unreachable.

mod backup;
mod controller;
mod history;
mod logtail;
mod node;
mod probing;
mod secrets;
mod shipper;
mod supervisor;
mod tls;
mod upkeep;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};

use controller::ControllerClient;
use node::Layout;
use supervisor::Supervisor;
use zkop_spec::wire::{
    AgentReport, DesiredNodeState, MemberAssignment, NodeAssignment, ProbeReport, ProcessReport,
    ReconfigResult, Recovery, ServerSettings,
};
use zkop_spec::zk::Zxid;
use zkop_zk::Endpoint;
use zkop_zk::jvm::JvmCommand;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "zkop-agent", version, about = "zkop's per-instance agent")]
struct Args {
    /// This instance's id (an EC2 instance id, or a local one like `i-0001`).
    #[arg(long, required_unless_present = "ec2")]
    instance: Option<String>,
    /// The address this node's ZooKeeper server listens on and advertises.
    #[arg(long, required_unless_present = "ec2")]
    address: Option<String>,
    /// On EC2: take the instance id and the private IPv4 address (when not given)
    /// from the instance metadata service, IMDSv2.
    #[arg(long)]
    ec2: bool,
    /// Where this node keeps `conf/`, `data/` and `logs/`.
    #[arg(long)]
    data_dir: PathBuf,
    /// A controller base URL; repeat for every controller.
    #[arg(long = "controller", required = true)]
    controllers: Vec<String>,
    /// File holding the controller API's bearer token.
    #[arg(long, required_unless_present = "secrets_ssm_parameter")]
    token_file: Option<PathBuf>,
    /// File holding ZooKeeper's super-user password (used for reconfig).
    #[arg(long, required_unless_present = "secrets_ssm_parameter")]
    super_password_file: Option<PathBuf>,
    /// An SSM SecureString parameter holding both secrets (instead of the files);
    /// read once at start with the standard AWS credential chain.
    #[arg(long, conflicts_with_all = ["token_file", "super_password_file"])]
    secrets_ssm_parameter: Option<String>,
    /// With TLS on: the cluster CA's certificate; the controller's HTTPS
    /// certificate is checked against it alone (default with
    /// `--secrets-ssm-parameter` and an `https://` controller: the one the
    /// controller publishes in SSM beside the secrets).
    #[arg(long)]
    controller_ca: Option<PathBuf>,
    #[command(flatten)]
    java: zkop_zk::jvm::JavaArgs,
}

const MAX_ERRORS: usize = 10;

struct Agent {
    args: Args,
    instance: String,
    address: String,
    layout: Layout,
    password: String,
    super_digest: String,
    desired: Option<DesiredNodeState>,
    max_epoch: u64,
    supervisor: Supervisor,
    probe: Option<ProbeReport>,
    /// When the server was last probed.
    probed_at: Option<Instant>,
    /// When the last probe read the server's config (`conf`).
    conf_at: Option<Instant>,
    /// The PID of the JVM that last answered a probe.
    answered_pid: Option<u32>,
    /// The client endpoint last probed, to keep probing a server the
    /// controller does not know (a lost state).
    last_endpoint: Option<Endpoint>,
    /// The last zxid on disk, and when it was read.
    disk_zxid: Option<(Zxid, Instant)>,
    /// The last recovery generation applied (kept in the data dir).
    recovered: u64,
    /// The settings the running JVM was started with.
    started_with: Option<ServerSettings>,
    reconfig: Option<ReconfigResult>,
    errors: VecDeque<String>,
    /// The backup shipping job, while this member is the shipper.
    shipper: Option<shipper::Shipper>,
    /// When a restore into the data directory was last tried.
    restore_tried: Option<Instant>,
    /// The node's certificate, key and CA, with TLS on.
    tls: tls::NodeTls,
    /// When a certificate was last asked for.
    certificate_tried: Option<Instant>,
    /// When the certificate the running JVM started with expires.
    served_certificate: Option<u64>,
    /// The controller, for certificates (reports go through `serve`'s own).
    controller: ControllerClient,
}

fn read_secret(path: &PathBuf) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let s = s.trim().to_string();
    anyhow::ensure!(!s.is_empty(), "{} is empty", path.display());
    Ok(s)
}

/// The instance id and private IPv4 address from IMDSv2.
async fn from_imds() -> anyhow::Result<(String, String)> {
    let imds = aws_config::imds::Client::builder().build();
    let get = |path: &'static str| {
        let imds = imds.clone();
        async move {
            imds.get(path)
                .await
                .map(|v| v.as_ref().trim().to_string())
                .map_err(|e| anyhow::anyhow!("instance metadata {path}: {e}"))
        }
    };
    Ok((
        get("/latest/meta-data/instance-id").await?,
        get("/latest/meta-data/local-ipv4").await?,
    ))
}

impl Agent {
    fn desired_file(&self) -> PathBuf {
        self.args.data_dir.join("desired.json")
    }

    fn error(&mut self, e: impl Into<String>) {
        let e = e.into();
        warn!(instance = %self.instance, error = %e, "agent problem");
        self.errors.push_back(e);
        while self.errors.len() > MAX_ERRORS {
            self.errors.pop_front();
        }
    }

    /// Takes a new desired state unless it comes from an older controller epoch.
    fn accept(&mut self, d: DesiredNodeState) {
        if d.epoch < self.max_epoch {
            self.error(format!(
                "refused a desired state of epoch {} (already saw epoch {})",
                d.epoch, self.max_epoch
            ));
            return;
        }
        if d.epoch > self.max_epoch {
            self.max_epoch = d.epoch;
            if let Err(e) = node::write_atomic(&self.layout.epoch_file(), &format!("{}\n", d.epoch))
            {
                self.error(e.to_string());
            }
        }
        if self.desired.as_ref() != Some(&d) {
            match serde_json::to_string(&d) {
                Ok(json) => {
                    if let Err(e) = node::write_atomic(&self.desired_file(), &json) {
                        self.error(e.to_string());
                    }
                }
                Err(e) => self.error(e.to_string()),
            }
            self.desired = Some(d);
        }
    }

    /// A node holding a member's data is stopped only when told its member
    /// retired: "no member here" from a controller that lost its state must
    /// not stop the ensemble (it rebuilds the state from these reports).
    async fn keep_unknown_member(&mut self) {
        self.probe = None;
        if self.supervisor.running() {
            let endpoint = self
                .last_endpoint
                .clone()
                .unwrap_or_else(|| Endpoint::plain(format!("{}:2181", self.address)));
            self.probe = zkop_zk::probe::probe(&endpoint).await.ok();
            let kept = "told no member runs here, yet this node holds one: kept running until the controller knows it";
            if self.errors.back().map(String::as_str) != Some(kept) {
                self.error(kept);
            }
        }
    }

    /// Where the own server answers: the secure client port with TLS on.
    fn endpoint(&self, m: &MemberAssignment) -> Endpoint {
        let me = m.initial_config.servers.get(&m.server_id);
        match m.secure_client_port() {
            Some(port) => Endpoint {
                host_port: format!(
                    "{}:{port}",
                    me.map_or(self.address.as_str(), |s| s.address.as_str())
                ),
                tls: self.tls.client().cloned(),
            },
            None => Endpoint::plain(
                me.map(|s| s.client_endpoint())
                    .unwrap_or_else(|| format!("{}:2181", self.address)),
            ),
        }
    }

    /// One pass: supervise the JVM toward the desired state, probe, run a reconfig.
    async fn step(&mut self) {
        if let Some(exit) = self.supervisor.reap() {
            self.error(exit);
        }
        // With TLS on, the controller answers an agent only once it shows
        // its node certificate: get it first.
        if self.args.controller_ca.is_some() {
            self.keep_certificate(3).await;
        }
        let Some(desired) = self.desired.clone() else {
            return;
        };
        match &desired.node {
            NodeAssignment::Idle if node::read_myid(&self.layout).is_some() => {
                self.keep_unknown_member().await;
            }
            NodeAssignment::Idle | NodeAssignment::Retired { .. } => {
                self.shipper = None;
                if self.supervisor.running() {
                    info!(instance = %self.instance, "stopping ZooKeeper: no member here");
                    self.supervisor.stop(Duration::from_secs(10)).await;
                }
                self.probe = None;
            }
            NodeAssignment::Member(m) => {
                if let Some(rec) = &m.recovery
                    && rec.generation > self.recovered
                {
                    self.recover(m, rec).await;
                }
                // New settings (the controller hands them out one member at a
                // time): restart under them.
                let new_settings = self.started_with.as_ref() != Some(&m.settings());
                let restart = self.supervisor.running() && new_settings;
                if new_settings && !self.supervisor.running() {
                    // A server that crashed on its old settings (a release
                    // that does not start) starts on new ones at once: its
                    // backoff was for the old, and a rollback must not wait
                    // it out past rollout.timeout.
                    self.supervisor.clear_backoff();
                }
                if m.tls() && self.args.controller_ca.is_none() {
                    self.keep_certificate(3).await;
                }
                if m.tls() && (restart || !self.supervisor.running()) {
                    // About to start: renew early rather than serve a
                    // certificate whose renewal would take another roll (and
                    // before the stop, so the server is down the shorter).
                    self.keep_certificate(2).await;
                }
                if restart {
                    info!(instance = %self.instance, member = %m.server_id, roll = m.roll, "restarting ZooKeeper under new settings");
                    self.supervisor.stop(Duration::from_secs(10)).await;
                }
                let certified = !m.tls() || self.tls.names(&self.address);
                if !self.supervisor.running()
                    && certified
                    && self.supervisor.may_start()
                    && self.seeded(m).await
                {
                    self.start(m);
                }
                let endpoint = self.endpoint(m);
                self.last_endpoint = Some(endpoint.clone());
                self.probe(&endpoint).await;
                if self.probe.is_some() {
                    self.answered_pid = self.supervisor.pid();
                }
                self.ship(&desired, m).await;
                self.run_reconfig(m, &endpoint).await;
            }
        }
    }

    /// Runs the reconfig order the member was handed, once, while its server serves.
    async fn run_reconfig(&mut self, m: &MemberAssignment, endpoint: &Endpoint) {
        if let Some(order) = &m.reconfig {
            let done = self.reconfig.as_ref().is_some_and(|r| r.seq == order.seq);
            let serving = self.probe.as_ref().is_some_and(|p| p.serving);
            if !done && serving {
                info!(instance = %self.instance, seq = order.seq, joining = ?order.joining.iter().map(|s| s.id.0).collect::<Vec<_>>(), leaving = ?order.leaving.iter().map(|s| s.0).collect::<Vec<_>>(), "running reconfig");
                let outcome = tokio::time::timeout(
                    Duration::from_secs(30),
                    zkop_zk::reconfig::run(endpoint, &self.password, order),
                )
                .await
                .unwrap_or_else(|_| Err("reconfig timed out after 30s".into()));
                let result = match outcome {
                    Ok(config) => ReconfigResult {
                        seq: order.seq,
                        config: Some(config),
                        error: None,
                    },
                    Err(e) => {
                        self.error(format!("reconfig {}: {e}", order.seq));
                        ReconfigResult {
                            seq: order.seq,
                            config: None,
                            error: Some(e),
                        }
                    }
                };
                self.reconfig = Some(result);
            }
        }
    }

    /// Applies a quorum-loss recovery once: stop, force the survivors' config, restart.
    async fn recover(&mut self, m: &MemberAssignment, rec: &Recovery) {
        info!(instance = %self.instance, member = %m.server_id, generation = rec.generation, "recovery: restarting under the survivors' config");
        self.supervisor.stop(Duration::from_secs(10)).await;
        match node::force_config(&self.layout, m, &rec.config) {
            Ok(()) => {
                self.recovered = rec.generation;
                if let Err(e) = node::write_atomic(
                    &self.layout.recovery_file(),
                    &format!("{}\n", rec.generation),
                ) {
                    self.error(e.to_string());
                }
            }
            Err(e) => self.error(format!("recovery {}: {e}", rec.generation)),
        }
    }

    fn start(&mut self, m: &MemberAssignment) {
        if let Err(e) = node::prepare(&self.layout, m) {
            self.error(format!("cannot prepare server {}: {e}", m.server_id));
            return;
        }
        let classpath = match self.args.java.classpath(m.zookeeper_version.as_deref()) {
            Ok(classpath) => classpath,
            Err(e) => {
                self.error(format!("cannot start server {}: {e}", m.server_id));
                return;
            }
        };
        let cmd = JvmCommand {
            java: self.args.java.java.clone(),
            classpath,
            heap_mb: m.heap_mb,
            jvm_flags: m.jvm_flags.clone(),
            super_digest: self.super_digest.clone(),
        };
        self.started_with = Some(m.settings());
        self.served_certificate = self.tls.not_after_ms().filter(|_| m.tls());
        match self.supervisor.start(&cmd) {
            Ok(pid) => {
                info!(instance = %self.instance, member = %m.server_id, pid, "started ZooKeeper")
            }
            Err(e) => self.error(format!("cannot start ZooKeeper: {e}")),
        }
    }

    fn report(&self) -> AgentReport {
        AgentReport {
            instance: self.instance.clone().into(),
            address: self.address.clone(),
            epoch_seen: self.max_epoch,
            revision_seen: self.desired.as_ref().map(|d| d.revision).unwrap_or(0),
            server_id: node::read_myid(&self.layout),
            process: ProcessReport {
                running: self.supervisor.running(),
                pid: self.supervisor.pid(),
                starts: self.supervisor.starts(),
                last_exit: self.supervisor.last_exit().map(str::to_string),
                answered: self.answered_pid.is_some() && self.answered_pid == self.supervisor.pid(),
                data_refused: self.supervisor.data_refused(),
            },
            probe: self.probe.clone(),
            disk_zxid: self.disk_zxid.map(|(z, _)| z),
            disk_config_version: node::last_config_version(&self.layout),
            reconfig: self.reconfig.clone(),
            errors: self.errors.iter().cloned().collect(),
            settings: self
                .started_with
                .clone()
                .filter(|_| self.supervisor.running()),
            backup: self.shipper.as_ref().map(shipper::Shipper::report),
            certificate_not_after_ms: self.tls.not_after_ms(),
            installed_releases: self.args.java.installed(),
            data_disk: node::data_disk(&self.layout),
            served_certificate_not_after_ms: self
                .served_certificate
                .filter(|_| self.supervisor.running()),
        }
    }
}

async fn poll_desired(
    mut client: ControllerClient,
    instance: String,
    tx: watch::Sender<Option<DesiredNodeState>>,
) {
    let mut after = 0;
    loop {
        match client.desired(&instance, after).await {
            Ok(d) => {
                after = d.revision;
                if tx.send(Some(d)).is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(instance = %instance, error = %e, "cannot fetch desired state; ZooKeeper keeps running");
                // A restarted controller starts its revisions anew.
                after = 0;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Follows the controller's desired states and reports, until SIGTERM or
/// SIGINT.
async fn serve(agent: &mut Agent, client: ControllerClient) -> anyhow::Result<()> {
    let (tx, mut rx) = watch::channel(None);
    tokio::spawn(poll_desired(client.clone(), agent.instance.clone(), tx));
    let mut reporter = client;
    // Probe often, report on a change at once and otherwise once a second:
    // the controller's next step often waits for this agent's news.
    let mut last_sent: Option<AgentReport> = None;
    // When the last report was tried and whether it went through: after a
    // failure, the next try waits a second (no warning every tick).
    let mut last_try: Option<(Instant, bool)> = None;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() { break; }
                let d = rx.borrow_and_update().clone();
                if let Some(d) = d { agent.accept(d); }
            }
            _ = tokio::time::sleep(agent.probe_every()) => {}
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        agent.step().await;
        agent.refresh_disk_zxid();
        let report = agent.report();
        let due = last_try.is_none_or(|(at, ok)| {
            at.elapsed() >= Duration::from_secs(1)
                || (ok && last_sent.as_ref().is_none_or(|l| report.differs_from(l)))
        });
        if !due {
            continue;
        }
        match reporter.report(&report).await {
            Ok(()) => {
                last_sent = Some(report);
                last_try = Some((Instant::now(), true));
            }
            Err(e) => {
                warn!(instance = %agent.instance, error = %e, "cannot report");
                last_try = Some((Instant::now(), false));
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    zkop_runtime::logging::init();
    let mut args = Args::parse();
    let (token, password) = secrets::read(&mut args).await?;
    let (instance, address) = match (args.instance.clone(), args.address.clone()) {
        (Some(i), Some(a)) => (i, a),
        (i, a) => {
            let (imds_instance, imds_address) = from_imds().await?;
            (i.unwrap_or(imds_instance), a.unwrap_or(imds_address))
        }
    };
    let layout = Layout::new(&args.data_dir);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let max_epoch = std::fs::read_to_string(layout.epoch_file())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let recovered = std::fs::read_to_string(layout.recovery_file())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let controller_ca = match &args.controller_ca {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    // The agent's own key: made at its first start and kept with the node's
    // data, so that the controller knows this instance's agent by it.
    let agent_key_file = layout.agent_key_file();
    let agent_key = zkop_runtime::secrets::ensure_secret(&agent_key_file)
        .with_context(|| format!("the agent key {}", agent_key_file.display()))?;
    // Calls leave from the instance's own address (on shared loopback each
    // instance has its own), the one the controller checks at first contact.
    let local_address = address.parse::<std::net::IpAddr>().ok();
    let client = ControllerClient::new(
        args.controllers.clone(),
        token,
        agent_key,
        controller_ca,
        local_address,
    )?;
    let mut agent = Agent {
        tls: tls::NodeTls::open(layout.tls_dir()),
        certificate_tried: None,
        served_certificate: None,
        controller: client.clone(),
        instance,
        address,
        supervisor: Supervisor::new(layout.clone()),
        layout,
        super_digest: zkop_zk::super_digest(&password),
        password,
        desired: None,
        max_epoch,
        probe: None,
        probed_at: None,
        conf_at: None,
        answered_pid: None,
        last_endpoint: None,
        disk_zxid: None,
        recovered,
        started_with: None,
        reconfig: None,
        errors: VecDeque::new(),
        shipper: None,
        restore_tried: None,
        args,
    };
    // The last desired state lets the node run on while no controller answers.
    if let Some(d) = std::fs::read_to_string(agent.desired_file())
        .ok()
        .and_then(|t| serde_json::from_str::<DesiredNodeState>(&t).ok())
    {
        agent.desired = Some(d);
    }
    agent.show_identity();
    info!(instance = %agent.instance, address = %agent.address, "agent started");

    serve(&mut agent, client).await?;
    info!(instance = %agent.instance, "stopping");
    agent.supervisor.stop(Duration::from_secs(10)).await;
    Ok(())
}
