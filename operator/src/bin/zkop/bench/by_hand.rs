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
use zkop::adapters::local::fleet_support::parse_network;

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
        self.jvm = Some(start_jvm(opts, spec, &self.zoo_cfg(), &self.dir, &log)?);
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

/// A ZooKeeper server of `zoo_cfg` with the spec's heap and JVM flags, as
/// a person starts one; its output appended to `log`, its logs in `dir`.
pub(super) fn start_jvm(
    opts: &BenchOptions,
    spec: &ValidatedCluster,
    zoo_cfg: &Path,
    dir: &Path,
    log: &Path,
) -> Result<Child, BenchError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(format!("opening {}", log.display())))?;
    let jvm = JvmCommand {
        java: opts.java.clone(),
        classpath: opts.classpath.clone(),
        heap_mb: spec.zookeeper.heap_mb,
        jvm_flags: spec.zookeeper.jvm_flags.clone(),
        super_digest: zkop_zk::super_digest(PASSWORD),
    };
    let mut cmd = jvm
        .command(zoo_cfg, dir, out)
        .map_err(io("preparing java"))?;
    cmd.spawn().map_err(io("starting java"))
}

/// The `n`th address of `network`.
fn address(network: &str, n: u32) -> Result<String, BenchError> {
    let (base, _) = parse_network(network).map_err(BenchError::Setup)?;
    Ok(Ipv4Addr::from(u32::from(base) + n).to_string())
}

/// An ensemble of plain servers a person runs by hand; each method is one
/// operation, timed from its first action to the ensemble serving again.
pub struct HandEnsemble<'a> {
    opts: &'a BenchOptions,
    spec: &'a ValidatedCluster,
    root: PathBuf,
    servers: Vec<PlainServer>,
    /// The committed config, as the last reconfig or forced config left it.
    config: DynamicConfig,
}

impl<'a> HandEnsemble<'a> {
    /// No servers yet; they go under `root`.
    pub fn new(opts: &'a BenchOptions, spec: &'a ValidatedCluster, root: &Path) -> Self {
        HandEnsemble {
            opts,
            spec,
            root: root.to_path_buf(),
            servers: Vec::new(),
            config: DynamicConfig::default(),
        }
    }

    /// A new server on the next address, not started.
    fn add_server(&mut self) -> Result<usize, BenchError> {
        let n = self.servers.len() as u32 + 1;
        let address = address(&self.opts.hand_network, n)?;
        self.servers.push(PlainServer::new(
            &self.root,
            self.spec,
            &address,
            u64::from(n),
        ));
        Ok(self.servers.len() - 1)
    }

    fn index_of(&self, id: ServerId) -> Option<usize> {
        self.servers.iter().position(|s| s.server.id == id)
    }

    /// Running servers the config lists, with their modes.
    async fn modes(&self) -> Vec<(usize, Option<ServerMode>)> {
        let mut out = Vec::new();
        for (i, s) in self.servers.iter().enumerate() {
            if s.jvm.is_some() && self.config.servers.contains_key(&s.server.id) {
                out.push((i, probe(&s.endpoint()).await.ok().and_then(|p| p.mode)));
            }
        }
        out
    }

    /// The serving leader's index.
    pub async fn leader(&self) -> Result<usize, BenchError> {
        wait_for("a leader", || async {
            self.modes()
                .await
                .into_iter()
                .find(|(_, m)| *m == Some(ServerMode::Leader))
                .map(|(i, _)| i)
        })
        .await
    }

    /// Waits until every voter of the config serves as leader or follower and
    /// every observer as observer.
    async fn settle(&self) -> Result<(), BenchError> {
        for (id, server) in &self.config.servers {
            let i = self
                .index_of(*id)
                .ok_or_else(|| BenchError::Setup(format!("no server {id}")))?;
            let modes = match server.role {
                MemberRole::Participant => &[ServerMode::Leader, ServerMode::Follower][..],
                MemberRole::Observer => &[ServerMode::Observer][..],
            };
            self.servers[i].wait_mode(modes).await?;
        }
        Ok(())
    }

    /// Writes `n` servers' configs and starts them; to the first leader. Then
    /// waits (untimed) for all to serve.
    pub async fn bootstrap(&mut self, n: usize) -> Result<Duration, BenchError> {
        let started = Instant::now();
        for _ in 0..n {
            self.add_server()?;
        }
        self.config = DynamicConfig::of(self.servers.iter().map(|s| s.server.clone()));
        for s in &mut self.servers {
            s.configure(self.spec, &self.config, "zoo.cfg.dynamic")?;
            s.start(self.opts, self.spec)?;
        }
        self.leader().await?;
        let took = started.elapsed();
        self.settle().await?;
        Ok(took)
    }

