//! Many clusters under one controller (`zkop local up DIR`): three specs in a
//! directory come up as three ensembles on their own networks; a bad edit to
//! one is refused while another is scaled; removing a file stops managing
//! that cluster and leaves it serving; one group API on `--api` serves every
//! cluster's metrics and status.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_tests::common::{
    self, SERIAL, agent_bin, fleet_pids, settled, tail, wait_until, zkop_bin,
};

/// The clusters: name and network (three /26 of 127.0.87.0/24).
const CLUSTERS: [(&str, &str); 3] = [
    ("many-a", "127.0.87.0/26"),
    ("many-b", "127.0.87.64/26"),
    ("many-c", "127.0.87.128/26"),
];

/// A running `zkop local up DIR`; on drop it and every cluster's processes
/// are killed, managed or not.
struct Many {
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Many {
    fn specs(&self) -> PathBuf {
        self.dir.path().join("specs")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spec_path(&self, name: &str) -> PathBuf {
        self.specs().join(format!("{name}.yaml"))
    }

    fn log_tail(&self) -> String {
        tail(&self.dir.path().join("zkop.log"))
    }

    /// Waits until cluster `name` satisfies `pred`.
    async fn wait(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&StatusReply) -> bool,
    ) -> StatusReply {
        common::wait_cluster(
            &self.http,
            &self.state().join(name),
            Duration::from_secs(30),
            &format!("{name}: {what}"),
            pred,
            || self.log_tail(),
        )
        .await
    }

    /// `zkop ARGS --state-dir STATE`.
    fn zkop(&self, args: &[&str]) -> std::process::Output {
        Command::new(zkop_bin())
            .args(args)
            .arg("--state-dir")
            .arg(self.state())
            .output()
            .unwrap()
    }
}

impl Drop for Many {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (name, _) in CLUSTERS {
            for pid in fleet_pids(&self.state().join(name)) {
                // SAFETY: kill(2) on PIDs checked to be this cluster's agents or servers.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }
}

fn spec(name: &str, network: &str) -> String {
    common::example_spec(3)
        .replace("name: local-3", &format!("name: {name}"))
        .replace(
            "fleet:\n    local: {}",
            &format!("fleet:\n    local:\n      network: {network}"),
        )
        .replace("min: 3", "min: 1")
        .replace("replicas: 3", "replicas: 1")
}

fn start() -> Many {
    common::require_zookeeper();
    zkop_zk::endpoint::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let mut m = Many {
        dir,
        child: None,
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    };
    std::fs::create_dir_all(m.specs()).unwrap();
    for (name, network) in CLUSTERS {
        std::fs::write(m.spec_path(name), spec(name, network)).unwrap();
    }
    let log = std::fs::File::create(m.dir.path().join("zkop.log")).unwrap();
    let mut cmd = Command::new(zkop_bin());
    common::stops_with_this_process(&mut cmd);
    let child = cmd
        .args(["local", "up"])
        .arg(m.specs())
        .arg("--state-dir")
        .arg(m.state())
        .arg("--agent-bin")
        .arg(agent_bin())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    m.child = Some(child);
    m
}

fn in_network(address: &str, network: &str) -> bool {
    let (net, prefix) = zkop_spec::network::parse_cidr(network).unwrap();
    let a: std::net::Ipv4Addr = address.parse().unwrap();
    let mask = u32::MAX << (32 - prefix);
    u32::from(a) & mask == u32::from(net) & mask
}

/// `ruok` answered `imok`: the server runs.
async fn serves(endpoint: &str) -> bool {
    zkop_zk::probe::four_letter_word(endpoint, "ruok")
        .await
        .is_ok_and(|r| r == "imok")
}

fn events_have(s: &StatusReply, kind: &str, text: &str) -> bool {
    s.events
        .iter()
        .any(|e| e.kind == kind && e.message.contains(text))
}

fn state_dir_of(m: &Many, name: &str) -> PathBuf {
    m.state().join(name)
}

fn api_json_gone(dir: &Path) -> bool {
    !dir.join("api.json").exists()
}

/// `zkop status --state-dir STATE` shows every cluster, and `--cluster`
/// picks one.
fn every_cluster_in_the_cli(m: &Many) {
    // `zkop status --state-dir STATE` shows every cluster.
    let out = m.zkop(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Vec<StatusReply> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.cluster.as_str()).collect();
    assert_eq!(names, ["many-a", "many-b", "many-c"]);
    let out = m.zkop(&["connect-string", "--cluster", "many-b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        in_network(
            String::from_utf8_lossy(&out.stdout)
                .split(':')
                .next()
                .unwrap(),
            CLUSTERS[1].1
        ),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `promtool check metrics` on `text`: valid Prometheus text (each family
/// once); its complaints otherwise.
fn promtool_check_metrics(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/install-deps installs it)");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    // Lint findings (naming advice) exit 3; a text that does not parse, 1.
    match out.status.code() {
        Some(0) | Some(3) => Ok(()),
        _ => Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// The group API (`STATE/group.json`): every cluster's metrics in one valid
/// text, every cluster's status, the page, and nothing without its token.
async fn the_group_api_covers_every_cluster(m: &Many) {
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.state().join("group.json")).unwrap())
            .unwrap();
    let url = f["url"].as_str().unwrap();
    let token = std::fs::read_to_string(f["tokenFile"].as_str().unwrap()).unwrap();
    // HTTPS with the group's own CA, and never plain text: it carries every
    // cluster's status.
    assert!(url.starts_with("https://"), "the group API at {url}");
    let https = common::https_client(Path::new(f["caFile"].as_str().unwrap()), None);
    let plain = m
        .http
        .get(format!(
            "{}/metrics",
            url.replacen("https://", "http://", 1)
        ))
        .bearer_auth(token.trim())
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "the group API answered plain HTTP: {plain:?}"
    );
    let get = |path: &str, token: Option<&str>| {
        let mut req = https.get(format!("{url}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t.trim());
        }
        req.send()
    };
    let text = get("/metrics", Some(&token))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (name, _) in CLUSTERS {
        assert!(
            text.contains(&format!("zkop_cluster_phase{{cluster=\"{name}\"")),
            "{name} missing from the group's metrics:\n{text}"
        );
    }
    promtool_check_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let all: Vec<StatusReply> = get("/v1/status", Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.cluster.as_str()).collect();
    assert_eq!(names, ["many-a", "many-b", "many-c"]);
    let refused = get("/metrics", None).await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    let page = get("/", None).await.unwrap().text().await.unwrap();
    assert!(page.contains("every cluster"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_specs_runs_each_cluster_on_its_own_and_a_removed_file_leaves_its_cluster_running()
 {
    let _serial = SERIAL.lock().await;
    let m = start();

    // Three ensembles, each on its own network.
    for (name, network) in CLUSTERS {
        let s = m.wait(name, "one voter", |s| settled(s, 1, 0)).await;
        assert_eq!(s.cluster, name);
        assert!(
            s.members.iter().all(|x| in_network(&x.address, network)),
            "{name}'s members are outside {network}: {:?}",
            s.members.iter().map(|x| &x.address).collect::<Vec<_>>()
        );
    }
    every_cluster_in_the_cli(&m);
    the_group_api_covers_every_cluster(&m).await;

    // A bad edit to many-a is refused while many-b is scaled to three voters.
    let a = m.spec_path("many-a");
    let text = std::fs::read_to_string(&a).unwrap();
    std::fs::write(&a, text.replace("replicas: 1", "replicas: lots")).unwrap();
    let b = m.spec_path("many-b");
    let text = std::fs::read_to_string(&b).unwrap();
    std::fs::write(&b, text.replace("replicas: 1", "replicas: 3")).unwrap();
    let s = m.wait("many-b", "three voters", |s| settled(s, 3, 0)).await;
    assert!(
        s.members
            .iter()
            .all(|x| in_network(&x.address, CLUSTERS[1].1))
    );
    let s = m
        .wait("many-a", "the bad edit refused", |s| {
            events_have(s, "spec-refused", "many-a.yaml is invalid")
        })
        .await;
    assert!(settled(&s, 1, 0), "many-a keeps its one voter");

    // Removing many-c's file stops managing it: its API goes, its server stays.
    let c = m.wait("many-c", "one voter", |s| settled(s, 1, 0)).await;
    let endpoint = common::endpoint(&c.members[0]);
    std::fs::remove_file(m.spec_path("many-c")).unwrap();
    let dir = state_dir_of(&m, "many-c");
    wait_until("many-c's API to stop", Duration::from_secs(30), || async {
        api_json_gone(&dir).then_some(())
    })
    .await;
    assert!(
        serves(&endpoint).await,
        "many-c's server {endpoint} keeps running"
    );
    assert!(!fleet_pids(&dir).is_empty());
    // The others are still managed.
    let out = m.zkop(&["status", "--cluster", "many-b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("many-b"));
    assert!(
        serves(&endpoint).await,
        "many-c's server {endpoint} keeps running"
    );

    // Putting the file back manages it again, with the same member.
    std::fs::write(m.spec_path("many-c"), spec("many-c", CLUSTERS[2].1)).unwrap();
    let again = m
        .wait("many-c", "managed again", |s| settled(s, 1, 0))
        .await;
    assert_eq!(common::endpoint(&again.members[0]), endpoint);
    assert_eq!(again.members[0].instance, c.members[0].instance);
}

/// `zkop bench --clusters N` (the short form: 3; by hand 20): every cluster
/// comes up under one controller, whose memory and idle CPU are read.
#[test]
fn the_clusters_bench_reads_the_controllers_footprint_with_every_cluster_serving() {
    let _serial = SERIAL.blocking_lock();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let args = [
        "bench",
        "--clusters",
        "3",
        "--json",
        "--network",
        "127.0.96.0/24",
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let row: serde_json::Value = rt.block_on(common::zkop_json(&args));
    eprintln!("{row}");
    assert_eq!(row["clusters"], 3, "{row}");
    let rss = row["controllerRssMib"].as_f64().unwrap();
    assert!(rss > 1.0 && rss < 1024.0, "{row}");
    let cpu = row["controllerCpuPercent"].as_f64().unwrap();
    assert!((0.0..100.0).contains(&cpu), "{row}");
}
