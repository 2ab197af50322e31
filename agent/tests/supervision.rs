//! `zkop-agent` against a real ZooKeeper JVM, with no controller reachable: it
//! runs the server from its last desired state and restarts it after a crash.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zkop_spec::wire::{DesiredNodeState, MemberAssignment, NodeAssignment};
use zkop_spec::zk::{DynamicConfig, MemberRole, Server, ServerId, static_properties};

const ADDRESS: &str = "127.0.44.1";

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

fn srvr() -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{ADDRESS}:2181").parse().ok()?,
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

fn desired(dir: &Path) {
    let server = Server {
        id: ServerId(1),
        address: ADDRESS.into(),
        quorum_port: 2888,
        election_port: 3888,
        role: MemberRole::Participant,
        client_address: ADDRESS.into(),
        client_port: 2181,
    };
    let d = DesiredNodeState {
        cluster: "t".into(),
        epoch: 1,
        revision: 1,
        instance: "i-0001".into(),
        node: NodeAssignment::Member(MemberAssignment {
            server_id: ServerId(1),
            initial_config: DynamicConfig::of([server]),
            static_config: static_properties(500, 10, 5, &BTreeMap::new()),
            heap_mb: 128,
            jvm_flags: vec!["-XX:+UseSerialGC".into()],
            reconfig: None,
        }),
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("desired.json"), serde_json::to_string(&d).unwrap()).unwrap();
}

#[test]
fn runs_zookeeper_without_a_controller_and_restarts_it_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    desired(&node);
    std::fs::write(dir.path().join("token"), "t0k3n\n").unwrap();
    std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_zkop-agent"))
        .args(["--instance", "i-0001", "--address", ADDRESS])
        .arg("--data-dir")
        .arg(&node)
        // Nothing listens on port 1: the controller is unreachable.
        .args(["--controller", "http://127.0.0.1:1"])
        .arg("--token-file")
        .arg(dir.path().join("token"))
        .arg("--super-password-file")
        .arg(dir.path().join("pw"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let guard = Guard { agent, dir };

    wait_for("the server to lead", Duration::from_secs(60), || {
        srvr().is_some_and(|r| r.contains("Mode: leader"))
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
            && srvr().is_some_and(|r| r.contains("Mode: leader"))
    });
    // The data directory was kept: the same myid, the same epoch files.
    assert_eq!(
        std::fs::read_to_string(guard.dir.path().join("node/data/myid"))
            .unwrap()
            .trim(),
        "1"
    );
}
