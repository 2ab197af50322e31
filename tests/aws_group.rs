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
    SERIAL, agent_bin, alive, api_client, read_api_json, repo_root, runs, settled, tail,
    wait_until, zk_client, zkop_bin, zkop_json,
};

/// The table both clusters keep their state in, and the group's lease.
const TABLE: &str = "zkop-group";
/// The clusters, each with its loopback range.
const CLUSTERS: [(&str, &str); 2] = [("orders", "127.0.97.0/24"), ("search", "127.0.98.0/24")];

/// The controller, the simulators, moto; every process killed on drop.
struct Group {
    moto: Moto,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    http: reqwest::Client,
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
        self.dir.path().join("state").join(cluster)
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
        for log in ["run", "sim-orders", "sim-search"] {
            out.push_str(&format!("--- {log}.log\n"));
            out.push_str(&tail(&self.dir.path().join(format!("{log}.log"))));
        }
        out
    }

    /// The cluster's status once it is `n` voters.
    async fn settled(&self, cluster: &str, n: usize) -> StatusReply {
        let (url, token) = read_api_json(&self.state(cluster), Duration::from_secs(60)).await;
        api_client(&self.http, &url, &token)
            .wait_status(
                &format!("{cluster}: {n} voters"),
                Duration::from_secs(120),
                |s| settled(s, n, 0),
                || self.log_tail(),
            )
            .await
    }

    /// Writes `name`'s spec (examples/aws-3.yaml renamed, its API on `port`).
    fn write_spec(&self, name: &str, port: u16) {
        let spec = std::fs::read_to_string(repo_root().join("examples/aws-3.yaml"))
            .unwrap()
            .replace("name: aws-3", &format!("name: {name}"))
            .replace(
                "autoScalingGroupName: aws-3",
                &format!("autoScalingGroupName: {name}\n      apiPort: {port}"),
            )
            .replace("/zkop/aws-3/", &format!("/zkop/{name}/"))
            .replace("table: zkop-aws-3", &format!("table: {TABLE}"));
        std::fs::write(self.specs().join(format!("{name}.yaml")), spec).unwrap();
    }

    async fn start() -> Group {
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
        };
        std::fs::create_dir_all(g.specs()).unwrap();
        let ssm = aws_sdk_ssm::Client::new(&config);
        for (name, _) in CLUSTERS {
            create_group(&config, name, 3).await;
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
            g.write_spec(name, free_port());
        }
        let addresses = std::env::join_paths(
            CLUSTERS.map(|(name, _)| g.state(name).join("sandbox/addresses.json")),
        )
        .unwrap();
        let mut run = g.command("run");
        run.arg("run")
            .arg(g.specs())
            .arg("--state-dir")
            .arg(g.dir.path().join("state"))
            // `zkop run`'s default lease (45 s): no controller restarts here.
            .args(["--api", "127.0.0.1:0"])
            .args(["--group", "test", "--lease-table", TABLE])
            .env(zkop::adapters::aws::SANDBOX_ADDRESSES, addresses);
        g.children.push(run.spawn().unwrap());
        for (name, network) in CLUSTERS {
            read_api_json(&g.state(name), Duration::from_secs(60)).await;
            let mut sim = g.command(&format!("sim-{name}"));
            sim.args(["sandbox", "fleet"])
                .arg(g.specs().join(format!("{name}.yaml")))
                .arg("--state-dir")
                .arg(g.state(name))
                .args(["--network", network])
                .arg("--agent-bin")
                .arg(agent_bin());
            g.children.push(sim.spawn().unwrap());
        }
        g
    }
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

/// `zkop bench --aws-calls` over every cluster under `root`: at most 6 a
/// minute per cluster.
async fn idle_calls_per_cluster_at_most_six(root: &Path) {
    let rates: Vec<serde_json::Value> = zkop_json(&[
        os("bench"),
        os("--aws-calls"),
        os("--json"),
        os("--window-seconds"),
        os("60"),
        os("--state-dir"),
        path(root),
    ])
    .await;
    eprintln!("idle AWS calls a minute, two clusters: {rates:?}");
    let per_cluster = rates
        .iter()
        .find(|r| r["service"] == "per cluster")
        .and_then(|r| r["callsPerMinute"].as_f64())
        .unwrap_or_else(|| panic!("no per-cluster row: {rates:?}"));
    assert!(
        per_cluster <= 6.0,
        "{per_cluster} calls a minute per cluster: {rates:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_controller_runs_two_clusters_under_one_lease_within_six_calls_a_minute_each() {
    let _serial = SERIAL.lock().await;
    let g = Group::start().await;
    let orders = g.settled("orders", 3).await;
    let search = g.settled("search", 3).await;
    assert_ne!(orders.connect_string, search.connect_string);

    // One lease for the group, none per cluster.
    let lease = item(&g.moto, "lease#group#test").await;
    assert!(lease.is_some(), "no group lease");
    for (name, _) in CLUSTERS {
        assert_eq!(item(&g.moto, &format!("lease#{name}")).await, None);
    }

    // Idle: at most 6 AWS calls a minute per cluster, the lease shared.
    let root = g.dir.path().join("state");
    idle_calls_per_cluster_at_most_six(&root).await;

    // A bad edit to search is refused while orders scales out and a search
    // member is replaced (through the CLI's --cluster).
    let search_spec = g.specs().join("search.yaml");
    let good = std::fs::read_to_string(&search_spec).unwrap();
    std::fs::write(&search_spec, good.replace("replicas: 3", "replicas: three")).unwrap();
    let orders_spec = g.specs().join("orders.yaml");
    let text = std::fs::read_to_string(&orders_spec).unwrap();
    std::fs::write(&orders_spec, text.replace("replicas: 3", "replicas: 5")).unwrap();
    let old = search.members[0].instance.to_string();
    zkop(&[
        os("replace"),
        os(&old),
        os("--state-dir"),
        path(&root),
        os("--cluster"),
        os("search"),
    ]);
    g.settled("orders", 5).await;
    let (url, token) = read_api_json(&g.state("search"), Duration::from_secs(5)).await;
    let search = api_client(&g.http, &url, &token)
        .wait_status(
            "search: the member replaced",
            Duration::from_secs(120),
            |s| settled(s, 3, 0) && s.members.iter().all(|m| m.instance != old.as_str()),
            || g.log_tail(),
        )
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
    g.settled("orders", 5).await;
    let run = &g.children[0];
    assert!(alive(run.id()) && runs(run.id(), "run"), "{}", g.log_tail());
}
