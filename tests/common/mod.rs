//! Test harness: runs `zkop local up` in a temporary state directory, talks to
//! its API and to ZooKeeper with an independent client, and kills every process
//! it started, by PID, when dropped (even when the test fails).

#![allow(dead_code)]

pub mod aws;
pub mod backup;
pub mod chaos;
pub mod history;
pub mod moto;
pub mod netns;
pub mod proxy;
pub mod reverse_dns;
pub mod tls;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zkop_spec::wire::{MemberStatus, StatusReply};
use zkop_spec::zk::{DynamicConfig, MemberRole};
use zookeeper_client::{Acls, Client, CreateMode};

/// Fails at once, saying why, when ZooKeeper is not installed: the servers
/// would otherwise fail to start and the test time out waiting for them.
pub fn require_zookeeper() {
    if let Some(missing) = java_args().missing_zookeeper() {
        panic!("{missing} (scripts/test runs it)");
    }
}

/// Java and the installed ZooKeeper releases, as the agents find them by default.
pub fn java_args() -> zkop_zk::jvm::JavaArgs {
    zkop_zk::jvm::JavaArgs::installed_at(Path::new(zkop_zk::jvm::RELEASES_DIR))
}

/// End-to-end tests start JVMs: one test at a time on 2 cores.
/// `GET URL/metrics` with the bearer token.
pub async fn metrics(http: &reqwest::Client, url: &str, token: &str) -> String {
    http.get(format!("{url}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The default ZooKeeper release's classpath, as the agents run it.
pub const ZOOKEEPER_CLASSPATH: &str = "/opt/zookeeper/3.9.5/lib/*:/opt/zookeeper/3.9.5/conf";

pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A workspace binary under test. The suites live in their own package, so
/// Cargo gives them no `CARGO_BIN_EXE_*`: the binaries are found in the
/// target directory, the parent of the `deps/` directory that holds the
/// running test executable (`$ZKOP_BIN_DIR` overrides it).
pub fn workspace_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("ZKOP_BIN_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target/debug"));
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace --all-targets` first (scripts/test does)",
        p.display()
    );
    p
}

/// The `zkop` binary under test.
pub fn zkop_bin() -> PathBuf {
    workspace_bin("zkop")
}

/// The `zkop-agent` binary beside it.
pub fn agent_bin() -> PathBuf {
    workspace_bin("zkop-agent")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example spec with `replicas` set.
pub fn example_spec(replicas: u32) -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/local-3.yaml")).unwrap();
    text.replace("replicas: 3", &format!("replicas: {replicas}"))
}

fn pid_alive(pid: u32) -> bool {
    // Zombies count as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn cmdline_has(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

/// A running `zkop local up`.
pub struct LocalCluster {
    pub dir: tempfile::TempDir,
    pub spec_path: PathBuf,
    pub network: String,
    /// With instances in namespaces: the hub's namespace, prefix and address.
    hub: Option<(String, String, String)>,
    child: Option<Child>,
    url: String,
    token: String,
    http: reqwest::Client,
}

impl LocalCluster {
    /// Starts `zkop local up` on `spec` in a new state directory.
    pub async fn start(spec: &str, network: &str) -> LocalCluster {
        Self::start_with(spec, network, None).await
    }

    /// `start` with extra environment, which its agents and servers inherit.
    pub async fn start_with_env(spec: &str, network: &str, env: &[(&str, &str)]) -> LocalCluster {
        let mut c = Self::new(spec, network, None);
        c.up_with_env(env).await;
        c
    }

    /// Starts `zkop local up --netns` inside `hub`, each instance in its own
    /// network namespace. The caller's thread must be in the hub too
    /// (`Hub::enter`) to reach the API and the servers.
    pub async fn start_in(spec: &str, hub: &netns::Hub) -> LocalCluster {
        let h = (hub.namespace(), hub.prefix.clone(), hub.address.clone());
        Self::start_with(spec, &hub.network, Some(h)).await
    }

    async fn start_with(
        spec: &str,
        network: &str,
        hub: Option<(String, String, String)>,
    ) -> LocalCluster {
        let mut c = Self::new(spec, network, hub);
        c.up().await;
        c
    }

    /// Its state directory and spec, not started.
    fn new(spec: &str, network: &str, hub: Option<(String, String, String)>) -> LocalCluster {
        require_zookeeper();
        zkop_zk::endpoint::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let spec_path = dir.path().join("spec.yaml");
        std::fs::write(&spec_path, spec).unwrap();
        LocalCluster {
            dir,
            spec_path,
            network: network.to_string(),
            hub,
            child: None,
            url: String::new(),
            token: String::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// `start`, then waits until the cluster is `voters` voters, settled;
    /// returns the cluster and that status.
    pub async fn start_settled(
        spec: &str,
        network: &str,
        voters: usize,
    ) -> (LocalCluster, StatusReply) {
        let c = Self::start(spec, network).await;
        let s = c
            .wait_status(&format!("{voters} voters"), Duration::from_secs(90), |s| {
                settled(s, voters, 0)
            })
            .await;
        (c, s)
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Where instance `instance`'s agent keeps its node (`conf/`, `data/`,
    /// `logs/`, `tls/`).
    pub fn instance_dir(&self, instance: &str) -> PathBuf {
        self.state_dir().join("instances").join(instance)
    }

    /// The key instance `instance`'s agent shows the controller (made by
    /// the agent at its first start, in its data directory).
    pub fn agent_key(&self, instance: &str) -> String {
        let path = self.instance_dir(instance).join("agent-key");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// (Re)starts `zkop local up` on the same state directory.
    pub async fn up(&mut self) {
        self.up_with_env(&[]).await;
    }

    /// The same with extra environment, which its agents and servers inherit.
    pub async fn up_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "already up");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("zkop.log"))
            .unwrap();
        let mut cmd = match &self.hub {
            // `ip netns exec` as a person would run it: the namespaces zkop
            // adds are then named in its own mount namespace, gone with it.
            Some((ns, prefix, address)) => {
                let mut cmd = Command::new("/usr/sbin/ip");
                cmd.args(["netns", "exec", ns]).arg(zkop_bin());
                cmd.args(["local", "up", "--netns", prefix]);
                cmd.args(["--api", &format!("{address}:0")]);
                cmd
            }
            None => {
                let mut cmd = Command::new(zkop_bin());
                cmd.args(["local", "up", "--api", "127.0.0.1:0"]);
                cmd
            }
        };
        // If the test process is killed (no guard runs then), zkop stops, and
        // its agents and servers with it.
        stops_with_this_process(&mut cmd);
        let child = cmd
            .arg(&self.spec_path)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--network", &self.network])
            .arg("--agent-bin")
            .arg(agent_bin())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        (self.url, self.token) = read_api_json(&self.state_dir(), Duration::from_secs(30)).await;
        if self.url.starts_with("https") {
            self.http = https_client(&self.state_dir().join("tls/ca.pem"), None);
        }
    }

    /// The API's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The API token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// An HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET /v1/status`, `None` while the controller does not answer.
    pub async fn status(&self) -> Option<StatusReply> {
        api_client(&self.http, &self.url, &self.token)
            .status()
            .await
    }

    /// `GET /metrics`, as Prometheus scrapes it.
    pub async fn metrics(&self) -> String {
        metrics(&self.http, &self.url, &self.token).await
    }

    /// Waits until `pred` holds on the status, failing with the last status seen.
    pub async fn wait_status(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&StatusReply) -> bool,
    ) -> StatusReply {
        api_client(&self.http, &self.url, &self.token)
            .wait_status(what, limit, pred, || self.log_tail())
            .await
    }

    /// The end of zkop's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("zkop.log"))
    }

    /// `zkop status --state-dir DIR --json`, as a person would run it.
    pub fn status_cli(&self) -> StatusReply {
        let out = self.zkop(&["status", "--json"]);
        assert!(
            out.status.success(),
            "zkop status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `zkop ARGS --state-dir DIR` for this cluster.
    pub fn zkop(&self, args: &[&str]) -> std::process::Output {
        Command::new(zkop_bin())
            .args(args)
            .arg("--state-dir")
            .arg(self.state_dir())
            .output()
            .unwrap()
    }

    /// Edits `replicas` in the spec file while it runs.
    pub fn set_replicas(&self, from: u32, to: u32) {
        self.edit_spec(&format!("replicas: {from}"), &format!("replicas: {to}"));
    }

    /// Replaces `from` with `to` in the spec file (the controller reloads it).
    pub fn edit_spec(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.spec_path).unwrap();
        let new = text.replace(from, to);
        assert_ne!(text, new, "spec had no `{from}`");
        std::fs::write(&self.spec_path, new).unwrap();
    }

    /// The controller's `zkop_reconcile_passes_total`, from `/metrics`.
    pub async fn reconcile_passes(&self) -> Option<u64> {
        let text = self
            .http()
            .get(format!("{}/metrics", self.url()))
            .bearer_auth(self.token())
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("zkop_reconcile_passes_total"))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    }

    /// Instances of the local fleet whose agent runs.
    pub fn live_instances(&self) -> Vec<String> {
        let fleet =
            std::fs::read_to_string(self.state_dir().join("fleet.json")).unwrap_or_default();
        let fleet: serde_json::Value = serde_json::from_str(&fleet).unwrap_or_default();
        fleet["instances"]
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|id| !self.instance_pids(id).is_empty())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `zkop local kill INSTANCE`.
    pub fn kill_instance(&self, instance: &str) {
        let out = Command::new(zkop_bin())
            .args(["local", "kill", "--state-dir"])
            .arg(self.state_dir())
            .arg(instance)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "zkop local kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The agent PID of an instance, if it runs.
    pub fn agent_pid(&self, instance: &str) -> Option<u32> {
        let fleet =
            std::fs::read_to_string(self.state_dir().join("fleet.json")).unwrap_or_default();
        let fleet: serde_json::Value = serde_json::from_str(&fleet).unwrap_or_default();
        fleet["instances"][instance]["agentPid"]
            .as_u64()
            .map(|p| p as u32)
            .filter(|pid| pid_alive(*pid) && cmdline_has(*pid, "zkop-agent"))
    }

    /// The ZooKeeper PID of an instance, if it runs.
    pub fn server_pid(&self, instance: &str) -> Option<u32> {
        server_pid(&self.state_dir(), instance)
    }

    /// Every PID of this cluster's agents and servers that is still alive.
    pub fn live_pids(&self) -> Vec<u32> {
        let mut pids = fleet_pids(&self.state_dir());
        if let Some(c) = &self.child
            && pid_alive(c.id())
        {
            pids.push(c.id());
        }
        pids
    }

    /// Every PID of an instance (agent and server) still alive.
    pub fn instance_pids(&self, instance: &str) -> Vec<u32> {
        let mut pids: Vec<u32> = self.agent_pid(instance).into_iter().collect();
        pids.extend(self.server_pid(instance));
        pids
    }

    /// Stops `zkop local up` with SIGTERM and waits for it to exit.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("not up");
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "zkop local up exited with {status}\n{}",
                    self.log_tail()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "zkop local up did not stop within 60s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Power loss: `zkop local up`, every agent and every server SIGKILLed
    /// at the same moment; after `off`, `zkop local up` again over the same
    /// state, whose agents start their servers on the data they had (what
    /// ZooKeeper fsynced).
    pub async fn power_loss(&mut self, off: Duration) {
        let mut pids = fleet_pids(&self.state_dir());
        pids.extend(self.child.as_ref().map(Child::id));
        for pid in &pids {
            // SAFETY: kill(2) on this cluster's own processes, by PID.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        wait_until(
            "every process of the cluster gone",
            Duration::from_secs(30),
            || {
                let alive = pids.iter().any(|p| pid_alive(*p));
                async move { (!alive).then_some(()) }
            },
        )
        .await;
        tokio::time::sleep(off).await;
        // The old run's api.json names a port nobody listens on any more.
        let _ = std::fs::remove_file(self.state_dir().join("api.json"));
        self.up().await;
    }

    /// The client endpoints of the members the status lists.
    pub fn endpoints(status: &StatusReply) -> String {
        status
            .members
            .iter()
            .map(endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in self.live_pids() {
            // SAFETY: kill(2) on PIDs checked to be this cluster's agents or servers.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// The ZooKeeper PID of a local instance of the cluster in `state_dir`, if it runs.
pub fn server_pid(state_dir: &Path, instance: &str) -> Option<u32> {
    let p = state_dir
        .join("instances")
        .join(instance)
        .join("zookeeper.pid");
    std::fs::read_to_string(p)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| pid_alive(*pid) && cmdline_has(*pid, "QuorumPeerMain"))
}

/// Every PID of the local cluster in `state_dir`'s agents and servers still alive.
pub fn fleet_pids(state_dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let fleet = std::fs::read_to_string(state_dir.join("fleet.json")).unwrap_or_default();
    let fleet: serde_json::Value = serde_json::from_str(&fleet).unwrap_or_default();
    if let Some(instances) = fleet["instances"].as_object() {
        for (id, rec) in instances {
            if let Some(pid) = rec["agentPid"].as_u64().map(|p| p as u32)
                && pid_alive(pid)
                && cmdline_has(pid, "zkop-agent")
            {
                pids.push(pid);
            }
            pids.extend(server_pid(state_dir, id));
        }
    }
    pids
}

/// Makes the child `cmd` starts get SIGTERM when this test process dies,
/// even when no guard runs (the test killed).
pub fn stops_with_this_process(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Polls `f` until it returns `Some`, failing after `limit`.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One member's client endpoint, `address:port`.
pub fn endpoint(m: &MemberStatus) -> String {
    format!("{}:{}", m.address, m.client_port)
}

/// A follower of the ensemble the status shows (the member tests keep while
/// they kill or pause others).
pub fn follower(s: &StatusReply) -> MemberStatus {
    with_role(s, "follower")
}

/// The leader.
pub fn leader(s: &StatusReply) -> MemberStatus {
    with_role(s, "leader")
}

fn with_role(s: &StatusReply, role: &str) -> MemberStatus {
    s.members
        .iter()
        .find(|m| m.role == role)
        .unwrap_or_else(|| panic!("no {role}: {:#?}", s.members))
        .clone()
}

/// Waits until a writer has acknowledged `n` writes under `/acc`, read through `client`.
pub async fn wait_writes_flowing(client: &Client, n: usize) {
    wait_until("writes flowing", Duration::from_secs(30), || async {
        client
            .list_children("/acc")
            .await
            .ok()
            .filter(|c| c.len() >= n)
    })
    .await;
}

/// Creates `/kept` and `n` children under it through `client`.
pub async fn write_kept(client: &Client, n: usize) {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/kept", b"v", &options).await.unwrap();
    for i in 0..n {
        client
            .create(&format!("/kept/z{i}"), b"v", &options)
            .await
            .unwrap();
    }
}

/// An independent ZooKeeper client (not zkop's agent) connected to `hosts`.
pub async fn zk_client(hosts: &str) -> Client {
    let hosts = hosts.to_string();
    wait_until(
        "a ZooKeeper client session",
        Duration::from_secs(30),
        || {
            let hosts = hosts.clone();
            async move {
                Client::connector()
                    .with_session_timeout(Duration::from_secs(10))
                    .connect(&hosts)
                    .await
                    .ok()
            }
        },
    )
    .await
}

/// Creates `/acc` if needed and writes sequential znodes until told to stop;
/// returns the paths whose creation was acknowledged.
pub async fn write_until(hosts: String, stop: tokio::sync::watch::Receiver<bool>) -> Vec<String> {
    write_until_timed(hosts, stop)
        .await
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// `write_until`, with when each write was acknowledged.
pub async fn write_until_timed(
    hosts: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, Instant)> {
    let mut acked = Vec::new();
    let mut client = zk_client(&hosts).await;
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let seq_options = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    while client.create("/acc", b"", &options).await.is_err() {
        if client.check_stat("/acc").await.ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while !*stop.borrow() {
        match client.create("/acc/n-", b"x", &seq_options).await {
            Ok((_, seq)) => acked.push((format!("n-{seq}"), Instant::now())),
            Err(e) => {
                if matches!(
                    e,
                    zookeeper_client::Error::SessionExpired | zookeeper_client::Error::ClientClosed
                ) {
                    // The servers may stay down a while (a quorum loss): keep
                    // trying until told to stop.
                    match reconnect(&hosts, &stop).await {
                        Some(c) => client = c,
                        None => break,
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    acked
}

/// A new session with `hosts`, tried until one opens or `stop` turns true.
async fn reconnect(hosts: &str, stop: &tokio::sync::watch::Receiver<bool>) -> Option<Client> {
    while !*stop.borrow() {
        if let Ok(c) = Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(hosts)
            .await
        {
            return Some(c);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// The controller API as a test sees it.
pub struct ApiClient<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
    token: &'a str,
}

/// A client of the API at `url`.
pub fn api_client<'a>(http: &'a reqwest::Client, url: &'a str, token: &'a str) -> ApiClient<'a> {
    ApiClient { http, url, token }
}

impl ApiClient<'_> {
    /// `GET /v1/status`, `None` while the controller does not answer.
    pub async fn status(&self) -> Option<StatusReply> {
        let resp = self
            .http
            .get(format!("{}/v1/status", self.url))
            .bearer_auth(self.token)
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// Waits until `pred` holds on the status; fails with the last status seen
    /// and `log_tail()`.
    pub async fn wait_status(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&StatusReply) -> bool,
        log_tail: impl Fn() -> String,
    ) -> StatusReply {
        let deadline = Instant::now() + limit;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(s) = self.status().await {
                if pred(&s) {
                    return s;
                }
                last = Some(s);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "timed out after {limit:?} waiting for {what}; last status: {}\nlog tail:\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            log_tail()
        );
    }
}

/// The status of the cluster whose state directory is `dir` (its API named
/// by its `api.json`, waited for up to `api_json`), once `pred` holds on it,
/// within two minutes; `what` names the wait for its failure, with
/// `log_tail()`.
pub async fn wait_cluster(
    http: &reqwest::Client,
    dir: &Path,
    api_json: Duration,
    what: &str,
    pred: impl Fn(&StatusReply) -> bool,
    log_tail: impl Fn() -> String,
) -> StatusReply {
    let (url, token) = read_api_json(dir, api_json).await;
    api_client(http, &url, &token)
        .wait_status(what, Duration::from_secs(120), pred, log_tail)
        .await
}

/// The last 40 lines of a log file.
pub fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Whether `pid` is alive (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    pid_alive(pid)
}

/// Whether `pid` runs a command line containing `needle`.
pub fn runs(pid: u32, needle: &str) -> bool {
    cmdline_has(pid, needle)
}

pub fn voters(s: &StatusReply) -> usize {
    s.members
        .iter()
        .filter(|m| m.config_role == Some(MemberRole::Participant))
        .count()
}

pub fn observers(s: &StatusReply) -> usize {
    s.members
        .iter()
        .filter(|m| m.config_role == Some(MemberRole::Observer))
        .count()
}

/// `n` voters and `o` observers, all healthy, one leader, nothing else.
pub fn settled(s: &StatusReply, n: usize, o: usize) -> bool {
    s.phase == "Running"
        && s.members.len() == n + o
        && voters(s) == n
        && observers(s) == o
        && s.members.iter().all(|m| m.healthy)
        && s.members.iter().filter(|m| m.role == "leader").count() == 1
}

pub async fn committed_config(hosts: &str) -> DynamicConfig {
    let client = zk_client(hosts).await;
    client.sync("/zookeeper/config").await.unwrap();
    let (data, _) = client.get_config().await.unwrap();
    DynamicConfig::parse(&String::from_utf8_lossy(&data)).unwrap()
}

/// For every instance terminated, its member had already left the config:
/// some config adopted earlier does not list it.
pub fn removed_before_terminated(s: &StatusReply, instance: &str, id: u64) {
    let terminated = s
        .events
        .iter()
        .position(|e| e.kind == "terminate_instance" && e.message.contains(instance))
        .unwrap_or_else(|| panic!("no termination event for {instance}: {:#?}", s.events));
    // A config the controller adopted, from a reconfig's answer or from a
    // member's report, ends "voters [..] observers [..]".
    let removed = s.events[..terminated].iter().any(|e| {
        matches!(e.kind.as_str(), "complete_reconfig" | "record_config")
            && e.message.rsplit_once("voters [").is_some_and(|(_, tail)| {
                !tail
                    .split(|c: char| !c.is_ascii_digit())
                    .any(|n| n == id.to_string())
            })
    });
    assert!(
        removed,
        "{instance} (member {id}) terminated before leaving the config: {:#?}",
        s.events
    );
}

/// ZooKeeper's committed membership, read by an independent client, lists
/// exactly the members (ids and addresses) the status shows; returns it.
pub async fn assert_zookeeper_agrees(s: &StatusReply) -> DynamicConfig {
    let config = committed_config(&LocalCluster::endpoints(s)).await;
    let in_zk: BTreeSet<(u64, String)> = config
        .servers
        .values()
        .map(|m| (m.id.0, m.address.clone()))
        .collect();
    let in_status: BTreeSet<(u64, String)> = s
        .members
        .iter()
        .map(|m| (m.id.0, m.address.clone()))
        .collect();
    assert_eq!(in_zk, in_status, "/zookeeper/config vs zkop status");
    config
}

/// The writes under `/acc` the ensemble holds (read after a sync).
pub async fn present_writes(s: &StatusReply) -> BTreeSet<String> {
    let client = zk_client(&LocalCluster::endpoints(s)).await;
    client.sync("/acc").await.unwrap();
    client
        .list_children("/acc")
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Every write the writer saw acknowledged reads back from the ensemble.
pub async fn assert_writes_kept(s: &StatusReply, acked: &[String]) {
    assert!(acked.len() > 20, "only {} writes got through", acked.len());
    let present = present_writes(s).await;
    let lost: Vec<&String> = acked.iter().filter(|a| !present.contains(*a)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

/// Waits for `state_dir/api.json` and returns the controller's URL and token.
pub async fn read_api_json(state_dir: &Path, limit: Duration) -> (String, String) {
    let api = state_dir.join("api.json");
    wait_until("api.json is written", limit, || async {
        std::fs::read_to_string(&api)
            .ok()
            .filter(|t| t.contains("url"))
    })
    .await;
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&api).unwrap()).unwrap();
    let token = std::fs::read_to_string(f["tokenFile"].as_str().unwrap()).unwrap();
    (
        f["url"].as_str().unwrap().to_string(),
        token.trim().to_string(),
    )
}

/// Runs a Python script with arguments; its trimmed stdout, or a panic
/// naming what it printed on stderr.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An HTTPS client trusting the cluster CA in `ca_file` alone, showing the
/// PEM `identity` (a certificate and its key in one file) when given.
pub fn https_client(ca_file: &Path, identity: Option<&Path>) -> reqwest::Client {
    let ca = std::fs::read_to_string(ca_file).unwrap();
    let identity = identity.map(|p| std::fs::read_to_string(p).unwrap());
    let tls = zkop_zk::endpoint::client_config(&ca, identity.as_deref().map(|i| (i, i))).unwrap();
    zkop_zk::endpoint::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// One look at an ensemble: the voters of the leader's config, and how many
/// of them serve as leader or follower (no leader: none of none).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When its last probe ended (ms since the Unix epoch): what it saw
    /// was so no later than this (its probes take up to a few hundred ms).
    pub at_ms: u64,
    /// Voters serving.
    pub serving: usize,
    /// Voters in the leader's config.
    pub voters: usize,
}

impl Sample {
    /// A majority of the config's voters serves.
    pub fn majority(&self) -> bool {
        self.voters > 0 && self.serving > self.voters / 2
    }
}

/// Probes every endpoint (`srvr` and the config) once.
pub async fn sample(endpoints: &[String]) -> Sample {
    use zkop_spec::zk::ServerMode;
    let mut probes = Vec::new();
    for e in endpoints {
        if let Ok(p) = zkop_zk::probe::probe(e).await
            && p.serving
        {
            probes.push((e.clone(), p));
        }
    }
    let at_ms = zkop::clock::Clock::wall_ms(&zkop::clock::SystemClock);
    let Some(config) = probes
        .iter()
        .find(|(_, p)| p.mode == Some(ServerMode::Leader))
        .and_then(|(_, p)| p.config.clone())
    else {
        return Sample {
            at_ms,
            serving: 0,
            voters: 0,
        };
    };
    let voter = |e: &str| {
        config
            .voters()
            .any(|s| format!("{}:{}", s.client_address, s.client_port) == e)
    };
    let serving = probes
        .iter()
        .filter(|(e, p)| {
            voter(e) && matches!(p.mode, Some(ServerMode::Leader | ServerMode::Follower))
        })
        .count();
    Sample {
        at_ms,
        serving,
        voters: config.voter_count(),
    }
}

/// Samples `endpoints` every 100 ms until told to stop.
pub async fn sample_until(
    endpoints: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    while !*stop.borrow() {
        samples.push(sample(&endpoints).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples
}

/// A majority of voters served at every sample but in one run of samples (an
/// election) starting after `election_from_ms`.
pub fn assert_majority_but_one_election(samples: &[Sample], election_from_ms: u64) {
    assert!(samples.len() > 20, "{} samples", samples.len());
    let minority: Vec<usize> = (0..samples.len())
        .filter(|i| !samples[*i].majority())
        .collect();
    for i in &minority {
        assert!(
            samples[*i].at_ms >= election_from_ms,
            "a majority did not serve before the leader's turn: {:?}",
            &samples[i.saturating_sub(3)..(*i + 3).min(samples.len())]
        );
    }
    if let (Some(first), Some(last)) = (minority.first(), minority.last()) {
        assert_eq!(
            last - first + 1,
            minority.len(),
            "more than one outage: {samples:?}"
        );
    }
}

/// Every event the controller reports until told to stop, in order (its
/// status keeps only the last 50).
pub async fn collect_events(
    http: reqwest::Client,
    url: String,
    token: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<zkop_spec::wire::Event> {
    let api = api_client(&http, &url, &token);
    let mut all: Vec<zkop_spec::wire::Event> = Vec::new();
    loop {
        let stopping = *stop.borrow();
        if let Some(s) = api.status().await {
            for e in s.events {
                if !all.contains(&e) {
                    all.push(e);
                }
            }
        }
        if stopping {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Runs `zkop` with `args`, expects success, and parses what it printed as JSON.
pub async fn zkop_json<T: serde::de::DeserializeOwned>(args: &[&std::ffi::OsStr]) -> T {
    let out = tokio::process::Command::new(zkop_bin())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "zkop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Now, in ms since the Unix epoch (as event stamps are).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Each member's id and the instance holding it.
pub fn members(s: &StatusReply) -> std::collections::BTreeMap<u64, String> {
    s.members
        .iter()
        .map(|m| (m.id.0, m.instance.to_string()))
        .collect()
}

/// `spec` naming ZooKeeper `version`, with the 3.8 line's known data-loss
/// bug (ZOOKEEPER-4394) accepted, as a spec that may go to 3.8 must.
pub fn on_release(spec: &str, version: &str) -> String {
    spec.replace(
        "  zookeeper:\n",
        &format!("  zookeeper:\n    version: {version}\n    acceptKnownIssues: [ZOOKEEPER-4394]\n"),
    )
}

/// Every member's server says (`srvr`) it runs `version`.
pub fn all_on_release(s: &StatusReply, version: &str) -> bool {
    s.members
        .iter()
        .all(|m| m.zookeeper_version.as_deref() == Some(version))
}

/// The events of `s` of any of `kinds`, stamped at or after `since_ms`.
pub fn events_of<'a>(
    s: &'a StatusReply,
    kinds: &[&str],
    since_ms: u64,
) -> Vec<&'a zkop_spec::wire::Event> {
    s.events
        .iter()
        .filter(|e| e.at_ms >= since_ms && kinds.contains(&e.kind.as_str()))
        .collect()
}

/// `/bulk` with `n` children of 64 KiB each: data a server takes a while to load.
pub async fn write_bulk(client: &Client, n: usize) {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let blob = vec![7u8; 64 * 1024];
    client.create("/bulk", b"", &options).await.unwrap();
    for i in 0..n {
        client
            .create(&format!("/bulk/b{i}"), &blob, &options)
            .await
            .unwrap();
    }
}

/// Asserts that `/bulk` still has `n` children.
pub async fn assert_bulk_kept(hosts: &str, n: usize) {
    let client = zk_client(hosts).await;
    client.sync("/bulk").await.unwrap();
    assert_eq!(client.list_children("/bulk").await.unwrap().len(), n);
}
