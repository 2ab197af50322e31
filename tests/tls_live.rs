//! TLS switched on in a running plaintext ensemble while a client writes,
//! then the secure-only ensemble scaled out and a member replaced, on the
//! namespace fleet (each member connects from its own address, so the
//! quorum's certificate checks are real). The client is kazoo, following the
//! connect-string file as a user's client would: plaintext first, TLS once
//! the file names the secure port.

use std::path::Path;
use std::time::Duration;

use zkop_spec::wire::{StatusReply, StatusRole};
use zkop_spec::zk::MemberRole;
use zkop_tests::common::netns::{Hub, hub_and_runtime};
use zkop_tests::common::tls::{
    Writer, assert_writes_kept_over_tls, client_cert, kazoo_tls, plaintext_gets_nothing,
    plaintext_reply,
};
use zkop_tests::common::{self, LocalCluster, example_spec, settled, wait_until};

/// Writes `/w-N` every 50 ms until `stop` exists, connecting with what the
/// connect-string file says (over TLS once it names `secure` ports, with the
/// certificate in `d`) and reconnecting whenever it changes; prints the N of
/// every acknowledged write, and keeps their count in `d/acked`.
const FOLLOWING_WRITER: &str = r#"
import os, sys, time
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry
cs, d, stop, secure = sys.argv[1:5]
def read():
    try:
        return open(cs).read().strip()
    except OSError:
        return ''
def connect():
    while True:
        hosts = read()
        tls = hosts.split(',')[0].endswith(':' + secure)
        if not hosts or (tls and not os.path.exists(d + '/key.pem')):
            time.sleep(0.2); continue
        kw = dict(use_ssl=True, verify_certs=True, ca=d + '/ca.pem',
                  certfile=d + '/cert.pem', keyfile=d + '/key.pem') if tls else {}
        zk = KazooClient(hosts=hosts, timeout=10,
                         connection_retry=KazooRetry(max_tries=-1, max_delay=1), **kw)
        try:
            zk.start(timeout=15)
            return zk, hosts
        except Exception:
            zk.stop(); zk.close(); time.sleep(0.5)
zk, hosts = connect()
acked, n, over_tls = [], 0, 0
while not os.path.exists(stop):
    n += 1
    try:
        zk.create('/w-%d' % n, b'x')
        acked.append(n)
        over_tls += hosts.split(',')[0].endswith(':' + secure)
        if len(acked) % 10 == 0:
            with open(d + '/acked.tmp', 'w') as f: f.write(str(len(acked)))
            os.rename(d + '/acked.tmp', d + '/acked')
    except Exception:
        time.sleep(0.2)
    if read() not in ('', hosts):
        zk.stop(); zk.close()
        zk, hosts = connect()
    time.sleep(0.05)
zk.stop()
print(' '.join(map(str, acked)))
print(over_tls)
"#;

