//! The AWS path under test: a moto server with the group, table and log group,
//! `zkop run`, and the sandbox fleet simulator giving each instance an agent on
//! loopback. Every process is killed by PID when dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use zkop_spec::wire::StatusReply;

use super::moto::{Moto, create_group, create_table, create_vpc, first_image};
use super::{
    ApiClient, agent_bin, alive, api_client, read_api_json, repo_root, runs, tail, zkop_bin,
};

/// The group, table and cluster names of `examples/aws-3.yaml`.
pub const GROUP: &str = "aws-3";
/// The log group of `examples/aws-3.yaml`.
pub const LOG_GROUP: &str = "/zkop/aws-3/ids";
/// The table of `examples/aws-3.yaml`.
pub const TABLE: &str = "zkop-aws-3";
/// The secrets parameter of `examples/aws-3.yaml`.
pub const SECRETS: &str = "/zkop/aws-3/secrets";
/// The API token the tests put in it.
pub const API_TOKEN: &str = "test-api-token-6f1d";
/// The super-user password the tests put in it.
pub const SUPER_PASSWORD: &str = "test-super-password-9c2e";

/// Puts the cluster's secrets parameter.
pub async fn put_secrets(config: &aws_config::SdkConfig) {
    aws_sdk_ssm::Client::new(config)
        .put_parameter()
        .name(SECRETS)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(
            serde_json::json!({"apiToken": API_TOKEN, "superPassword": SUPER_PASSWORD}).to_string(),
        )
        .send()
        .await
        .unwrap();
}

/// Deploys the rendered template with `cf/deploy.sh` on a new VPC with three
/// subnets, naming everything after `examples/aws-3.yaml`'s cluster.
async fn deploy_stack(
    moto: &Moto,
    config: &aws_config::SdkConfig,
    replicas: u32,
    dir: &std::path::Path,
) {
    let (vpc, subnets) = create_vpc(config, 3).await;
    let ami = first_image(config).await;
    let log = std::fs::File::create(dir.join("deploy.log")).unwrap();
    let mut cmd = Command::new(repo_root().join("cf/deploy.sh"));
    cmd.args([
        "--stack-name",
        "zkop-aws-3",
        "--cluster",
        GROUP,
        "--vpc-id",
        &vpc,
    ])
    .args(["--subnets", &subnets.join(","), "--ami", &ami])
    .args([
        "--num-hosts",
        &replicas.to_string(),
        "--secrets-parameter",
        SECRETS,
    ])
    // The test runs its own controller; user data is never run on moto.
    .args([
        "--controller-host",
        "false",
        "--controller-url",
        "http://127.0.0.1:7000",
    ])
    .stdin(Stdio::null())
    .stdout(log.try_clone().unwrap())
    .stderr(log);
    moto.env(&mut cmd);
    let status = cmd.status().unwrap();
    assert!(
        status.success(),
        "cf/deploy.sh failed ({status}):\n{}",
        tail(&dir.join("deploy.log"))
    );
}

/// The AWS SDK's variable for DynamoDB's endpoint alone.
const DYNAMODB_PROXY: &str = "AWS_ENDPOINT_URL_DYNAMODB";

/// A controller (or several) and the fleet simulator against one moto server.
pub struct AwsCluster {
    pub moto: Moto,
    pub config: aws_config::SdkConfig,
    pub dir: tempfile::TempDir,
    pub spec_path: PathBuf,
    children: Vec<Child>,
    /// Each controller's PID.
    pub pids: Vec<u32>,
    http: reqwest::Client,
    /// Each controller's URL.
    pub urls: Vec<String>,
    /// Each controller's API address (fixed, so a restarted one is found again).
    apis: Vec<String>,
    /// Extra environment for controller 0 (fault injection).
    env0: Vec<(String, String)>,
    pub token: String,
    /// The proxy controller 0 reaches DynamoDB through, when asked for.
    dynamodb_proxies: Vec<super::proxy::Proxy>,
    /// The fleet simulator's PID and loopback range.
    sim_pid: u32,
    network: String,
    /// Zones the simulator spreads instances over (none: moto's one).
    zones: Vec<String>,
    /// Whether controllers run `zkop run`'s default lease, not 15 s.
    default_lease: bool,
}

