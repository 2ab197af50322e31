//! TLS on a fleet of namespaced instances (`zkop local up --netns`), where
//! each member connects from its own address, so the quorum's check of a
//! peer's certificate against the address it connects from is real (on
//! shared loopback everyone connects from 127.0.0.1). Clients are kazoo and
//! Python's `ssl`, independent of zkop's own TLS code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_tests::common::netns::{Hub, hub_and_runtime};
use zkop_tests::common::tls::{
    Writer, assert_writes_kept_over_tls, client_cert, kazoo_tls, plaintext_gets_nothing,
};
use zkop_tests::common::{
    self, LocalCluster, example_spec, leader, python, reverse_dns, settled, wait_until,
};

/// Connects to `host:port` over TLS with `cert`/`key`, trusting `ca`, and
/// says what the server did once it had judged the certificate: `accepted`
/// (the handshake held: the server waits for the peer's first message), or
/// `refused: ...` (a TLS alert, a reset, or the connection closed at once,
/// as ZooKeeper 3.9 does).
fn tls_peer(host: &str, port: u16, ca: &Path, cert: &Path, key: &Path) -> String {
    let script = r#"
import socket, ssl, sys
host, port, ca, cert, key = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(ca)
ctx.load_cert_chain(cert, key)
s = socket.create_connection((host, int(port)), timeout=5)
try:
    t = ctx.wrap_socket(s, server_hostname=host)
    # With TLS 1.3 the server judges the client's certificate after the
    # client finished: a read tells.
    # Below the server's own read timeout (syncLimit ticks, 2.5 s in the
    # example spec), after which it closes an accepted connection too.
    t.settimeout(1.5)
    got = t.recv(1)
    # A server that judged the certificate bad and closed without an alert.
    print('accepted' if got else 'refused: closed')
except socket.timeout:
    print('accepted')
except (ssl.SSLError, OSError) as e:
    print('refused: ' + str(e))
"#;
    let p = |p: &Path| p.display().to_string();
    python(
        script,
        &[host, &port.to_string(), &p(ca), &p(cert), &p(key)],
    )
}

/// A certificate from the cluster's CA for `address`, as a node's would be:
/// what a peer connecting from the hub would need.
fn peer_cert(c: &LocalCluster, address: &str) -> PathBuf {
    let tls = c.state_dir().join("tls");
    let read = |f: &str| std::fs::read_to_string(tls.join(f)).unwrap();
    let ca = zkop_runtime::pki::ClusterCa::from_pem(&read("ca.pem"), &read("ca-key.pem")).unwrap();
    let req = zkop_runtime::pki::key_and_request("peer").unwrap();
    let cert = ca
        .sign_node(
            &req.csr_pem,
            "hub",
            &[address.parse().unwrap()],
            Duration::from_secs(3600),
        )
        .unwrap();
    let dir = c.dir.path().join("peer");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), req.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), read("ca.pem")).unwrap();
    dir
}

fn tls_spec() -> String {
    format!("{}  tls:\n    enabled: true\n", example_spec(3))
}

#[test]
fn with_tls_only_the_clusters_certificates_reach_clients_and_peers_and_acls_see_x509_names() {
    // One hub at a time: a hub's names carry the test process's id.
    let _serial = common::SERIAL.blocking_lock();
    let (hub, rt) = hub_and_runtime(210);
    // Each instance's hosts file maps the hub's address to the rogue name.
    let namespaces: Vec<String> = (1..=3)
        .map(|n| format!("{}-i-{n:04}", hub.prefix))
        .collect();
    let _hosts = reverse_dns::HostsFiles::write(&namespaces, &hub.address);
    rt.block_on(tls_checks(&hub));
}

