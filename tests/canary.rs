//! The consistency canary (`spec.canary`) on live ensembles: on a healthy
//! one it counts good rounds, exports its metrics, shows in `zkop status`,
//! finds nothing, and only zkop may write its counter; a member cut off is
//! reported unreachable, and a member cut off from the quorum but not from
//! the canary, in ZooKeeper's read-only mode, is reported for its stale
//! reads (the violation `ZookeeperCanaryViolation` alerts on).

use std::time::Duration;

use zkop_spec::canary::{COUNTER_PATH, CanaryRead, CanaryStatus};
use zkop_spec::wire::StatusReply;
use zkop_tests::common::netns::{Hub, hub_and_runtime};
use zkop_tests::common::{LocalCluster, example_spec, follower, wait_until, zk_client};

/// The example spec with a canary every second.
fn spec(extra_jvm_flags: &str) -> String {
    let s = example_spec(3).replace("every: 10s", "every: 1s");
    assert!(s.contains("every: 1s"), "the example has no canary: {s}");
    s.replace(
        "\"-XX:TieredStopAtLevel=1\"]",
        &format!("\"-XX:TieredStopAtLevel=1\"{extra_jvm_flags}]"),
    )
}

fn canary(s: &StatusReply) -> Option<&CanaryStatus> {
    s.canary.as_ref()
}

