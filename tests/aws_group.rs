//! `zkop run DIR` on the AWS sandbox: two clusters (orders, search) under one
//! controller and ONE leader lease, each on its own Auto Scaling group, API
//! port and loopback range, with a fleet simulator each, against one moto.
//! Loopback 127.0.97.0/24 and 127.0.98.0/24.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_tests::common::moto::{Moto, create_group, create_table};
use zkop_tests::common::{
    SERIAL, agent_bin, alive, api_client, assert_writes_kept, assert_zookeeper_agrees,
    read_api_json, removed_before_terminated, repo_root, runs, settled, tail, wait_cluster,
    wait_until, write_until, zk_client, zkop_bin, zkop_json,
};

/// The table both clusters keep their state in, and the group's lease.
const TABLE: &str = "zkop-group";
/// The clusters, each with its loopback range.
const CLUSTERS: [(&str, &str); 2] = [("orders", "127.0.97.0/24"), ("search", "127.0.98.0/24")];

/// The long form's ten one-voter clusters, on 127.0.100.0/24 to 127.0.109.0/24.
fn ten_clusters() -> Vec<(String, String)> {
    (0..10)
        .map(|i| (format!("c{i}"), format!("127.0.{}.0/24", 100 + i)))
        .collect()
}

/// The controller, the simulators, moto; every process killed on drop.
struct Group {
    moto: Moto,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    http: reqwest::Client,
    names: Vec<String>,
    /// Each cluster's API port.
    ports: Vec<u16>,
    /// Each controller's PID.
    pids: Vec<u32>,
}

impl Drop for Group {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in zkop_tests::common::aws::processes_under(self.dir.path()) {
            // SAFETY: kill(2) on PIDs checked to be this test's agents or servers.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Group {
    fn specs(&self) -> PathBuf {
        self.dir.path().join("specs")
    }

    fn state(&self, cluster: &str) -> PathBuf {
        self.root(0).join(cluster)
    }

    /// Controller `i`'s state root (its `--state-dir`).
    fn root(&self, i: usize) -> PathBuf {
        match i {
            0 => self.dir.path().join("state"),
            i => self.dir.path().join(format!("state-{i}")),
        }
    }

    /// Starts controller `i` of the group on 127.0.0.(i+1), each cluster's
    /// API at its port there; with a second controller, the shortest lease
    /// (15 s) for a quick takeover.
    fn spawn_controller(&mut self, i: usize, lease_ttl: Option<&str>) {
        let addresses = std::env::join_paths(
            self.names
                .iter()
                .map(|name| self.state(name).join("sandbox/addresses.json")),
        )
        .unwrap();
        let mut run = self.command(&format!("run-{i}"));
        run.arg("run")
            .arg(self.specs())
            .arg("--state-dir")
            .arg(self.root(i))
            .args(["--api", &format!("127.0.0.{}:0", i + 1)])
            .args(["--group", "test", "--lease-table", TABLE])
            .env(zkop::adapters::aws::SANDBOX_ADDRESSES, addresses);
        if let Some(ttl) = lease_ttl {
            run.args(["--lease-ttl", ttl]);
        }
        let child = run.spawn().unwrap();
        self.pids.push(child.id());
        self.children.push(child);
    }