/// What a few tests ask of the sandbox beyond the usual.
#[derive(Default)]
struct Extra<'a> {
    zones: &'a [&'a str],
    default_lease: bool,
}

impl AwsCluster {
    /// A group of `replicas` instances, the table, `zkop run` and the simulator.
    pub async fn start(replicas: u32, network: &str) -> AwsCluster {
        Self::start_with(replicas, network, 1).await
    }

    /// The same with `controllers` controllers sharing the table and secrets;
    /// agents get every controller's URL. `urls[i]` is controller i's.
    pub async fn start_with(replicas: u32, network: &str, controllers: usize) -> AwsCluster {
        Self::start_full(replicas, network, controllers, Vec::new()).await
    }

    /// The same with extra environment for controller 0.
    pub async fn start_full(
        replicas: u32,
        network: &str,
        controllers: usize,
        env0: Vec<(String, String)>,
    ) -> AwsCluster {
        Self::start_on(
            replicas,
            network,
            controllers,
            env0,
            false,
            false,
            Extra::default(),
        )
        .await
    }

    /// One controller and the simulator with `spec.tls` on: the API is
    /// HTTPS, and this harness trusts the CA the controller names in `api.json`.
    pub async fn start_tls(replicas: u32, network: &str) -> AwsCluster {
        Self::start_on(
            replicas,
            network,
            1,
            Vec::new(),
            false,
            true,
            Extra::default(),
        )
        .await
    }

    /// `start_with`, each controller reaching DynamoDB (its lease and state)
    /// through a proxy of its own the test can cut (`dynamodb_proxy`).
    pub async fn start_with_dynamodb_proxy(
        replicas: u32,
        network: &str,
        controllers: usize,
    ) -> AwsCluster {
        let env0 = vec![(DYNAMODB_PROXY.to_string(), String::new())];
        Self::start_on(
            replicas,
            network,
            controllers,
            env0,
            false,
            false,
            Extra::default(),
        )
        .await
    }

    /// One controller on the group, table and log group of a stack that
    /// `cf/deploy.sh` deployed from the rendered template; its output is in
    /// `deploy.log`.
    pub async fn start_from_stack(replicas: u32, network: &str) -> AwsCluster {
        Self::start_on(
            replicas,
            network,
            1,
            Vec::new(),
            true,
            false,
            Extra::default(),
        )
        .await
    }

    /// One controller, the simulator placing instances over `zones` as a
    /// group balances them (moto puts every instance in one zone).
    pub async fn start_zoned(replicas: u32, network: &str, zones: &[&str]) -> AwsCluster {
        let extra = Extra {
            zones,
            ..Extra::default()
        };
        Self::start_on(replicas, network, 1, Vec::new(), false, false, extra).await
    }

    /// One controller with `zkop run`'s default lease (45 s) rather than the
    /// 15 s the other tests run, whose controller restarts wait out a lease.
    pub async fn start_default_lease(replicas: u32, network: &str) -> AwsCluster {
        let extra = Extra {
            default_lease: true,
            ..Extra::default()
        };
        Self::start_on(replicas, network, 1, Vec::new(), false, false, extra).await
    }