    /// `reconfig` as the super user through the leader; adopts the result.
    async fn reconfig(
        &mut self,
        joining: Vec<Server>,
        leaving: Vec<ServerId>,
    ) -> Result<(), BenchError> {
        let leader = self.leader().await?;
        let version = self
            .config
            .version
            .ok_or_else(|| BenchError::Setup("the config has no version".into()))?;
        let order = ReconfigOrder {
            seq: 1,
            from_version: version,
            joining,
            leaving,
        };
        self.config = zkop_zk::reconfig::run(&self.servers[leader].endpoint(), PASSWORD, &order)
            .await
            .map_err(BenchError::ZooKeeper)?;
        Ok(())
    }

    /// Reads the committed config (its version is set only once committed).
    async fn read_config(&mut self) -> Result<(), BenchError> {
        let leader = self.leader().await?;
        let endpoint = self.servers[leader].endpoint();
        self.config = wait_for("the committed config", || async {
            probe(&endpoint).await.ok().and_then(|p| p.config)
        })
        .await?;
        Ok(())
    }

    /// A new server starts with the config plus itself as an observer, and a
    /// reconfig adds it as one.
    pub async fn add_observer(&mut self) -> Result<Duration, BenchError> {
        if self.config.version.is_none() {
            self.read_config().await?;
        }
        let started = Instant::now();
        let i = self.add_server()?;
        let observer = self.servers[i].server.with_role(MemberRole::Observer);
        let initial = self.config.with(observer.clone());
        self.servers[i].configure(self.spec, &initial, "zoo.cfg.dynamic")?;
        self.servers[i].start(self.opts, self.spec)?;
        // Not yet in the leader's config, it syncs as a follower without a vote.
        self.servers[i]
            .wait_mode(&[ServerMode::Observer, ServerMode::Follower])
            .await?;
        self.reconfig(vec![observer], vec![]).await?;
        self.settle().await?;
        Ok(started.elapsed())
    }