/// How many writes the writer has had acknowledged so far.
fn acked_so_far(d: &Path) -> usize {
    std::fs::read_to_string(d.join("acked"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// One look at the voters, as the controller's status shows them.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: u64,
    serving: usize,
    voters: usize,
}

fn sample(s: &StatusReply) -> Sample {
    let voters: Vec<_> = s
        .members
        .iter()
        .filter(|m| m.config_role == Some(MemberRole::Participant))
        .collect();
    Sample {
        at_ms: common::now_ms(),
        serving: voters
            .iter()
            .filter(|m| matches!(m.role, StatusRole::Leader | StatusRole::Follower))
            .count(),
        voters: voters.len(),
    }
}

#[test]
fn tls_turns_on_in_a_running_ensemble_with_no_write_lost_then_it_scales_and_replaces() {
    let _serial = common::SERIAL.blocking_lock();
    let (hub, rt) = hub_and_runtime(212);
    rt.block_on(switch_on(&hub));
}

async fn switch_on(hub: &Hub) {
    let spec = example_spec(3);
    let mut c = LocalCluster::start_in(&spec, hub).await;
    c.wait_status("3 plaintext voters", Duration::from_secs(120), |s| {
        settled(s, 3, 0) && s.tls.is_none()
    })
    .await;
    let d = c.dir.path().join("writer");
    std::fs::create_dir_all(&d).unwrap();
    let stop = c.dir.path().join("stop-writing");
    let cs = c.state_dir().join("connect-string");
    let mut writer = Writer(Some(
        std::process::Command::new("python3")
            .args(["-c", FOLLOWING_WRITER])
            .args([&cs, &d, &stop])
            .arg("2281")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    wait_until(
        "the first plaintext writes",
        Duration::from_secs(60),
        || async { (acked_so_far(&d) >= 20).then_some(()) },
    )
    .await;

    let samples = switch(&c, &d).await;
    no_certificate_for_another_instance_over_http(&c).await;
    let writes_before_scaling = acked_so_far(&d);
    assert_majority_but_elections(&samples);

    let after = scale_out_and_replace(&c).await;
    wait_until(
        "writes after the replacement",
        Duration::from_secs(60),
        || async { (acked_so_far(&d) >= writes_before_scaling + 20).then_some(()) },
    )
    .await;

    std::fs::write(&stop, "").unwrap();
    let (acked, over_tls) = writer_result(&mut writer);
    assert_writes_kept_over_tls(&c, &after.connect_string, &acked);
    eprintln!(
        "tls_live: {} writes acknowledged ({over_tls} over TLS) through the switch, a scale-out and a replacement, none lost; {} samples",
        acked.len(),
        samples.len()
    );
    c.stop().await;
}

/// Certificate minting over HTTP (issue 24, findings 5 and 10): TLS was
/// switched on live, so the API is still plain HTTP and no connection shows
/// a node certificate. Every agent got its own certificate (the switch
/// above needed them), but a holder of the token, or another member's
/// agent, gets none for an instance that is not its own.
async fn no_certificate_for_another_instance_over_http(c: &LocalCluster) {
    assert!(c.url().starts_with("http://"), "{}", c.url());
    let s = c.status().await.unwrap();
    let (a, b) = (
        s.members[0].instance.to_string(),
        s.members[1].instance.to_string(),
    );
    let csr = zkop_runtime::pki::key_and_request("x").unwrap().csr_pem;
    for key in [None, Some(c.agent_key(&a))] {
        let mut req = c
            .http()
            .post(format!("{}/v1/agents/{b}/certificate", c.url()))
            .bearer_auth(c.token())
            .json(&serde_json::json!({ "csr": csr }));
        if let Some(key) = &key {
            req = req.header("x-zkop-agent-key", key);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 403, "{key:?}: {body}");
        assert!(body.contains(&b), "{body}");
        assert!(!body.contains("BEGIN CERTIFICATE"), "{body}");
    }
}

#[test]
fn tls_beside_the_plaintext_port_turns_on_and_off_again_keeping_the_data() {
    let _serial = common::SERIAL.blocking_lock();
    let (hub, rt) = hub_and_runtime(213);
    rt.block_on(on_and_off(&hub));
}

/// kazoo in plaintext: runs `ops` with `zk` connected to `hosts`.
fn kazoo_plain(hosts: &str, ops: &str) -> String {
    let script = format!(
        "import sys\nfrom kazoo.client import KazooClient\nzk = KazooClient(hosts=sys.argv[1], timeout=15)\nzk.start(timeout=30)\n{ops}\nzk.stop()\n"
    );
    common::python(&script, &[hosts])
}

async fn on_and_off(hub: &Hub) {
    let mut c = LocalCluster::start_in(&example_spec(3), hub).await;
    let s = c
        .wait_status("3 plaintext voters", Duration::from_secs(120), |s| {
            settled(s, 3, 0)
        })
        .await;
    kazoo_plain(&s.connect_string, "zk.create('/before', b'plain')");
    c.edit_spec(
        "spec:\n",
        "spec:\n  tls:\n    enabled: true\n    plaintextClientPort: true\n",
    );
    let (beside, mut samples) = sampling(&c, "TLS beside the plaintext port", |s| {
        s.tls.is_some_and(|t| t.as_ref() == "securePortBeside") && settled(s, 3, 0)
    })
    .await;
    // Both ports serve: TLS with a certificate, plaintext as before.
    let d = client_cert(&c, "app");
    let read = kazoo_tls(
        &beside.connect_string,
        &d,
        "zk.create('/beside', b'tls')\nprint(zk.get('/before')[0].decode())",
    );
    assert_eq!(read, "plain");
    let plain: Vec<_> = beside
        .members
        .iter()
        .map(|m| format!("{}:2181", m.address))
        .collect();
    assert_eq!(
        kazoo_plain(&plain.join(","), "print(zk.get('/beside')[0].decode())"),
        "tls"
    );

    // Off again: the same stages back, each a roll.
    c.edit_spec("    enabled: true\n", "    enabled: false\n");
    let (off, more) = sampling(&c, "TLS off", |s| s.tls.is_none() && settled(s, 3, 0)).await;
    samples.extend(more);
    assert!(
        off.connect_string.split(',').all(|h| h.ends_with(":2181")),
        "{}",
        off.connect_string
    );
    let read = kazoo_plain(
        &off.connect_string,
        "print(zk.get('/before')[0].decode(), zk.get('/beside')[0].decode())",
    );
    assert_eq!(read, "plain tls");
    // No server runs a TLS key any more.
    for m in &off.members {
        let cfg = c.instance_dir(&m.instance).join("conf/zoo.cfg");
        let cfg = std::fs::read_to_string(&cfg).unwrap();
        assert!(
            !cfg.contains("ssl") && !cfg.contains("secureClientPort"),
            "{cfg}"
        );
    }
    // Four rolls each way, one election each.
    let gaps = gaps_without_majority(&samples);
    assert!(gaps.len() <= 8, "{gaps:?}");
    c.stop().await;
}

/// Switches TLS on by editing the spec, and samples the voters every 200 ms
/// until every stage is done; checks the result as a user would.
async fn switch(c: &LocalCluster, d: &Path) -> Vec<Sample> {
    // Switched on by editing the spec: ZooKeeper's stages, each a roll.
    c.edit_spec(
        "spec:\n",
        "spec:\n  tls:\n    enabled: true\n    certificateLifetime: 1d\n",
    );
    wait_until("a client certificate", Duration::from_secs(30), || async {
        let out = c.zkop(&["client-cert", "writer", "--out", &d.display().to_string()]);
        out.status.success().then_some(())
    })
    .await;
    let (done, samples) = sampling(c, "TLS on, secure only", |s| {
        s.tls.is_some_and(|t| t.as_ref() == "secureOnly") && settled(s, 3, 0)
    })
    .await;
    let stages: Vec<_> = done
        .events
        .iter()
        .filter(|e| e.message.starts_with("TLS: "))
        .map(|e| e.message.clone())
        .collect();
    eprintln!("tls_live: {stages:#?}");
    assert!(
        done.connect_string.split(',').all(|h| h.ends_with(":2281")),
        "{}",
        done.connect_string
    );
    // As if created with TLS: no plaintext client port, no plaintext answer
    // on the secure one, plaintext peers closed unanswered (the leader
    // listens on both quorum ports).
    plaintext_gets_nothing(&common::leader(&done).address);
    for m in &done.members {
        assert_eq!(
            plaintext_reply(&m.address, 2181, "73727672"),
            "connection refused"
        );
    }
    samples
}

/// The secure-only ensemble scales out to five voters and replaces a follower.
async fn scale_out_and_replace(c: &LocalCluster) -> StatusReply {
    c.set_replicas(3, 5);
    let (five, mut samples) = sampling(c, "5 voters over TLS", |s| settled(s, 5, 0)).await;
    let old = common::follower(&five);
    let out = c.zkop(&["replace", &old.instance.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (after, more) = sampling(c, "the follower replaced", |s| {
        settled(s, 5, 0) && !s.members.iter().any(|m| m.instance == old.instance)
    })
    .await;
    samples.extend(more);
    // No leader restarts here: a majority serves at every sample.
    let gaps = gaps_without_majority(&samples);
    assert!(gaps.is_empty(), "no majority: {gaps:?}");
    after
}

/// Stops the writer: the writes acknowledged, and how many of them over TLS.
fn writer_result(writer: &mut Writer) -> (Vec<u64>, usize) {
    let out = writer.0.take().unwrap().wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = out.lines();
    let acked: Vec<u64> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let over_tls: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        over_tls >= 20,
        "{over_tls} of {} writes over TLS",
        acked.len()
    );
    (acked, over_tls)
}

/// Waits (up to 600 s) for `done`, sampling the voters every 200 ms.
async fn sampling(
    c: &LocalCluster,
    what: &str,
    done: impl Fn(&StatusReply) -> bool,
) -> (StatusReply, Vec<Sample>) {
    let mut samples = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "not {what} within 600 s: {}",
            c.log_tail()
        );
        if let Some(s) = c.status().await {
            samples.push(sample(&s));
            if done(&s) {
                return (s, samples);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A majority of voters served at every sample but in elections: a roll
/// restarts the leader last, once per stage, and its followers elect
/// another; each such gap is short.
fn assert_majority_but_elections(samples: &[Sample]) {
    assert!(samples.len() > 50, "{} samples", samples.len());
    let gaps = gaps_without_majority(samples);
    // Five rolls (four stages and the last restart), one election each.
    assert!(
        gaps.len() <= 5,
        "{} gaps without a majority: {gaps:?}",
        gaps.len()
    );
    eprintln!(
        "tls_live: {} elections without a serving majority: {gaps:?}",
        gaps.len()
    );
    for (from, to) in &gaps {
        assert!(to - from <= 10_000, "no majority for {} ms", to - from);
    }
}

/// Runs of samples (from, to ms) in which no majority of voters served.
fn gaps_without_majority(samples: &[Sample]) -> Vec<(u64, u64)> {
    let mut gaps: Vec<(u64, u64)> = Vec::new();
    for s in samples.iter().filter(|s| s.serving * 2 <= s.voters) {
        match gaps.last_mut() {
            Some((_, end)) if s.at_ms - *end < 1000 => *end = s.at_ms,
            _ => gaps.push((s.at_ms, s.at_ms)),
        }
    }
    gaps
}
