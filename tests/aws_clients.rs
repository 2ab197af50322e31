//! Where clients connect, published on AWS (the sandbox on moto): the SSM
//! parameter and the Route53 records follow a scale-out, a scale-in and a
//! replacement, and a member's record is removed before its instance is
//! terminated.

use std::collections::BTreeMap;
use std::time::Duration;

use zkop_spec::wire::StatusReply;
use zkop_tests::common::aws::AwsCluster;
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