    async fn start_on(
        replicas: u32,
        network: &str,
        controllers: usize,
        env0: Vec<(String, String)>,
        stack: bool,
        tls: bool,
        extra: Extra<'_>,
    ) -> AwsCluster {
        super::require_zookeeper();
        let moto = Moto::start();
        let config = moto.sdk_config().await;
        let deploy_log = tempfile::tempdir().unwrap();
        if stack {
            // The secrets first: deploy.sh keeps an existing parameter.
            put_secrets(&config).await;
            deploy_stack(&moto, &config, replicas, deploy_log.path()).await;
        } else {
            create_group(&config, GROUP, replicas as i32).await;
            create_table(&config, TABLE).await;
        }
        if !stack {
            put_secrets(&config).await;
        }
        let dir = deploy_log;
        let mut env0 = env0;
        let mut dynamodb_proxies = Vec::new();
        if env0.iter().any(|(k, _)| k == DYNAMODB_PROXY) {
            env0.retain(|(k, _)| k != DYNAMODB_PROXY);
            let target = moto.url.trim_start_matches("http://").to_string();
            for _ in 0..controllers {
                dynamodb_proxies.push(super::proxy::Proxy::start(&target).await);
            }
        }
        let spec_path = dir.path().join("spec.yaml");
        let spec = std::fs::read_to_string(repo_root().join("examples/aws-3.yaml"))
            .unwrap()
            .replace("replicas: 3", &format!("replicas: {replicas}"));
        let spec = match tls {
            true => spec.replacen("spec:\n", "spec:\n  tls:\n    enabled: true\n", 1),
            false => spec,
        };
        std::fs::write(&spec_path, spec).unwrap();
        zkop_zk::endpoint::install_crypto_provider();
        let mut c = AwsCluster {
            moto,
            config,
            dir,
            spec_path,
            children: Vec::new(),
            pids: Vec::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            urls: Vec::new(),
            apis: Vec::new(),
            env0,
            token: String::new(),
            dynamodb_proxies,
            sim_pid: 0,
            network: String::new(),
            zones: extra.zones.iter().map(|z| z.to_string()).collect(),
            default_lease: extra.default_lease,
        };
        for i in 0..controllers {
            let state = c.controller_dir(i);
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            c.apis.push(format!("127.0.0.1:{port}"));
            let pid = c.spawn_controller(i);
            c.pids.push(pid);
            let (url, token) = read_api_json(&state, Duration::from_secs(60)).await;
            if url.starts_with("https://") {
                c.http = super::https_client(&state.join("tls/ca.pem"), None);
            }
            c.urls.push(url);
            c.token = token;
        }
        c.network = network.to_string();
        c.spawn_simulator(&[]);
        c
    }

    /// Starts the fleet simulator (`zkop sandbox fleet`) with extra
    /// environment, which its agents and servers inherit.
    fn spawn_simulator(&mut self, env: &[(&str, &str)]) {
        let mut sim = self.command("sim");
        sim.args(["sandbox", "fleet"])
            .arg(&self.spec_path)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--network", &self.network])
            .arg("--agent-bin")
            .arg(agent_bin())
            .envs(env.iter().copied());
        if !self.zones.is_empty() {
            sim.arg("--zones").arg(self.zones.join(","));
        }
        for url in &self.urls {
            sim.arg("--controller").arg(url);
        }
        let child = sim.spawn().unwrap();
        self.sim_pid = child.id();
        self.children.push(child);
    }

    /// Every node reboots: the simulator stops every agent and server
    /// (SIGTERM, as a shutdown does) and starts them again on the same
    /// addresses and data, with extra environment.
    pub async fn reboot_every_node(&mut self, env: &[(&str, &str)]) {
        // SAFETY: kill(2) on the simulator this harness started.
        unsafe {
            libc::kill(self.sim_pid as libc::pid_t, libc::SIGTERM);
        }
        let pid = self.sim_pid;
        super::wait_until(
            "the simulator to stop",
            Duration::from_secs(60),
            || async move { (!alive(pid)).then_some(()) },
        )
        .await;
        self.spawn_simulator(env);
    }

    /// `start`, then waits until the group is `replicas` voters; returns the
    /// cluster and that status.
    pub async fn start_settled(replicas: u32, network: &str) -> (AwsCluster, StatusReply) {
        Self::start(replicas, network).await.settled(replicas).await
    }

    /// Three voters whose first controller SIGKILLs itself at `point`
    /// (`ZKOP_TEST_KILL_AT`), once settled; with that status.
    pub async fn start_settled_killing_at(point: &str, network: &str) -> (AwsCluster, StatusReply) {
        let env = vec![("ZKOP_TEST_KILL_AT".to_string(), point.to_string())];
        Self::start_full(3, network, 1, env).await.settled(3).await
    }

    /// Waits until the group is `replicas` voters; returns the cluster and that status.
    pub async fn settled(self, replicas: u32) -> (AwsCluster, StatusReply) {
        let s = self
            .api()
            .wait_status(
                &format!("{replicas} voters"),
                Duration::from_secs(90),
                |s| super::settled(s, replicas as usize, 0),
                || self.log_tail(),
            )
            .await;
        (self, s)
    }

