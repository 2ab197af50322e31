//! `zkop-agent` against a real ZooKeeper JVM, with no controller reachable: it
//! runs the server from its last desired state and restarts it after a crash.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use zkop_spec::wire::{AgentReport, DesiredNodeState, MemberAssignment, NodeAssignment};
use zkop_spec::zk::{DynamicConfig, MemberRole, Server, ServerId, Zxid, static_properties};

/// Each test's server gets its own loopback address.
const FIRST: &str = "127.0.44.1";
const SECOND: &str = "127.0.44.2";

/// Tests that start JVMs run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Kills the agent and its server by PID when dropped.
struct Guard {
    agent: Child,
    dir: tempfile::TempDir,
}

impl Guard {
    fn server_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("node/zookeeper.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(pid) = self.server_pid()
            && std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("QuorumPeerMain"))
        {
            // SAFETY: kill(2) on a PID checked to run this test's ZooKeeper.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = self.agent.kill();
        let _ = self.agent.wait();
    }
}

fn srvr(address: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{address}:2181").parse().ok()?,
        Duration::from_secs(1),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn member_state(address: &str, epoch: u64, revision: u64) -> DesiredNodeState {
    let server = Server {
        id: ServerId(1),
        address: address.into(),
        quorum_port: 2888,
        election_port: 3888,
        role: MemberRole::Participant,
        client_address: address.into(),
        client_port: 2181,
    };
    DesiredNodeState {
        cluster: "t".into(),
        epoch,
        revision,
        instance: "i-0001".into(),
        probe_closely: true,
        node: NodeAssignment::Member(Box::new(MemberAssignment {
            server_id: ServerId(1),
            initial_config: DynamicConfig::of([server]),
            static_config: static_properties(500, 10, 5, &BTreeMap::new()),
            heap_mb: 128,
            jvm_flags: vec!["-XX:+UseSerialGC".into()],
            reconfig: None,
            recovery: None,
            roll: 0,
            zookeeper_version: None,
            restore: None,
            backup: None,
        })),
    }
}

fn desired(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("desired.json"),
        serde_json::to_string(&member_state(FIRST, 1, 1)).unwrap(),
    )
    .unwrap();
}

