//! The hand side: plain ZooKeeper servers (no agent, no controller) and the
//! recovery a person would script with ZooKeeper's own means: stop, rewrite
//! the dynamic config file, start, and `reconfig` as the super user.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Child;
use zkop_spec::ValidatedCluster;
use zkop_spec::wire::ReconfigOrder;
use zkop_spec::zk::{
    ConfigVersion, DynamicConfig, MemberRole, Server, ServerId, ServerMode, ZooCfg,
};
use zkop_zk::jvm::JvmCommand;
use zkop_zk::probe::probe;

use super::{BenchError, BenchOptions, io, wait_for};
use crate::adapters::local::fleet_support::parse_network;

const PASSWORD: &str = "bench";

/// One plain server: its directory and, while it runs, its JVM (killed by
/// PID on drop, and with the bench by its parent-death signal).
struct PlainServer {
    server: Server,
    dir: PathBuf,
    jvm: Option<Child>,
}

impl PlainServer {
    fn new(root: &Path, spec: &ValidatedCluster, address: &str, id: u64) -> PlainServer {
        let z = &spec.zookeeper;
        PlainServer {
            server: Server {
                id: ServerId(id),
                address: address.to_string(),
                quorum_port: z.quorum_port,
                election_port: z.election_port,
                role: MemberRole::Participant,
                client_address: address.to_string(),
                client_port: z.client_port,
            },
            dir: root.join(format!("server-{id}")),
            jvm: None,
        }
    }

    fn endpoint(&self) -> String {
        self.server.client_endpoint()
    }

    fn zoo_cfg(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }

    /// Writes `myid`, the dynamic config file and `zoo.cfg` pointing at it.
    fn configure(
        &self,
        spec: &ValidatedCluster,
        dynamic: &DynamicConfig,
        file_name: &str,
    ) -> Result<(), BenchError> {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).map_err(io(format!("creating {}", data.display())))?;
        let write = |path: PathBuf, text: String| {
            std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))
        };
        write(data.join("myid"), format!("{}\n", self.server.id))?;
        let dynamic_file = self.dir.join(file_name);
        write(dynamic_file.clone(), dynamic.render_servers())?;
        let mut keys: BTreeMap<String, String> = spec.static_properties();
        keys.insert("dataDir".into(), data.display().to_string());
        keys.insert(
            "dynamicConfigFile".into(),
            dynamic_file.display().to_string(),
        );
        write(self.zoo_cfg(), ZooCfg(keys).render())
    }

    fn start(&mut self, opts: &BenchOptions, spec: &ValidatedCluster) -> Result<(), BenchError> {
        let log = self.dir.join("zookeeper.out");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let jvm = JvmCommand {
            java: opts.java.clone(),
            classpath: opts.classpath.clone(),
            heap_mb: spec.zookeeper.heap_mb,
            jvm_flags: spec.zookeeper.jvm_flags.clone(),
            super_digest: zkop_zk::super_digest(PASSWORD),
        };
        let mut cmd = jvm
            .command(&self.zoo_cfg(), &self.dir, out)
            .map_err(io("preparing java"))?;
        self.jvm = Some(cmd.spawn().map_err(io("starting java"))?);
        Ok(())
    }

    /// SIGKILL (a lost instance) or SIGTERM (a clean stop), then wait.
    async fn stop(&mut self, signal: libc::c_int) -> Result<(), BenchError> {
        if let Some(mut child) = self.jvm.take() {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) on our own child's PID.
                unsafe {
                    libc::kill(pid as libc::pid_t, signal);
                }
            }
            child.wait().await.map_err(io("waiting for java"))?;
        }
        Ok(())
    }

    async fn wait_mode(&self, modes: &[ServerMode]) -> Result<(), BenchError> {
        let endpoint = self.endpoint();
        wait_for(&format!("{endpoint} to serve as {modes:?}"), || async {
            probe(&endpoint)
                .await
                .ok()
                .filter(|p| p.serving && p.mode.is_some_and(|m| modes.contains(&m)))
        })
        .await
        .map(|_| ())
    }

    /// The version of the dynamic config file `zoo.cfg` points at.
    fn config_version(&self) -> Result<ConfigVersion, BenchError> {
        let text = std::fs::read_to_string(self.zoo_cfg())
            .map_err(io(format!("reading {}", self.zoo_cfg().display())))?;
        let cfg = ZooCfg::parse(&text).map_err(|e| BenchError::Setup(e.to_string()))?;
        cfg.dynamic_config_file()
            .and_then(|f| f.rsplit_once("zoo.cfg.dynamic.")?.1.parse().ok())
            .ok_or_else(|| BenchError::Setup("zoo.cfg names no versioned dynamic config".into()))
    }
}