async fn tls_checks(hub: &Hub) {
    let c = LocalCluster::start_in(&tls_spec(), hub).await;
    let s: StatusReply = c
        .wait_status("3 voters over TLS", Duration::from_secs(120), |s| {
            settled(s, 3, 0)
        })
        .await;
    assert!(
        s.members.iter().all(|m| m.client_port == 2281),
        "the connect string names the secure port: {s:?}"
    );
    let hosts = s.connect_string.clone();
    let alice = client_cert(&c, "alice");
    let bob = client_cert(&c, "bob");

    // kazoo with a certificate from `zkop client-cert` writes and reads, and
    // an ACL on its x509 identity keeps another certificate out.
    let out = kazoo_tls(
        &hosts,
        &alice,
        "zk.create('/tls', b'over tls')\nprint(zk.get('/tls')[0].decode())\n\
         zk.create('/alices', b'mine', acl=[ACL(Permissions.ALL, Id('x509', 'CN=alice'))])\n\
         print(zk.get('/alices')[0].decode())",
    );
    assert_eq!(out, "over tls\nmine");
    let out = kazoo_tls(
        &hosts,
        &bob,
        "print(zk.get('/tls')[0].decode())\n\
         try:\n    zk.get('/alices')\n    print('bob read it')\nexcept NoAuthError:\n    print('NoAuth')",
    );
    assert_eq!(out, "over tls\nNoAuth");

    let m = leader(&s);
    plaintext_gets_nothing(&m.address);

    // On the election port, the CA's certificate for the address a peer
    // connects from is accepted, and a client's certificate (no address) is
    // refused, whose key is of the same CA: a client cannot join the quorum.
    let peer = peer_cert(&c, &hub.address);
    let check = |dir: &Path| {
        tls_peer(
            &m.address,
            3888,
            &dir.join("ca.pem"),
            &dir.join("cert.pem"),
            &dir.join("key.pem"),
        )
    };
    assert_eq!(check(&peer), "accepted");
    let by_client = check(&alice);
    assert!(by_client.starts_with("refused"), "{by_client}");
    eprintln!("tls: a client certificate on the election port: {by_client}");

    no_reverse_dns(&c, &m).await;

    // A server without quorum TLS, at the hub's address and listing the
    // members as its peers, never joins: it stays out of the election.
    let config_version = s.config_version;
    let plain = PlainPeer::start(&hub.address, &s, c.dir.path()).await;
    plain.never_serves(Duration::from_secs(10)).await;
    let now = c.status().await.unwrap();
    assert_eq!(now.config_version, config_version, "{now:?}");
    assert!(settled(&now, 3, 0), "{now:?}");

    agents_speak_only_for_themselves(&c, &s).await;

    // The node keys never left their nodes: the state holds the CA's only.
    let keys: Vec<_> = walk(&c.state_dir())
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("BEGIN PRIVATE KEY")))
        .collect();
    for k in &keys {
        let owner = k.strip_prefix(c.state_dir()).unwrap();
        assert!(
            owner == Path::new("tls/ca-key.pem")
                || (owner.starts_with("instances") && owner.ends_with("tls/node.pem")),
            "a private key at {}",
            k.display()
        );
    }
    c.wait_status("3 voters still", Duration::from_secs(10), |s| {
        settled(s, 3, 0)
    })
    .await;
    canary_over_tls(&c).await;
}

/// The canary (on in the example) writes and reads through every member
/// over TLS, with the client certificate the controller makes for it.
async fn canary_over_tls(c: &LocalCluster) {
    let s = c
        .wait_status("two good canary rounds", Duration::from_secs(60), |s| {
            s.canary.as_ref().is_some_and(|k| {
                k.rounds >= 2
                    && k.last_good_round_ms.is_some()
                    && k.members.len() == 3
                    && k.members.iter().all(|m| m.counter.is_some())
            })
        })
        .await;
    let canary = s.canary.expect("the canary");
    assert!(canary.violations.values().all(|n| *n == 0), "{canary:?}");
    assert_eq!(canary.write_error, None, "{canary:?}");
}

/// CVE-2026-24281: the CA's certificate naming only a host name that the
/// hub's address resolves back to (in the member's hosts file) is refused:
/// zkop turns ZooKeeper's reverse DNS fallback off. A plain ZooKeeper 3.9.5
/// in the same namespaces with the member's quorum TLS but ZooKeeper's
/// default for the fallback (on, for the quorum; every release before 3.8.6
/// and 3.9.5 has no way to turn it off) accepts it.
async fn no_reverse_dns(c: &LocalCluster, m: &zkop_spec::wire::MemberStatus) {
    let named = reverse_dns::named_cert(c);
    let election = |port: u16| {
        tls_peer(
            &m.address,
            port,
            &named.join("ca.pem"),
            &named.join("cert.pem"),
            &named.join("key.pem"),
        )
    };
    let by_name = election(3888);
    assert!(by_name.starts_with("refused"), "{by_name}");
    let lookup =
        reverse_dns::DefaultLookupServer::start(c, &m.instance.to_string(), &m.address).await;
    assert_eq!(
        election(lookup.election_port),
        "accepted",
        "ZooKeeper's default lookup accepts the name the address resolves to"
    );
    eprintln!(
        "tls: a certificate naming only {}: {by_name}",
        reverse_dns::NAME
    );
}