fn spawn_agent(dir: &Path, address: &str, controller: &str) -> Child {
    std::fs::write(dir.join("token"), "t0k3n\n").unwrap();
    std::fs::write(dir.join("pw"), "secret\n").unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_zkop-agent"))
        .args(["--instance", "i-0001", "--address", address])
        .arg("--data-dir")
        .arg(dir.join("node"))
        .args(["--controller", controller])
        .arg("--token-file")
        .arg(dir.join("token"))
        .arg("--super-password-file")
        .arg(dir.join("pw"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn runs_zookeeper_without_a_controller_and_restarts_it_after_a_crash() {
    let _serial = SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    desired(&node);
    // Nothing listens on port 1: the controller is unreachable.
    let agent = spawn_agent(dir.path(), FIRST, "http://127.0.0.1:1");
    let guard = Guard { agent, dir };

    wait_for("the server to lead", Duration::from_secs(60), || {
        srvr(FIRST).is_some_and(|r| r.contains("Mode: leader"))
    });
    let first = guard.server_pid().expect("no zookeeper.pid");
    let log = std::fs::read_to_string(guard.dir.path().join("agent.log")).unwrap();
    assert!(log.contains("cannot fetch desired state"), "{log}");

    // SAFETY: kill(2) on the server the agent started for this test.
    unsafe {
        libc::kill(first as libc::pid_t, libc::SIGKILL);
    }
    wait_for("a restarted server", Duration::from_secs(60), || {
        guard.server_pid().is_some_and(|p| p != first)
            && srvr(FIRST).is_some_and(|r| r.contains("Mode: leader"))
    });
    // The data directory was kept: the same myid, the same epoch files.
    assert_eq!(
        std::fs::read_to_string(guard.dir.path().join("node/data/myid"))
            .unwrap()
            .trim(),
        "1"
    );
}

/// A stand-in controller: serves whatever desired state the test sets and
/// keeps the reports it gets.
#[derive(Clone, Default)]
struct StandIn {
    desired: Arc<Mutex<Option<DesiredNodeState>>>,
    reports: Arc<Mutex<Vec<AgentReport>>>,
}

async fn serve(standin: StandIn) -> String {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/v1/agents/{instance}/desired",
            get(|State(s): State<StandIn>| async move {
                // A short poll is enough for a test.
                tokio::time::sleep(Duration::from_millis(300)).await;
                match s.desired.lock().unwrap().clone() {
                    Some(d) => Json(d).into_response(),
                    None => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
                }
            }),
        )
        .route(
            "/v1/agents/{instance}/report",
            post(
                |State(s): State<StandIn>, Json(r): Json<AgentReport>| async move {
                    s.reports.lock().unwrap().push(r);
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(standin);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_desired_state_from_an_older_controller_epoch() {
    let _serial = SERIAL.lock().await;
    let standin = StandIn::default();
    *standin.desired.lock().unwrap() = Some(member_state(SECOND, 2, 1));
    let url = serve(standin.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(dir.path(), SECOND, &url);
    let guard = Guard { agent, dir };
    let leads = || srvr(SECOND).is_some_and(|r| r.contains("Mode: leader"));
    wait_for_async("the server to lead", Duration::from_secs(60), &leads).await;
    let pid = guard.server_pid().unwrap();

    // A controller of epoch 1 (an old leader) says: stop. The agent refuses.
    let mut stale = member_state(SECOND, 1, 2);
    stale.node = NodeAssignment::Idle;
    *standin.desired.lock().unwrap() = Some(stale);
    wait_for_async("the refusal in a report", Duration::from_secs(30), || {
        standin.reports.lock().unwrap().iter().any(|r| {
            r.errors
                .iter()
                .any(|e| e.contains("refused a desired state of epoch 1"))
        })
    })
    .await;
    assert_eq!(guard.server_pid(), Some(pid), "the server was touched");
    assert!(leads(), "the server stopped serving");
    assert_eq!(
        standin.reports.lock().unwrap().last().unwrap().epoch_seen,
        2
    );

    // Something on disk: a znode written by a client.
    let client = zookeeper_client::Client::connect(&format!("{SECOND}:2181"))
        .await
        .unwrap();
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client.create("/written", b"v", &options).await.unwrap();
    drop(client);
    let served: Zxid = srvr(SECOND)
        .and_then(|r| {
            r.lines()
                .find_map(|l| l.strip_prefix("Zxid: ").map(str::to_string))
        })
        .unwrap()
        .parse()
        .unwrap();

    // The current leader (epoch 3) retires the member: the agent obeys.
    // (A bare "no member here" no longer stops a server whose data the node
    // holds: a controller that lost its state rebuilds it from reports.)
    let mut current = member_state(SECOND, 3, 3);
    current.node = NodeAssignment::Retired {
        server_id: ServerId(1),
    };
    *standin.desired.lock().unwrap() = Some(current);
    wait_for_async("the server stopped", Duration::from_secs(30), || {
        guard.server_pid().is_none() && srvr(SECOND).is_none()
    })
    .await;
    // Stopped, its last zxid comes from its data directory.
    wait_for_async("the zxid read from disk", Duration::from_secs(30), || {
        standin.reports.lock().unwrap().last().is_some_and(|r| {
            r.disk_zxid
                .is_some_and(|z| z >= served && z.epoch == served.epoch)
        })
    })
    .await;
}

async fn wait_for_async(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_ec2_the_instance_and_address_come_from_imdsv2() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, put};
    // A stand-in instance metadata service on loopback, IMDSv2 only: every
    // read needs the session token a PUT hands out.
    let imds = axum::Router::new()
        .route(
            "/latest/api/token",
            put(|headers: HeaderMap| async move {
                match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
                    // The SDK reads the token's TTL back from the answer.
                    Some(ttl) => (
                        StatusCode::OK,
                        [("x-aws-ec2-metadata-token-ttl-seconds", ttl.clone())],
                        "session-token",
                    )
                        .into_response(),
                    None => StatusCode::BAD_REQUEST.into_response(),
                }
            }),
        )
        .route(
            "/latest/meta-data/{item}",
            get(|axum::extract::Path(item): axum::extract::Path<String>, headers: HeaderMap| async move {
                if headers.get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok()) != Some("session-token") {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                match item.as_str() {
                    "instance-id" => (StatusCode::OK, "i-0imds0000000001".to_string()),
                    "local-ipv4" => (StatusCode::OK, "127.0.44.3".to_string()),
                    _ => (StatusCode::NOT_FOUND, String::new()),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let imds_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, imds).await });
    let standin = StandIn::default();
    let controller = serve(standin.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t0k3n\n").unwrap();
    std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_zkop-agent"))
        .arg("--ec2")
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .args(["--controller", &controller])
        .arg("--token-file")
        .arg(dir.path().join("token"))
        .arg("--super-password-file")
        .arg(dir.path().join("pw"))
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_url)
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Guard { agent, dir };
    wait_for_async("a report", Duration::from_secs(30), || {
        !standin.reports.lock().unwrap().is_empty()
    })
    .await;
    let report = standin.reports.lock().unwrap()[0].clone();
    assert_eq!(report.instance, "i-0imds0000000001");
    assert_eq!(report.address, "127.0.44.3");
}
