//! What clients see on AWS (the sandbox on moto): the SSM parameter and the
//! Route53 records follow a scale-out, a scale-in and a replacement, and a
//! member's record is removed before its instance is terminated; with TLS
//! on, the cluster CA is kept in SSM and clients and agents speak TLS.

use std::collections::BTreeMap;
use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_tests::common::aws::{AwsCluster, SECRETS};
use zkop_tests::common::tls::kazoo_tls;
use zkop_tests::common::{self, SERIAL, settled, wait_until};

/// The cluster's name in the zone.
const NAME: &str = "zk.internal";
/// The SSM parameter.
const PARAMETER: &str = "/zkop/aws-3/connect-string";

/// Creates the zone and adds `spec.clients` to the running spec; the zone's id.
async fn publish_to(c: &AwsCluster) -> String {
    let zone = aws_sdk_route53::Client::new(&c.config)
        .create_hosted_zone()
        .name("internal")
        .caller_reference("zkop-aws-clients")
        .send()
        .await
        .unwrap();
    let id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let flags = "    jvmFlags: [\"-XX:+UseSerialGC\", \"-XX:TieredStopAtLevel=1\"]";
    c.edit_spec(
        flags,
        &format!(
            "{flags}\n  clients:\n    ssmParameter: {PARAMETER}\n    route53:\n      hostedZoneId: {id}\n      name: {NAME}\n"
        ),
    );
    id
}