    /// Waits until controller 0 has died at its `ZKOP_TEST_KILL_AT` point
    /// (and not for another reason).
    pub async fn wait_killed_at_test_point(&self) {
        super::wait_until("the controller to die", Duration::from_secs(90), || async {
            (!self.controller_alive(0)).then_some(())
        })
        .await;
        let run_log = std::fs::read_to_string(self.dir.path().join("run-0.log")).unwrap();
        assert!(
            run_log.contains("ZKOP_TEST_KILL_AT"),
            "it died for another reason:\n{run_log}"
        );
    }

    /// Controller `i`'s state directory.
    pub fn controller_dir(&self, i: usize) -> PathBuf {
        if i == 0 {
            self.state_dir()
        } else {
            self.dir.path().join(format!("state-{i}"))
        }
    }

    /// The controller's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn command(&self, log: &str) -> Command {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{log}.log")))
            .unwrap();
        let mut cmd = Command::new(zkop_bin());
        // The simulator's loopback addresses stand in for private IPs.
        cmd.env(
            zkop::adapters::aws::SANDBOX_ADDRESSES,
            self.state_dir().join("sandbox").join("addresses.json"),
        )
        .env(
            zkop::adapters::aws::SANDBOX_ZONES,
            self.state_dir().join("sandbox").join("zones.json"),
        )
        .env("AWS_ENDPOINT_URL", &self.moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
        cmd
    }

    /// Starts controller `i` (`zkop run`, logging to `run-<i>.log`).
    fn spawn_controller(&mut self, i: usize) -> u32 {
        let mut cmd = self.command(&format!("run-{i}"));
        cmd.arg("run")
            .arg(&self.spec_path)
            .arg("--state-dir")
            .arg(self.controller_dir(i))
            .args(["--api", &self.apis[i]]);
        if !self.default_lease {
            // The shortest lease (15 s, renewed every 5 s): takeovers, and a
            // restarted controller waiting out its old lease, are quick.
            cmd.args(["--lease-ttl", "15s"]);
        }
        if i == 0 {
            cmd.envs(self.env0.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        if let Some(proxy) = self.dynamodb_proxies.get(i) {
            cmd.env(DYNAMODB_PROXY, &proxy.url);
        }
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Starts another `zkop` process on this sandbox (its AWS endpoint and
    /// address files) with `args`, logging to `<log>.log`; it is stopped
    /// with the sandbox.
    pub fn spawn_zkop(&mut self, log: &str, args: &[&std::ffi::OsStr]) -> u32 {
        let child = self.command(log).args(args).spawn().unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// `zkop run DIR` on `address` over a directory `name` holding this
    /// sandbox's spec with an `apiPort` of its own (a cluster run from a
    /// directory needs one), 15 s lease, `extra` flags: its cluster API's
    /// URL and its PID.
    pub fn spawn_group(&mut self, name: &str, address: &str, extra: &[&str]) -> (String, u32) {
        use std::ffi::OsStr;
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spec = std::fs::read_to_string(&self.spec_path).unwrap().replacen(
            "autoScalingGroupName: aws-3\n",
            &format!("autoScalingGroupName: aws-3\n      apiPort: {port}\n"),
            1,
        );
        assert!(spec.contains("apiPort"), "{spec}");
        std::fs::write(dir.join("aws-3.yaml"), spec).unwrap();
        let state = self.dir.path().join(format!("{name}-state"));
        let api = format!("{address}:0");
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("run"),
            dir.as_os_str(),
            OsStr::new("--state-dir"),
            state.as_os_str(),
            OsStr::new("--api"),
            OsStr::new(&api),
            OsStr::new("--lease-ttl"),
            OsStr::new("15s"),
        ];
        args.extend(extra.iter().map(OsStr::new));
        let pid = self.spawn_zkop(&format!("run-{name}"), &args);
        (format!("http://{address}:{port}"), pid)
    }

    /// Starts controller `i` again on its address, without fault injection.
    pub fn restart_controller(&mut self, i: usize) {
        self.env0.clear();
        let pid = self.spawn_controller(i);
        self.pids[i] = pid;
    }

    /// Controller `i`'s proxy to DynamoDB (`start_with_dynamodb_proxy`).
    pub fn dynamodb_proxy(&self, i: usize) -> &super::proxy::Proxy {
        &self.dynamodb_proxies[i]
    }

    /// Starts controller `i` again on its address, as it was started (still
    /// behind its DynamoDB proxy, if it was).
    pub fn respawn_controller(&mut self, i: usize) {
        let pid = self.spawn_controller(i);
        self.pids[i] = pid;
    }

    /// Starts controller 0 again without fault injection and waits, past the
    /// dead one's lease, until `voters` voters and `observers` observers settle.
    pub async fn restart_controller_settled(
        &mut self,
        voters: usize,
        observers: usize,
    ) -> StatusReply {
        self.restart_controller(0);
        self.api()
            .wait_status(
                &format!("{voters} voters and {observers} observers after the restart"),
                Duration::from_secs(25 + 60),
                |s| super::settled(s, voters, observers),
                || self.log_tail(),
            )
            .await
    }

    /// Whether controller `i` runs.
    pub fn controller_alive(&self, i: usize) -> bool {
        alive(self.pids[i])
    }

    /// SIGKILLs controller `i` (reaped when the cluster is dropped).
    pub fn kill_controller(&self, i: usize) {
        // SAFETY: kill(2) on a child this harness started and has not reaped.
        unsafe {
            libc::kill(self.pids[i] as libc::pid_t, libc::SIGKILL);
        }
    }

    /// Controller `i`'s answer to `GET /v1/status`: its HTTP status and body,
    /// `None` when it does not answer.
    pub async fn status_of(&self, i: usize) -> Option<(u16, serde_json::Value)> {
        let resp = self
            .http
            .get(format!("{}/v1/status", self.urls[i]))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.json().await.unwrap_or_default()))
    }

    /// The first controller's API.
    pub fn api(&self) -> ApiClient<'_> {
        self.api_of(0)
    }

    /// Controller `i`'s API.
    pub fn api_of(&self, i: usize) -> ApiClient<'_> {
        api_client(&self.http, &self.urls[i], &self.token)
    }