/// With TLS on, the API is HTTPS with the cluster CA, and an agent speaks
/// for its own instance only (issue 24, finding 5, on HTTPS): another
/// agent's key is refused; the right key with another node's certificate
/// is refused; asking for another's certificate from an address that is
/// not the instance's is refused even with its key.
async fn agents_speak_only_for_themselves(c: &LocalCluster, s: &StatusReply) {
    assert!(c.url().starts_with("https://"), "{}", c.url());
    let (a, b) = (&s.members[0], &s.members[1]);
    let (a_id, b_id) = (a.instance.to_string(), b.instance.to_string());
    let node = c.instance_dir(&a_id).join("tls/node.pem");
    let as_a = common::https_client(&c.state_dir().join("tls/ca.pem"), Some(&node));
    let call = |req: reqwest::RequestBuilder, key: String| async move {
        let resp = req
            .bearer_auth(c.token())
            .header("x-zkop-agent-key", key)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let report_of_b = serde_json::json!({"instance": b_id, "address": b.address,
        "epochSeen": 0, "revisionSeen": 0, "process": {"running": false, "starts": 0}});
    let url = |path: String| format!("{}{path}", c.url());
    let reports_b = || {
        as_a.post(url(format!("/v1/agents/{b_id}/report")))
            .json(&report_of_b)
    };
    // a's certificate and a's key, for b.
    let (status, body) = call(reports_b(), c.agent_key(&a_id)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another key"), "{body}");
    // b's key (stolen) with a's certificate: the certificate speaks for a.
    let (status, body) = call(reports_b(), c.agent_key(&b_id)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("speaks only for its own instance"), "{body}");
    let (status, body) = call(
        as_a.get(url(format!("/v1/agents/{b_id}/desired"))),
        c.agent_key(&a_id),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Its own are answered.
    let (status, body) = call(
        as_a.get(url(format!("/v1/agents/{a_id}/desired?after=1"))),
        c.agent_key(&a_id),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // No certificate, from the hub (not b's address), even with b's key.
    let anonymous = common::https_client(&c.state_dir().join("tls/ca.pem"), None);
    let csr = zkop_runtime::pki::key_and_request("x").unwrap().csr_pem;
    let (status, body) = call(
        anonymous
            .post(url(format!("/v1/agents/{b_id}/certificate")))
            .json(&serde_json::json!({ "csr": csr })),
        c.agent_key(&b_id),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("from its own address"), "{body}");
}

/// A plaintext client gets nothing: no plaintext port, no answer in
/// plaintext on the secure one; a plaintext peer is closed without a reply.
/// A ZooKeeper server in plaintext (no quorum TLS) as server 9, listing
/// the members of `s` as its peers.
struct PlainPeer {
    _jvm: tokio::process::Child,
    endpoint: String,
}

impl PlainPeer {
    async fn start(address: &str, s: &StatusReply, dir: &Path) -> PlainPeer {
        let dir = dir.join("plain-peer");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/myid"), "9\n").unwrap();
        let mut cfg = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nstandaloneEnabled=false\n\
             reconfigEnabled=true\nadmin.enableServer=false\n4lw.commands.whitelist=srvr\n\
             server.9={address}:2888:3888:participant;{address}:2181\n",
            dir.join("data").display()
        );
        for m in &s.members {
            cfg.push_str(&format!(
                "server.{}={}:2888:3888:participant\n",
                m.id, m.address
            ));
        }
        std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
        let log = std::fs::File::create(dir.join("zookeeper.out")).unwrap();
        let jvm = zkop_zk::jvm::JvmCommand {
            java: "java".into(),
            classpath: common::ZOOKEEPER_CLASSPATH.into(),
            heap_mb: 128,
            jvm_flags: vec!["-XX:+UseSerialGC".into()],
            super_digest: zkop_zk::super_digest("plain"),
        }
        .command(&dir.join("zoo.cfg"), &dir, log)
        .unwrap()
        .spawn()
        .unwrap();
        let endpoint = format!("{address}:2181");
        // It answers `srvr` (not serving) once it runs: from then on it is
        // looking for peers.
        wait_until(
            "the plaintext server to answer srvr",
            Duration::from_secs(60),
            || async { zkop_zk::probe::probe(&endpoint).await.ok() },
        )
        .await;
        PlainPeer {
            _jvm: jvm,
            endpoint,
        }
    }

    /// Checks `srvr` every half second for `period`: never serving.
    async fn never_serves(&self, period: Duration) {
        let until = tokio::time::Instant::now() + period;
        while tokio::time::Instant::now() < until {
            let p = zkop_zk::probe::probe(&self.endpoint).await;
            assert!(
                p.as_ref().is_ok_and(|p| !p.serving),
                "the plaintext server: {p:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Writes `/w-N` over TLS every 50 ms until `stop` exists, retrying through
/// restarts; prints the N of every acknowledged write.
const WRITER: &str = r#"
import os, sys, time
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry
hosts, d, stop = sys.argv[1:4]
zk = KazooClient(hosts=hosts, use_ssl=True, verify_certs=True, ca=d + '/ca.pem',
                 certfile=d + '/cert.pem', keyfile=d + '/key.pem', timeout=10,
                 connection_retry=KazooRetry(max_tries=-1, max_delay=1))
zk.start(timeout=30)
acked, n = [], 0
while not os.path.exists(stop):
    n += 1
    try:
        zk.create('/w-%d' % n, b'x')
        acked.append(n)
    except Exception:
        time.sleep(0.2)
    time.sleep(0.05)
zk.stop()
print(' '.join(map(str, acked)))
"#;

#[test]
fn a_certificate_near_expiry_is_renewed_and_rolled_out_with_no_write_lost() {
    let _serial = common::SERIAL.blocking_lock();
    let (hub, rt) = hub_and_runtime(211);
    rt.block_on(renewal(&hub));
}

async fn renewal(hub: &Hub) {
    let spec = tls_spec().replace(
        "enabled: true\n",
        "enabled: true\n    certificateLifetime: 90s\n",
    );
    let c = LocalCluster::start_in(&spec, hub).await;
    let s = c
        .wait_status("3 voters over TLS", Duration::from_secs(120), |s| {
            settled(s, 3, 0)
                && s.members
                    .iter()
                    .all(|m| m.certificate_not_after_ms.is_some())
        })
        .await;
    let first_expiry = s
        .members
        .iter()
        .filter_map(|m| m.certificate_not_after_ms)
        .max()
        .unwrap();
    let writer_cert = client_cert(&c, "writer");
    let stop = c.dir.path().join("stop-writing");
    let mut writer = Writer(Some(
        std::process::Command::new("python3")
            .args(["-c", WRITER, &s.connect_string])
            .arg(&writer_cert)
            .arg(&stop)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // Renewed at a third of the lifetime left (30 s before expiry), then
    // every member restarted once, one at a time, so that the client port
    // shows the new certificate too.
    let renewed = c
        .wait_status(
            "every member to serve a renewed certificate",
            Duration::from_secs(120),
            |s| {
                settled(s, 3, 0)
                    && s.members
                        .iter()
                        .all(|m| m.certificate_not_after_ms.is_some_and(|t| t > first_expiry))
            },
        )
        .await;
    let events: Vec<_> = renewed.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(events.contains(&"certificate_issued"), "{events:?}");
    std::fs::write(&stop, "").unwrap();
    let out = writer.0.take().unwrap().wait_with_output().unwrap();
    let acked: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        acked.len() > 100,
        "the writer was acknowledged {} writes",
        acked.len()
    );
    // Past the first certificates' expiry, a new client reads every
    // acknowledged write: the servers show their renewed certificates.
    let wait = first_expiry.saturating_sub(common::now_ms()) + 1000;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_writes_kept_over_tls(&c, &renewed.connect_string, &acked);
    eprintln!(
        "tls: {} writes acknowledged through the renewal and its roll, none lost",
        acked.len()
    );
}

#[test]
fn the_tls_bench_times_writes_over_tls_next_to_plaintext() {
    let _serial = common::SERIAL.blocking_lock();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let args = [
        "bench",
        "--tls",
        "--tls-writes",
        "200",
        "--json",
        "--network",
        "127.0.82.0/24",
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let rows: Vec<serde_json::Value> = rt.block_on(common::zkop_json(&args));
    let transports: Vec<_> = rows
        .iter()
        .map(|r| r["transport"].as_str().unwrap())
        .collect();
    assert_eq!(transports, ["plaintext", "tls"]);
    for r in &rows {
        assert_eq!(r["writes"], 200, "{r}");
        let (p50, p99) = (r["p50Ms"].as_f64().unwrap(), r["p99Ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p99 >= p50, "{r}");
    }
}