    /// Replaces a voter (the leader, or a follower): a new observer joins,
    /// the lowest-id observer takes the voter's place in one reconfig, and
    /// the voter's server is stopped once the new config serves.
    pub async fn replace_voter(&mut self, leader: bool) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let current = self.leader().await?;
        let old = if leader {
            current
        } else {
            self.modes()
                .await
                .into_iter()
                .find(|(_, m)| *m == Some(ServerMode::Follower))
                .map(|(i, _)| i)
                .ok_or_else(|| BenchError::Setup("no follower".into()))?
        };
        let old_id = self.servers[old].server.id;
        self.add_observer().await?;
        let promoted = self
            .config
            .observers()
            .map(|s| s.with_role(MemberRole::Participant))
            .min_by_key(|s| s.id)
            .ok_or_else(|| BenchError::Setup("no observer".into()))?;
        // (Removing the leader drops the reply; `reconfig::run` reads the
        // outcome back, as a person would with `config`.)
        self.reconfig(vec![promoted], vec![old_id]).await?;
        self.settle().await?;
        self.servers[old].stop(libc::SIGTERM).await?;
        Ok(started.elapsed())
    }

    /// Restarts every server once, observers, followers, the leader last; each
    /// waits for the last to serve and reach the leader's zxid as of its stop.
    pub async fn rolling_restart(&mut self) -> Result<Duration, BenchError> {
        self.roll(None).await
    }

    /// The rolling restart onto another release (`to`'s classpath), each
    /// server waited for until `srvr` says it runs `version`.
    pub async fn upgrade(
        &mut self,
        to: &BenchOptions,
        version: &str,
    ) -> Result<Duration, BenchError> {
        self.roll(Some((to, version))).await
    }

    /// Every running server's client endpoint, as a connect string.
    pub fn connect_string(&self) -> String {
        self.servers
            .iter()
            .filter(|s| s.jvm.is_some())
            .map(PlainServer::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn roll(&mut self, to: Option<(&BenchOptions, &str)>) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let mut order: Vec<(u8, usize)> = self
            .modes()
            .await
            .into_iter()
            .map(|(i, m)| {
                let rank = match m {
                    Some(ServerMode::Observer) => 0,
                    Some(ServerMode::Leader) => 2,
                    _ => 1,
                };
                (rank, i)
            })
            .collect();
        order.sort();
        for (rank, i) in order {
            let leader = self.leader().await?;
            // (An epoch's opening zxid is no transaction to reach.)
            let leader_zxid = probe(&self.servers[leader].endpoint())
                .await
                .ok()
                .and_then(|p| p.zxid)
                .filter(|z| z.is_transaction());
            self.servers[i].stop(libc::SIGTERM).await?;
            self.servers[i].start(to.map_or(self.opts, |t| t.0), self.spec)?;
            let endpoint = self.servers[i].endpoint();
            let on_release = |v: Option<&str>| {
                to.is_none_or(|t| {
                    v.and_then(zkop_spec::releases::Release::parse)
                        .is_some_and(|r| r.to_string() == t.1)
                })
            };
            wait_for(&format!("{endpoint} back and caught up"), || async {
                probe(&endpoint).await.ok().filter(|p| {
                    p.serving
                        && (rank == 2 || p.zxid >= leader_zxid)
                        && on_release(p.version.as_deref())
                })
            })
            .await?;
        }
        self.settle().await?;
        Ok(started.elapsed())
    }

    /// Drops every observer (untimed), so the quorum loss starts from voters only.
    pub async fn remove_observers(&mut self) -> Result<(), BenchError> {
        let observers: Vec<ServerId> = self.config.observers().map(|s| s.id).collect();
        if observers.is_empty() {
            return Ok(());
        }
        self.reconfig(vec![], observers.clone()).await?;
        for id in observers {
            if let Some(i) = self.index_of(id) {
                self.servers[i].stop(libc::SIGTERM).await?;
            }
        }
        Ok(())
    }

    /// SIGKILLs the leader and followers until a minority of voters is left;
    /// then, timed: stop the survivors, give the first a config of its own at
    /// version + 1, restart it, start fresh servers as its observers and
    /// reconfig them in, back to as many voters as before.
    pub async fn quorum_loss_recovery(&mut self) -> Result<Duration, BenchError> {
        let voters = self.config.voter_count();
        let lost = self.config.majority();
        let modes = self.modes().await;
        let leader = self.leader().await?;
        let mut killed = vec![leader];
        killed.extend(
            modes
                .iter()
                .filter(|(i, m)| *i != leader && *m == Some(ServerMode::Follower))
                .map(|(i, _)| *i)
                .take(lost - 1),
        );
        let survivors: Vec<usize> = modes
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| !killed.contains(i))
            .collect();
        for i in &killed {
            self.servers[*i].stop(libc::SIGKILL).await?;
        }
        let started = Instant::now();

        // 1. Stop the survivors; the first gets a config of its own at version + 1.
        for i in &survivors {
            self.servers[*i].stop(libc::SIGTERM).await?;
        }
        let keep = *survivors
            .first()
            .ok_or_else(|| BenchError::Setup("no survivor".into()))?;
        let version = ConfigVersion(self.servers[keep].config_version()?.0 + 1);
        let alone = DynamicConfig {
            version: Some(version),
            ..DynamicConfig::of([self.servers[keep].server.clone()])
        };
        self.servers[keep].configure(self.spec, &alone, &format!("zoo.cfg.dynamic.{version}"))?;
        self.servers[keep].start(self.opts, self.spec)?;
        self.servers[keep].wait_mode(&[ServerMode::Leader]).await?;
        self.config = alone;

        // 2. Fresh servers join as its observers, then become voters together.
        let mut joining = Vec::new();
        for _ in 1..voters {
            let i = self.add_server()?;
            let observer = self.servers[i].server.with_role(MemberRole::Observer);
            let initial = self.config.with(observer);
            self.servers[i].configure(self.spec, &initial, "zoo.cfg.dynamic")?;
            self.servers[i].start(self.opts, self.spec)?;
            joining.push(i);
        }
        for i in &joining {
            self.servers[*i]
                .wait_mode(&[ServerMode::Observer, ServerMode::Follower])
                .await?;
        }
        let servers: Vec<Server> = joining
            .iter()
            .map(|i| self.servers[*i].server.clone())
            .collect();
        self.reconfig(servers, vec![]).await?;
        self.settle().await?;
        Ok(started.elapsed())
    }

    /// Stops every server.
    pub async fn stop(&mut self) -> Result<(), BenchError> {
        for s in &mut self.servers {
            s.stop(libc::SIGTERM).await?;
        }
        Ok(())
    }
}
