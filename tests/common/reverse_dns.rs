//! CVE-2026-24281 on the namespace fleet: a peer certificate that names only
//! a host name its address resolves back to. Each instance's namespace gets
//! a hosts file (`ip netns exec` reads `/etc/netns/<ns>/hosts`) mapping the
//! hub's address to that name; the certificate is the cluster CA's, so the
//! name is all that can refuse it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{LocalCluster, ZOOKEEPER_CLASSPATH, wait_until};

/// The name the rogue certificate carries and the hosts files resolve.
pub const NAME: &str = "rogue-peer.zk.test";

/// `/etc/netns/<ns>/hosts` for the given namespaces, removed on drop (also
/// when the test fails).
pub struct HostsFiles {
    dirs: Vec<PathBuf>,
}

impl HostsFiles {
    /// Maps `address` to [`NAME`] in each of `namespaces`, after what the
    /// machine's own hosts file says.
    pub fn write(namespaces: &[String], address: &str) -> HostsFiles {
        let machine = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let mut files = HostsFiles { dirs: Vec::new() };
        for ns in namespaces {
            let dir = Path::new("/etc/netns").join(ns);
            std::fs::create_dir_all(&dir).unwrap();
            files.dirs.push(dir.clone());
            std::fs::write(dir.join("hosts"), format!("{machine}\n{address} {NAME}\n")).unwrap();
        }
        files
    }
}

impl Drop for HostsFiles {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        // /etc/netns itself only when nothing else is in it.
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

/// A certificate from `c`'s CA naming only [`NAME`] (no address), as a peer
/// would present it: `ca.pem`, `cert.pem`, `key.pem` in the returned dir.
pub fn named_cert(c: &LocalCluster) -> PathBuf {
    let tls = c.state_dir().join("tls");
    let read = |f: &str| std::fs::read_to_string(tls.join(f)).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&read("ca-key.pem")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read("ca.pem"), &ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![NAME.to_string()]).unwrap();
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let dir = c.dir.path().join("named-peer");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), read("ca.pem")).unwrap();
    dir
}

/// The election port of a plain ZooKeeper server (one participant) run in
/// instance `instance`'s network and mount namespaces (so with its hosts
/// file), on its address, with its member's quorum TLS settings (FIPS mode
/// off, so that ZooKeeper's own trust manager judges the peer) but
/// ZooKeeper's own default for the reverse DNS fallback (allowed on the
/// quorum, as every release before the fix does). Killed on drop.
pub struct DefaultLookupServer {
    _jvm: tokio::process::Child,
    /// Its election port.
    pub election_port: u16,
}

impl DefaultLookupServer {
    /// Starts it beside `instance`'s member at `address`, and waits until
    /// its election port listens.
    pub async fn start(c: &LocalCluster, instance: &str, address: &str) -> DefaultLookupServer {
        let agent = c.agent_pid(instance).expect("the instance's agent");
        let member_cfg = c.instance_dir(instance).join("conf/zoo.cfg");
        let member_cfg = std::fs::read_to_string(&member_cfg).unwrap();
        let dir = c.dir.path().join("default-lookup");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/myid"), "1\n").unwrap();
        let election_port = 4888;
        let mut cfg = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nstandaloneEnabled=false\n\
             reconfigEnabled=true\nadmin.enableServer=false\n4lw.commands.whitelist=srvr\n\
             sslQuorum=true\nfips-mode=false\nserver.1={address}:4887:{election_port}:participant;{address}:4181\n",
            dir.join("data").display()
        );
        for line in member_cfg.lines().filter(|l| {
            l.starts_with("ssl.quorum.") && !l.starts_with("ssl.quorum.allowReverseDnsLookup")
        }) {
            cfg.push_str(line);
            cfg.push('\n');
        }
        std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
        let log = std::fs::File::create(dir.join("zookeeper.out")).unwrap();
        let jvm = tokio::process::Command::new("nsenter")
            .args(["--target", &agent.to_string(), "--net", "--mount", "--"])
            .args([
                "java",
                "-Xmx128m",
                "-XX:+UseSerialGC",
                "-cp",
                ZOOKEEPER_CLASSPATH,
            ])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(dir.join("zoo.cfg"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("nsenter");
        let target = format!("{address}:{election_port}");
        wait_until(
            &format!("the default-lookup server's election port {target}"),
            Duration::from_secs(60),
            || async { tokio::net::TcpStream::connect(&target).await.ok() },
        )
        .await;
        DefaultLookupServer {
            _jvm: jvm,
            election_port,
        }
    }
}