fn read_of(c: &CanaryStatus, id: u64) -> Option<&CanaryRead> {
    c.members.iter().find(|r| r.id.0 == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_on_a_healthy_ensemble_finds_nothing_shows_its_metrics_and_only_zkop_writes_it()
{
    let _serial = zkop_tests::common::SERIAL.lock().await;
    let (c, _) = LocalCluster::start_settled(&spec(""), "127.0.137.0/24", 3).await;
    let s = c
        .wait_status("five good canary rounds", Duration::from_secs(60), |s| {
            canary(s).is_some_and(|k| {
                k.counter >= 5
                    && k.last_good_round_ms.is_some()
                    && k.members.len() == 3
                    && k.members.iter().all(|r| r.read_seconds.is_some())
            })
        })
        .await;
    let k = canary(&s).expect("canary");
    assert_eq!(k.violations_total(), 0, "{k:#?}");
    assert_eq!(k.write_error, None, "{k:#?}");
    // One canary session a member: the writer's member is read through the
    // writer's session (it was two sessions there). Each count leaves out
    // its own `mntr` connection; an agent's probe may add one for a moment.
    let endpoints = LocalCluster::endpoints(&s);
    wait_until(
        "one canary session per member",
        Duration::from_secs(20),
        || async {
            let mut sessions = 0;
            for e in endpoints.split(',') {
                let mntr = zkop_zk::probe::four_letter_word(e, "mntr").await.ok()?;
                let alive: u64 = zkop_spec::fourlw::parse_mntr(&mntr)
                    .ok()?
                    .get("zk_num_alive_connections")?
                    .trim()
                    .parse()
                    .ok()?;
                sessions += alive.saturating_sub(1);
            }
            (sessions == 3).then_some(())
        },
    )
    .await;

    let metrics = c.metrics().await;
    let cluster = &s.cluster;
    for line in [
        format!("zkop_canary_violations_total{{cluster=\"{cluster}\",kind=\"stale-read\"}} 0"),
        format!("zkop_canary_violations_total{{cluster=\"{cluster}\",kind=\"cas-old-version\"}} 0"),
        format!("zkop_canary_member_up{{cluster=\"{cluster}\",member=\"1\"}} 1"),
        format!("zkop_canary_read_seconds{{cluster=\"{cluster}\",member=\"2\"}} "),
        format!("zkop_canary_write_seconds_bucket{{cluster=\"{cluster}\",le=\"+Inf\"}} "),
        format!("zkop_canary_last_good_round_timestamp_seconds{{cluster=\"{cluster}\"}} "),
    ] {
        assert!(metrics.contains(&line), "no `{line}` in\n{metrics}");
    }

    let table = String::from_utf8_lossy(&c.zkop(&["status"]).stdout).into_owned();
    assert!(
        table.contains("canary: every 1s,") && table.contains("violations: none"),
        "{table}"
    );

    // Anyone reads the counter; only zkop writes it.
    let client = zk_client(&LocalCluster::endpoints(&s)).await;
    let (data, stat) = client
        .get_data(COUNTER_PATH)
        .await
        .expect("read the counter");
    assert_eq!(String::from_utf8_lossy(&data), stat.version.to_string());
    let refused = client.set_data(COUNTER_PATH, b"999", None).await;
    assert!(
        matches!(refused, Err(zookeeper_client::Error::NoAuth)),
        "{refused:?}"
    );
}

#[test]
fn the_canary_reports_a_member_cut_off_and_stale_reads_from_a_read_only_server() {
    let (hub, rt) = hub_and_runtime(214);
    rt.block_on(cut_then_read_only(&hub));
}

async fn cut_then_read_only(hub: &Hub) {
    let _serial = zkop_tests::common::SERIAL.lock().await;
    // Read-only mode needs local sessions (ZooKeeper's admin guide).
    let spec = spec(", \"-Dreadonlymode.enabled=true\"").replace(
        "maxClientCnxns: \"100\"",
        "maxClientCnxns: \"100\"\n      localSessionsEnabled: \"true\"",
    );
    let c = LocalCluster::start_in(&spec, hub).await;
    let s = c
        .wait_status(
            "three voters and canary rounds",
            Duration::from_secs(120),
            |s| zkop_tests::common::settled(s, 3, 0) && canary(s).is_some_and(|k| k.counter >= 3),
        )
        .await;
    let cut = follower(&s);
    let id = cut.id.0;
    let instance = cut.instance.to_string();
    cut_off_entirely(&c, hub, id, &instance).await;
    cut_from_the_quorum(&c, &s, id, &instance).await;
}

/// Cut off entirely: the canary cannot read through it.
async fn cut_off_entirely(c: &LocalCluster, hub: &Hub, id: u64, instance: &str) {
    hub.cut(instance);
    let s = c
        .wait_status(
            "the cut member reported unreachable",
            Duration::from_secs(60),
            |s| {
                canary(s).and_then(|k| read_of(k, id)).is_some_and(|r| {
                    r.error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("unreachable"))
                })
            },
        )
        .await;
    eprintln!("canary, member {id} cut off: {:#?}", canary(&s));
    let metrics = c.metrics().await;
    let down = format!(
        "zkop_canary_member_up{{cluster=\"{}\",member=\"{id}\"}} 0",
        s.cluster
    );
    assert!(metrics.contains(&down), "no `{down}` in\n{metrics}");
    hub.heal(instance);
    c.wait_status("the member read again", Duration::from_secs(90), |s| {
        canary(s)
            .and_then(|k| read_of(k, id))
            .is_some_and(|r| r.error.is_none() && !r.read_only)
    })
    .await;
}

/// Cut off from the other servers only: in read-only mode it still answers
/// the canary, with what it had when it was cut off.
async fn cut_from_the_quorum(c: &LocalCluster, s: &StatusReply, id: u64, instance: &str) {
    let others: Vec<String> = s
        .members
        .iter()
        .filter(|m| m.id.0 != id)
        .map(|m| m.address.clone())
        .collect();
    let agent = c.agent_pid(instance).expect("the cut member's agent");
    for address in &others {
        in_netns_of(
            agent,
            &["route", "add", "blackhole", &format!("{address}/32")],
        );
    }
    let s = c
        .wait_status(
            "a stale read from the read-only member",
            Duration::from_secs(90),
            |s| canary(s).is_some_and(|k| k.violations.get("stale-read").is_some_and(|n| *n > 0)),
        )
        .await;
    let k = canary(&s).expect("canary");
    eprintln!("canary, member {id} read-only: {k:#?}");
    assert!(
        k.last_violation
            .as_deref()
            .is_some_and(|v| v.contains(&format!("member {id} answered as a read-only server"))),
        "{k:#?}"
    );
    // The others keep the quorum: the canary still writes.
    assert_eq!(k.write_error, None, "{k:#?}");
    let metrics = c.metrics().await;
    assert!(
        metrics.lines().any(|l| l.starts_with(&format!(
            "zkop_canary_violations_total{{cluster=\"{}\",kind=\"stale-read\"}} ",
            s.cluster
        )) && !l.ends_with(" 0")),
        "{metrics}"
    );
    let table = String::from_utf8_lossy(&c.zkop(&["status"]).stdout).into_owned();
    assert!(
        table.contains("canary: last violation: stale-read"),
        "{table}"
    );
}

/// `ip ARGS` in the network namespace of process `pid` (an instance's).
fn in_netns_of(pid: u32, args: &[&str]) {
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "--", "/usr/sbin/ip"])
        .args(args)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "ip {args:?} in the namespace of {pid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