/// The zone's A records: name (no trailing dot) -> sorted addresses.
async fn records(c: &AwsCluster, zone: &str) -> BTreeMap<String, Vec<String>> {
    let out = aws_sdk_route53::Client::new(&c.config)
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .filter(|r| r.r#type() == &aws_sdk_route53::types::RrType::A)
        .map(|r| {
            let mut v: Vec<String> = r
                .resource_records()
                .iter()
                .map(|v| v.value().to_string())
                .collect();
            v.sort();
            (r.name().trim_end_matches('.').to_string(), v)
        })
        .collect()
}

/// What the records and the parameter must say for `s`.
fn expected(s: &StatusReply) -> BTreeMap<String, Vec<String>> {
    let mut all: Vec<String> = s.members.iter().map(|m| m.address.clone()).collect();
    all.sort();
    let mut want: BTreeMap<String, Vec<String>> = s
        .members
        .iter()
        .map(|m| (format!("{}.{NAME}", m.id), vec![m.address.clone()]))
        .collect();
    want.insert(NAME.to_string(), all);
    want
}

/// Waits until the parameter and the records name exactly the serving members.
async fn published_matches(c: &AwsCluster, zone: &str, s: &StatusReply) {
    let ssm = aws_sdk_ssm::Client::new(&c.config);
    let want = expected(s);
    wait_until(
        "the SSM parameter and the Route53 records to name the members",
        Duration::from_secs(30),
        || async {
            let param = ssm.get_parameter().name(PARAMETER).send().await.ok()?;
            let value = param.parameter()?.value()?.to_string();
            (value == s.connect_string && records(c, zone).await == want).then_some(())
        },
    )
    .await;
}

/// `instance`'s record (member `id`) left the zone before the instance was
/// terminated, by the controller's events.
fn record_removed_before_terminated(s: &StatusReply, instance: &str, id: u64) {
    let terminated = s
        .events
        .iter()
        .position(|e| e.kind == "terminate_instance" && e.message.contains(instance))
        .unwrap_or_else(|| panic!("no termination of {instance}: {:#?}", s.events));
    let removed = format!("route53 {id}.{NAME} removed");
    assert!(
        s.events[..terminated]
            .iter()
            .any(|e| e.kind == "published" && e.message.contains(&removed)),
        "{instance} terminated before `{removed}`: {:#?}",
        s.events
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parameter_and_records_follow_scaling_and_a_replacement_and_leave_before_termination() {
    let _serial = SERIAL.lock().await;
    let (c, s) = AwsCluster::start_settled(3, "127.0.81.0/24").await;
    let zone = publish_to(&c).await;
    published_matches(&c, &zone, &s).await;
    let log = || c.log_tail();
    let limit = Duration::from_secs(120);

    let (s5, s3) = c
        .scale_three_five_three(limit, async |s5| {
            published_matches(&c, &zone, s5).await;
        })
        .await;
    published_matches(&c, &zone, &s3).await;
    for m in s5
        .members
        .iter()
        .filter(|m| !s3.members.iter().any(|k| k.id == m.id))
    {
        record_removed_before_terminated(&s3, &m.instance.to_string(), m.id.0);
    }

    let old = common::follower(&s3);
    let resp = c
        .http()
        .post(format!("{}/v1/replace/{}", c.urls[0], old.instance))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let replaced = c
        .api()
        .wait_status(
            "the follower replaced",
            limit,
            |s| {
                settled(s, 3, 0)
                    && !s.members.iter().any(|m| m.instance == old.instance)
                    && s.events.iter().any(|e| {
                        e.kind == "terminate_instance" && e.message.contains(&*old.instance)
                    })
            },
            log,
        )
        .await;
    published_matches(&c, &zone, &replaced).await;
    record_removed_before_terminated(&replaced, &old.instance.to_string(), old.id.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_on_aws_the_ca_lives_in_ssm_and_clients_and_agents_speak_tls() {
    let _serial = SERIAL.lock().await;
    let c = AwsCluster::start_tls(3, "127.0.84.0/24").await;
    assert!(c.urls[0].starts_with("https://"), "{}", c.urls[0]);
    let s = c
        .api()
        .wait_status(
            "3 voters over TLS",
            Duration::from_secs(180),
            |s| {
                settled(s, 3, 0)
                    && s.tls.is_some_and(|t| t.as_ref() == "secureOnly")
                    && s.members
                        .iter()
                        .all(|m| m.certificate_not_after_ms.is_some())
            },
            || c.log_tail(),
        )
        .await;
    ca_kept_in_ssm(&c, &s).await;

    // A client certificate from the CLI; kazoo reads and writes over TLS.
    let d = c.dir.path().join("alice");
    let out = std::process::Command::new(common::zkop_bin())
        .args(["client-cert", "alice", "--out"])
        .arg(&d)
        .arg("--state-dir")
        .arg(c.state_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        s.connect_string.split(',').all(|h| h.ends_with(":2281")),
        "{}",
        s.connect_string
    );
    let read = kazoo_tls(
        &s.connect_string,
        &d,
        "zk.create('/tls-on-aws', b'yes')\nprint(zk.get('/tls-on-aws')[0].decode())",
    );
    assert_eq!(read, "yes");
}

/// The CA's key is a SecureString beside the secrets, its certificate a
/// String every agent verified the controller with; controllers racing to
/// make a CA agree on the first one written.
async fn ca_kept_in_ssm(c: &AwsCluster, s: &StatusReply) {
    // The agents verified the controller with the certificate it published
    // beside the secrets, and got their node certificates over HTTPS.
    let ssm = aws_sdk_ssm::Client::new(&c.config);
    let parameter = async |name: String| {
        let out = ssm
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await;
        let p = out.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let p = p.parameter().unwrap();
        (p.r#type().unwrap().clone(), p.value().unwrap().to_string())
    };
    use aws_sdk_ssm::types::ParameterType;
    let (kind, key) = parameter(zkop_runtime::pki_ssm::key_parameter(SECRETS)).await;
    assert_eq!(kind, ParameterType::SecureString);
    assert!(key.contains("PRIVATE KEY"), "the CA key is kept there");
    let (kind, cert) = parameter(zkop_runtime::pki_ssm::certificate_parameter(SECRETS)).await;
    assert_eq!(kind, ParameterType::String);
    let served = std::fs::read_to_string(c.state_dir().join("tls/ca.pem")).unwrap();
    assert_eq!(cert, served);
    assert!(!cert.contains("PRIVATE KEY"));
    for m in &s.members {
        let pem = c
            .state_dir()
            .join("sandbox/instances")
            .join(&*m.instance)
            .join("controller-ca.pem");
        assert_eq!(
            std::fs::read_to_string(&pem).ok().as_deref(),
            Some(cert.as_str()),
            "{}",
            pem.display()
        );
    }

    // Controllers racing to make the CA agree on the first one written.
    let race = "/zkop/race/secrets";
    let (a, b) = tokio::join!(
        zkop_runtime::pki_ssm::ensure_ssm_ca(&ssm, race, "race"),
        zkop_runtime::pki_ssm::ensure_ssm_ca(&ssm, race, "race")
    );
    assert_eq!(a.unwrap().cert_pem(), b.unwrap().cert_pem());
}