/// The `n`th address of `network`.
fn address(network: &str, n: u32) -> Result<String, BenchError> {
    let (base, _) = parse_network(network).map_err(BenchError::Setup)?;
    Ok(Ipv4Addr::from(u32::from(base) + n).to_string())
}

/// Three plain servers; SIGKILL the leader and a follower; time the recovery
/// from that moment (nothing to fence: they are dead) to three voters serving.
pub async fn quorum_loss_recovery(
    opts: &BenchOptions,
    spec: &ValidatedCluster,
    root: &Path,
) -> Result<Duration, BenchError> {
    let mut servers = Vec::new();
    for n in 1..=5u32 {
        servers.push(PlainServer::new(
            root,
            spec,
            &address(&opts.hand_network, n)?,
            u64::from(n),
        ));
    }
    let first = DynamicConfig::of(servers[..3].iter().map(|s| s.server.clone()));
    for s in &mut servers[..3] {
        s.configure(spec, &first, "zoo.cfg.dynamic")?;
        s.start(opts, spec)?;
    }
    for s in &servers[..3] {
        s.wait_mode(&[ServerMode::Leader, ServerMode::Follower])
            .await?;
    }
    let mut modes = Vec::new();
    for s in &servers[..3] {
        modes.push(probe(&s.endpoint()).await.ok().and_then(|p| p.mode));
    }
    let keep = modes
        .iter()
        .position(|m| *m == Some(ServerMode::Follower))
        .ok_or_else(|| BenchError::Setup("no follower to keep".into()))?;
    for (i, s) in servers[..3].iter_mut().enumerate() {
        if i != keep {
            s.stop(libc::SIGKILL).await?;
        }
    }
    let started = Instant::now();

    // 1. Stop the survivor; give it a config of its own at version + 1.
    let survivor = &mut servers[keep];
    survivor.stop(libc::SIGTERM).await?;
    let version = ConfigVersion(survivor.config_version()?.0 + 1);
    let alone = DynamicConfig {
        version: Some(version),
        ..DynamicConfig::of([survivor.server.clone()])
    };
    survivor.configure(spec, &alone, &format!("zoo.cfg.dynamic.{version}"))?;
    survivor.start(opts, spec)?;
    survivor.wait_mode(&[ServerMode::Leader]).await?;
    let survivor_server = survivor.server.clone();
    let survivor_endpoint = survivor.endpoint();

    // 2. Two fresh servers join as observers of it, then become voters.
    let mut joining = Vec::new();
    for s in &mut servers[3..] {
        let observer = s.server.with_role(MemberRole::Observer);
        let initial = DynamicConfig::of([survivor_server.clone(), observer]);
        s.configure(spec, &initial, "zoo.cfg.dynamic")?;
        s.start(opts, spec)?;
        joining.push(s.server.clone());
    }
    // A server the leader's config does not list yet syncs as a follower
    // without a vote; either way it serves.
    for s in &servers[3..] {
        s.wait_mode(&[ServerMode::Observer, ServerMode::Follower])
            .await?;
    }
    let order = ReconfigOrder {
        seq: 1,
        from_version: version,
        joining,
        leaving: vec![],
    };
    zkop_zk::reconfig::run(&survivor_endpoint, PASSWORD, &order)
        .await
        .map_err(BenchError::ZooKeeper)?;
    for s in servers.iter().filter(|s| s.jvm.is_some()) {
        s.wait_mode(&[ServerMode::Leader, ServerMode::Follower])
            .await?;
    }
    let took = started.elapsed();
    for s in &mut servers {
        s.stop(libc::SIGTERM).await?;
    }
    Ok(took)
}