    /// An HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Terminates `instance` through the group, keeping its desired
    /// capacity (as a failed health check does): a replacement launches.
    pub async fn terminate_through_group(&self, instance: &str) {
        aws_sdk_autoscaling::Client::new(&self.config)
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .unwrap();
    }

    /// The controller's, the simulator's and every agent's log tails.
    pub fn log_tail(&self) -> String {
        let mut out = format!(
            "-- run-0.log\n{}\n-- sim.log\n{}",
            tail(&self.dir.path().join("run-0.log")),
            tail(&self.dir.path().join("sim.log"))
        );
        let instances = self.state_dir().join("sandbox/instances");
        for entry in std::fs::read_dir(&instances)
            .into_iter()
            .flatten()
            .flatten()
        {
            let log = entry.path().join("agent.log");
            out += &format!("\n-- {}\n{}", log.display(), tail(&log));
        }
        out
    }

    /// Replaces `from` with `to` in the spec file (the controller reloads it).
    pub fn edit_spec(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.spec_path).unwrap();
        let new = text.replace(from, to);
        assert_ne!(text, new);
        std::fs::write(&self.spec_path, new).unwrap();
    }

    /// Scales 3 -> 5 -> 3 by the spec file, running `at_five` on the status
    /// with five voters: that status, and the one with three again once both
    /// departed members are forgotten.
    pub async fn scale_three_five_three(
        &self,
        limit: Duration,
        at_five: impl AsyncFn(&StatusReply),
    ) -> (StatusReply, StatusReply) {
        let log = || self.log_tail();
        self.set_replicas(3, 5);
        let s5 = self
            .api()
            .wait_status("five voters", limit, |s| super::settled(s, 5, 0), log)
            .await;
        at_five(&s5).await;
        self.set_replicas(5, 3);
        let s3 = self
            .api()
            .wait_status(
                "three voters again",
                limit,
                |s| {
                    super::settled(s, 3, 0)
                        && s.events
                            .iter()
                            .filter(|e| e.kind == "forget_member")
                            .count()
                            >= 2
                },
                log,
            )
            .await;
        (s5, s3)
    }

    /// Edits `replicas` in the spec file.
    pub fn set_replicas(&self, from: u32, to: u32) {
        let text = std::fs::read_to_string(&self.spec_path).unwrap();
        let new = text.replace(&format!("replicas: {from}"), &format!("replicas: {to}"));
        assert_ne!(text, new);
        std::fs::write(&self.spec_path, new).unwrap();
    }

    /// SIGKILLs an instance's ZooKeeper server and then its agent, as when the
    /// instance drops off the network: EC2 and the group still list it.
    pub fn kill_instance_processes(&self, instance: &str) -> Vec<u32> {
        let mut killed = Vec::new();
        let pid_file = self
            .state_dir()
            .join("sandbox/instances")
            .join(instance)
            .join("zookeeper.pid");
        let server = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .filter(|p| alive(*p) && runs(*p, "QuorumPeerMain"));
        let agent_arg = format!("--instance\0{instance}\0");
        let agents = self
            .pids()
            .into_iter()
            .filter(|p| runs(*p, "zkop-agent") && runs(*p, &agent_arg));
        for pid in server.into_iter().chain(agents) {
            // SAFETY: kill(2) on PIDs checked to be this instance's server or agent.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            killed.push(pid);
        }
        killed
    }

    /// The group, as the Auto Scaling API describes it.
    pub async fn group(&self) -> aws_sdk_autoscaling::types::AutoScalingGroup {
        let out = aws_sdk_autoscaling::Client::new(&self.config)
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(GROUP)
            .send()
            .await
            .unwrap();
        out.auto_scaling_groups()[0].clone()
    }

    /// The group's desired capacity.
    pub async fn desired_capacity(&self) -> i32 {
        self.group().await.desired_capacity().unwrap()
    }

    /// A new version of the group's launch template with another instance
    /// type, which the group launches from next; returns it as the
    /// controller names it (`lt-0abc:2`).
    pub async fn new_launch_template_version(&self, instance_type: &str) -> String {
        use aws_sdk_ec2::types::RequestLaunchTemplateData;
        let ec2 = aws_sdk_ec2::Client::new(&self.config);
        let group = self.group().await;
        let id = group
            .launch_template()
            .and_then(|t| t.launch_template_id())
            .unwrap()
            .to_string();
        let created = ec2
            .create_launch_template_version()
            .launch_template_id(&id)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id(first_image(&self.config).await)
                    .instance_type(instance_type.into())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let n = created
            .launch_template_version()
            .and_then(|v| v.version_number())
            .unwrap()
            .to_string();
        // moto tags a new instance with the template's default version, not
        // the group's: make them one (real EC2 tags the version launched).
        ec2.modify_launch_template()
            .launch_template_id(&id)
            .default_version(&n)
            .send()
            .await
            .unwrap();
        aws_sdk_autoscaling::Client::new(&self.config)
            .update_auto_scaling_group()
            .auto_scaling_group_name(GROUP)
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_id(&id)
                    .version(&n)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        format!("{id}:{n}")
    }

    /// The instance type of each instance the group lists.
    pub async fn instance_types(&self) -> BTreeMap<String, String> {
        let ids: Vec<String> = self
            .group()
            .await
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        let out = aws_sdk_ec2::Client::new(&self.config)
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| {
                Some((
                    i.instance_id()?.to_string(),
                    i.instance_type()?.as_str().to_string(),
                ))
            })
            .collect()
    }

    /// PIDs of every process of this cluster still alive: zkop's, the agents'
    /// (found by this test's own directory on their command line) and the servers'.
    fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .children
            .iter()
            .map(Child::id)
            .filter(|p| alive(*p))
            .collect();
        pids.extend(processes_under(self.dir.path()));
        pids
    }
}

/// The sandbox agents and ZooKeeper servers whose command lines name `dir`
/// (a test's own temporary directory).
pub fn processes_under(dir: &std::path::Path) -> Vec<u32> {
    let dir = dir.display().to_string();
    let mut pids = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && alive(pid)
                && runs(pid, &dir)
                && (runs(pid, "zkop-agent") || runs(pid, "QuorumPeerMain"))
            {
                pids.push(pid);
            }
        }
    }
    pids
}

/// The sandbox cluster's leadership gauges as the controller at `url`
/// exports them: `(leader, fenced)`, or `None` while it does not answer.
pub async fn leadership_gauges(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> Option<(bool, bool)> {
    let text = http
        .get(format!("{url}/metrics"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let gauge = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{cluster=\"aws-3\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v == "1")
    };
    Some((
        gauge("zkop_controller_leader")?,
        gauge("zkop_controller_fenced")?,
    ))
}

impl Drop for AwsCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in self.pids() {
            // SAFETY: kill(2) on PIDs checked to be this test's agents or servers.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}