    fn command(&self, log: &str) -> Command {
        let out = std::fs::File::create(self.dir.path().join(format!("{log}.log"))).unwrap();
        let mut cmd = Command::new(zkop_bin());
        self.moto.env(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        cmd
    }

    fn log_tail(&self) -> String {
        let mut out = String::new();
        let logs =
            std::iter::once("run".to_string()).chain(self.names.iter().map(|n| format!("sim-{n}")));
        for log in logs {
            out.push_str(&format!("--- {log}.log\n"));
            out.push_str(&tail(&self.dir.path().join(format!("{log}.log"))));
        }
        out
    }

    /// The cluster's status once it is `n` voters.
    async fn settled(&self, cluster: &str, n: usize) -> StatusReply {
        self.wait(cluster, &format!("{n} voters"), |s| settled(s, n, 0))
            .await
    }

    /// The cluster's status once `pred` holds on it (two minutes at most).
    async fn wait(
        &self,
        cluster: &str,
        what: &str,
        pred: impl Fn(&StatusReply) -> bool,
    ) -> StatusReply {
        wait_cluster(
            &self.http,
            &self.state(cluster),
            Duration::from_secs(60),
            &format!("{cluster}: {what}"),
            pred,
            || self.log_tail(),
        )
        .await
    }

    /// Writes `name`'s spec (examples/aws-3.yaml renamed, `replicas`
    /// instances, its API on `port`).
    fn write_spec(&self, name: &str, replicas: u32, port: u16) {
        let spec = std::fs::read_to_string(repo_root().join("examples/aws-3.yaml"))
            .unwrap()
            .replace("replicas: 3", &format!("replicas: {replicas}"))
            .replace("min: 3", &format!("min: {}", replicas.min(3)))
            .replace("name: aws-3", &format!("name: {name}"))
            .replace(
                "autoScalingGroupName: aws-3",
                &format!("autoScalingGroupName: {name}\n      apiPort: {port}"),
            )
            .replace("/zkop/aws-3/", &format!("/zkop/{name}/"))
            .replace("table: zkop-aws-3", &format!("table: {TABLE}"));
        std::fs::write(self.specs().join(format!("{name}.yaml")), spec).unwrap();
    }

    /// Moto, a group, a secrets parameter and a spec for each of
    /// `clusters` (name, loopback range), `zkop run DIR` and a simulator
    /// per cluster.
    async fn start(clusters: &[(String, String)], replicas: u32) -> Group {
        Self::start_with(clusters, replicas, 1).await
    }

    /// The same with `controllers` controllers of the group (agents get
    /// every one's URLs); only the first is started.
    async fn start_with(clusters: &[(String, String)], replicas: u32, controllers: usize) -> Group {
        zkop_tests::common::require_zookeeper();
        let moto = Moto::start();
        let config = moto.sdk_config().await;
        create_table(&config, TABLE).await;
        zkop_zk::endpoint::install_crypto_provider();
        let mut g = Group {
            moto,
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            names: clusters.iter().map(|(n, _)| n.clone()).collect(),
            ports: Vec::new(),
            pids: Vec::new(),
        };
        std::fs::create_dir_all(g.specs()).unwrap();
        let ssm = aws_sdk_ssm::Client::new(&config);
        for (name, _) in clusters {
            create_group(&config, name, replicas as i32).await;
            ssm.put_parameter()
                .name(format!("/zkop/{name}/secrets"))
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .value(
                    serde_json::json!({"apiToken": format!("token-{name}"), "superPassword": "pw-7c1e"})
                        .to_string(),
                )
                .send()
                .await
                .unwrap();
            let port = free_port();
            g.write_spec(name, replicas, port);
            g.ports.push(port);
        }
        // One controller: `zkop run`'s default lease (45 s), as idle
        // controllers run it.
        g.spawn_controller(0, (controllers > 1).then_some("15s"));
        for (k, (name, network)) in clusters.iter().enumerate() {
            read_api_json(&g.state(name), Duration::from_secs(60)).await;
            let mut sim = g.command(&format!("sim-{name}"));
            sim.args(["sandbox", "fleet"])
                .arg(g.specs().join(format!("{name}.yaml")))
                .arg("--state-dir")
                .arg(g.state(name))
                .args(["--network", network])
                .arg("--agent-bin")
                .arg(agent_bin());
            if controllers > 1 {
                for i in 0..controllers {
                    let url = format!("http://127.0.0.{}:{}", i + 1, g.ports[k]);
                    sim.arg("--controller").arg(url);
                }
            }
            g.children.push(sim.spawn().unwrap());
        }
        g
    }
}

/// The group API on --api covers both clusters; one lease item for the
/// group, none per cluster.
async fn one_api_and_one_lease_for_the_group(g: &Group) {
    // The group API on --api covers both clusters.
    let (url, token, https) = group_api(&g.root(0));
    let all: Vec<StatusReply> = https
        .get(format!("{url}/v1/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.cluster.as_str()).collect();
    assert_eq!(names, ["orders", "search"]);

    // One lease for the group, none per cluster.
    let lease = item(&g.moto, "lease#group#test").await;
    assert!(lease.is_some(), "no group lease");
    for (name, _) in CLUSTERS {
        assert_eq!(item(&g.moto, &format!("lease#{name}")).await, None);
    }
}

/// orders 3 -> 5 -> 3 with a client writing: each removed member leaves the
/// config before its instance is terminated, and no acknowledged write is
/// lost.
async fn orders_three_five_three_keeping_writes(g: &Group, orders: &StatusReply) {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_until(orders.connect_string.clone(), stop_rx));
    let spec = g.specs().join("orders.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("replicas: 3", "replicas: 5")).unwrap();
    let five = g.settled("orders", 5).await;
    std::fs::write(&spec, &text).unwrap();
    let three = g
        .wait("orders", "three voters again", |s| {
            settled(s, 3, 0)
                && s.events
                    .iter()
                    .filter(|e| e.kind == "forget_member")
                    .count()
                    >= 2
        })
        .await;
    let _ = stop.send(true);
    let acked = writer.await.unwrap();
    for m in &five.members {
        if !three.members.iter().any(|k| k.id == m.id) {
            removed_before_terminated(&three, m.instance.as_str(), m.id.0);
        }
    }
    assert_writes_kept(&three, &acked).await;
    assert_zookeeper_agrees(&three).await;
}

/// The DynamoDB item `pk`, if stored, as text.
async fn item(moto: &Moto, pk: &str) -> Option<String> {
    let config = moto.sdk_config().await;
    let out = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(TABLE)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .send()
        .await
        .unwrap();
    out.item().map(|i| format!("{i:?}"))
}

/// The group API's URL and token, and a client trusting its CA, from
/// `root/group.json`.
fn group_api(root: &Path) -> (String, String, reqwest::Client) {
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("group.json")).unwrap()).unwrap();
    let token = std::fs::read_to_string(f["tokenFile"].as_str().unwrap()).unwrap();
    let url = f["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://"), "the group API at {url}");
    let https = zkop_tests::common::https_client(Path::new(f["caFile"].as_str().unwrap()), None);
    (url, token.trim().to_string(), https)
}

/// `zkop` with `args`; its stdout, or a panic with its stderr.
fn zkop(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(zkop_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "zkop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn path(p: &Path) -> &std::ffi::OsStr {
    p.as_os_str()
}

/// `zkop bench --aws-calls` over every cluster under `root` for `window`
/// seconds: at most 6 a minute per cluster; the rate per cluster.
async fn idle_calls_per_cluster_at_most_six(root: &Path, window: &str) -> f64 {
    let rates: Vec<serde_json::Value> = zkop_json(&[
        os("bench"),
        os("--aws-calls"),
        os("--json"),
        os("--window-seconds"),
        os(window),
        os("--state-dir"),
        path(root),
    ])
    .await;
    eprintln!("idle AWS calls a minute: {rates:?}");
    let per_cluster = rates
        .iter()
        .find(|r| r["service"] == "per cluster")
        .and_then(|r| r["callsPerMinute"].as_f64())
        .unwrap_or_else(|| panic!("no per-cluster row: {rates:?}"));
    assert!(
        per_cluster <= 6.0,
        "{per_cluster} calls a minute per cluster: {rates:?}"
    );
    per_cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_controller_runs_two_clusters_under_one_lease_within_six_calls_a_minute_each() {
    let _serial = SERIAL.lock().await;
    let clusters = CLUSTERS.map(|(n, net)| (n.to_string(), net.to_string()));
    let g = Group::start(&clusters, 3).await;
    let orders = g.settled("orders", 3).await;
    let search = g.settled("search", 3).await;
    assert_ne!(orders.connect_string, search.connect_string);

    one_api_and_one_lease_for_the_group(&g).await;

    // Idle: at most 6 AWS calls a minute per cluster, the lease shared.
    let root = g.dir.path().join("state");
    let _ = idle_calls_per_cluster_at_most_six(&root, "60").await;

    // Issue 3's path on both clusters at once, under the one controller.
    assert_zookeeper_agrees(&orders).await;
    assert_zookeeper_agrees(&search).await;
    let search_spec = g.specs().join("search.yaml");
    let good = std::fs::read_to_string(&search_spec).unwrap();
    std::fs::write(&search_spec, good.replace("replicas: 3", "replicas: three")).unwrap();
    let old = search.members[0].instance.to_string();
    zkop(&[
        os("replace"),
        os(&old),
        os("--state-dir"),
        path(&root),
        os("--cluster"),
        os("search"),
    ]);
    orders_three_five_three_keeping_writes(&g, &orders).await;
    let search = g
        .wait("search", "the member replaced", |s| {
            settled(s, 3, 0) && s.members.iter().all(|m| m.instance != old.as_str())
        })
        .await;
    assert!(
        search
            .events
            .iter()
            .any(|e| e.kind == "spec-refused" && e.message.contains("search.yaml is invalid")),
        "the bad edit was not refused: {:?}",
        search.events
    );
    std::fs::write(&search_spec, &good).unwrap();
    // A search instance terminated through its Auto Scaling group.
    let victim = search.members[1].instance.to_string();
    aws_sdk_autoscaling::Client::new(&g.moto.sdk_config().await)
        .terminate_instance_in_auto_scaling_group()
        .instance_id(&victim)
        .should_decrement_desired_capacity(false)
        .send()
        .await
        .unwrap();
    let search = g
        .wait("search", "the terminated member replaced", |s| {
            settled(s, 3, 0) && s.members.iter().all(|m| m.instance != victim.as_str())
        })
        .await;
    assert_zookeeper_agrees(&search).await;

    // Removing search's file stops managing it; its ensemble keeps serving.
    let hosts = search.connect_string.clone();
    std::fs::remove_file(&search_spec).unwrap();
    let api = g.state("search").join("api.json");
    wait_until(
        "search no longer managed",
        Duration::from_secs(30),
        || async { (!api.exists()).then_some(()) },
    )
    .await;
    let client = zk_client(&hosts).await;
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client.create("/still-here", b"v", &options).await.unwrap();
    g.settled("orders", 3).await;
    let run = g.pids[0];
    assert!(alive(run) && runs(run, "run"), "{}", g.log_tail());
}

/// The long form, run by hand for docs/performance.md: ten one-voter
/// clusters under one controller, idle AWS calls a minute per cluster
/// (`cargo test -p zkop-tests --test aws_group -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long form: ten clusters, about five minutes"]
async fn ten_clusters_share_one_lease_idle() {
    let _serial = SERIAL.lock().await;
    let g = Group::start(&ten_clusters(), 1).await;
    for (name, _) in ten_clusters() {
        g.settled(&name, 1).await;
    }
    // Three minutes: the clusters settled together, so their once-a-minute
    // looks at their groups fall together, and a one-minute window may
    // straddle them.
    let root = g.dir.path().join("state");
    let per_cluster = idle_calls_per_cluster_at_most_six(&root, "180").await;
    eprintln!("ten clusters: {per_cluster} idle AWS calls a minute per cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_controller_of_the_group_takes_over_every_cluster_when_the_first_dies() {
    let _serial = SERIAL.lock().await;
    let clusters = CLUSTERS.map(|(n, net)| (n.to_string(), net.to_string()));
    let mut g = Group::start_with(&clusters, 1, 2).await;
    for (name, _) in &clusters {
        g.settled(name, 1).await;
    }
    g.spawn_controller(1, Some("15s"));
    // SIGKILL the first; the second acts for both clusters.
    // SAFETY: kill(2) on the controller this test started.
    unsafe {
        libc::kill(g.pids[0] as libc::pid_t, libc::SIGKILL);
    }
    let orders_spec = g.specs().join("orders.yaml");
    let text = std::fs::read_to_string(&orders_spec).unwrap();
    std::fs::write(&orders_spec, text.replace("replicas: 1", "replicas: 3")).unwrap();
    for (name, n) in [("orders", 3), ("search", 1)] {
        let (url, token) = read_api_json(&g.root(1).join(name), Duration::from_secs(60)).await;
        assert!(url.starts_with("http://127.0.0.2:"), "{url}");
        api_client(&g.http, &url, &token)
            .wait_status(
                &format!("{name}: {n} voters under the second controller"),
                Duration::from_secs(120),
                |s| settled(s, n, 0),
                || g.log_tail(),
            )
            .await;
    }
}
