//! The AWS adapters through the real AWS SDK for Rust against a moto server on
//! loopback: id leases as log streams, conditional state writes, the leader
//! lease, and the Auto Scaling group as the fleet.

use zkop_tests::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::moto::{Moto, create_group, create_table};
use zkop::adapters::aws::{AsgFleet, DynamoLease, DynamoStore, LogStreamLedger};
use zkop::adapters::{Fleet, IdLedger, Lease, StateStore, StoreError, TakenIds};
use zkop::clock::{Clock, SystemClock};
use zkop::controller::{Leadership, LeaseKeeper, Standing};
use zkop::model::{InstanceState, Persisted};
use zkop_spec::InstanceId;
use zkop_spec::zk::ServerId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_id_claims_never_hand_one_id_to_two_instances() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let group = "/zkop/test/ids";
    LogStreamLedger::open(&config, group).await.unwrap();
    let mut claims = Vec::new();
    for i in 0..20 {
        let config = config.clone();
        claims.push(tokio::spawn(async move {
            let ledger = LogStreamLedger::open(&config, group).await.unwrap();
            let instance = format!("i-{i:017}");
            let claim = ledger
                .claim(&InstanceId::from(instance.as_str()), &TakenIds::new())
                .await
                .unwrap();
            assert!(!claim.resumed, "{claim:?}");
            (claim.id, instance)
        }));
    }
    let mut got = Vec::new();
    for c in claims {
        got.push(c.await.unwrap());
    }
    let ids: BTreeSet<u64> = got.iter().map(|(id, _)| id.0).collect();
    assert_eq!(ids.len(), 20, "an id was handed out twice: {got:?}");
    let ledger = LogStreamLedger::open(&config, group).await.unwrap();
    assert_eq!(ledger.held().await.unwrap().len(), 20);
    for (id, instance) in &got {
        assert_eq!(
            ledger.holder(*id).await.unwrap().as_deref(),
            Some(instance.as_str())
        );
    }
    // A released id's stream is gone, and the id is issued again.
    let (first, _) = got[0];
    ledger.release(first).await.unwrap();
    assert!(!ledger.held().await.unwrap().contains(&first));
    let recorded: TakenIds = got[1..].iter().map(|(id, _)| (*id, None)).collect();
    assert_eq!(
        ledger
            .claim(&InstanceId::from("i-new"), &recorded)
            .await
            .unwrap()
            .id,
        first
    );
    ledger.release(first).await.unwrap();
    ledger.release(first).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_the_state_never_recorded_goes_back_to_its_instance_only() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let ledger = LogStreamLedger::open(&config, "/zkop/test/ids")
        .await
        .unwrap();
    let none = TakenIds::new();
    // A controller claimed 1 for i-a and stopped before saving it.
    let a = ledger.claim(&InstanceId::from("i-a"), &none).await.unwrap();
    assert_eq!(a.id.0, 1);
    // Its successor's claim for i-a finds that stream again; i-b's does not.
    let again = ledger.claim(&InstanceId::from("i-a"), &none).await.unwrap();
    assert_eq!((again.id, again.resumed), (a.id, true));
    let b = ledger.claim(&InstanceId::from("i-b"), &none).await.unwrap();
    assert_eq!((b.id.0, b.resumed), (2, false));
    assert_eq!(ledger.held().await.unwrap().len(), 2);
    // A recorded id is never handed out again, even to its own instance.
    let recorded = TakenIds::from([(a.id, None), (b.id, None)]);
    let c = ledger
        .claim(&InstanceId::from("i-a"), &recorded)
        .await
        .unwrap();
    assert_eq!((c.id.0, c.resumed), (3, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uniqueness_at_claim_a_lost_entry_is_recreated_and_its_id_never_handed_out() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let ledger = LogStreamLedger::open(&config, "/zkop/test/ids")
        .await
        .unwrap();
    let mut taken = TakenIds::new();
    for i in ["i-a", "i-b", "i-c"] {
        let instance = InstanceId::from(i);
        let claim = ledger.claim(&instance, &taken).await.unwrap();
        taken.insert(claim.id, Some(instance));
    }
    // Member 2's stream is deleted by hand (or lost).
    ledger.release(ServerId(2)).await.unwrap();
    // A new instance gets a fresh id; 2 goes back to its holder, i-b.
    let d = ledger
        .claim(&InstanceId::from("i-d"), &taken)
        .await
        .unwrap();
    assert_eq!((d.id, d.resumed), (ServerId(4), false));
    assert_eq!(d.restored, vec![ServerId(2)]);
    assert_eq!(
        ledger.holder(ServerId(2)).await.unwrap().as_deref(),
        Some("i-b")
    );
    // An id the config lists without a record is never handed out either.
    let taken = TakenIds::from([(ServerId(5), None)]);
    let e = ledger
        .claim(&InstanceId::from("i-e"), &taken)
        .await
        .unwrap();
    assert_eq!(e.id, ServerId(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_an_id_stream_that_never_named_its_holder_is_released() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let ledger = LogStreamLedger::open(&config, "/zkop/test/ids")
        .await
        .unwrap()
        .with_orphan_after(Duration::ZERO);
    // A claim created stream 1, then crashed before PutLogEvents.
    let a = ledger
        .claim(&InstanceId::from("i-a"), &TakenIds::new())
        .await
        .unwrap();
    ledger.release(a.id).await.unwrap();
    zkop::adapters::aws::calls::logs(&config)
        .create_log_stream()
        .log_group_name("/zkop/test/ids")
        .log_stream_name("1")
        .send()
        .await
        .unwrap();
    assert_eq!(ledger.holder(ServerId(1)).await.unwrap(), None);
    let b = ledger
        .claim(&InstanceId::from("i-b"), &TakenIds::new())
        .await
        .unwrap();
    assert_eq!((b.id, b.resumed), (ServerId(1), false));
    assert_eq!(
        ledger.holder(ServerId(1)).await.unwrap().as_deref(),
        Some("i-b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_writes_are_conditional_on_the_version_and_fenced_by_the_epoch() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_table(&config, "zkop-test").await;
    let store = DynamoStore::new(&config, "zkop-test", "c1");
    assert_eq!(store.load().await.unwrap(), None);
    let state = Persisted {
        cluster: "c1".into(),
        epoch: 2,
        ..Persisted::default()
    };
    assert_eq!(store.save(&state).await.unwrap(), 1);
    let loaded = store.load().await.unwrap().unwrap();
    assert_eq!(loaded.store_version, 1);
    assert_eq!(loaded.epoch, 2);
    // A write based on the old version fails and changes nothing.
    assert!(matches!(
        store.save(&state).await,
        Err(StoreError::Conflict {
            expected: 0,
            found: 1
        })
    ));
    // A controller of an older epoch cannot write either.
    let stale = Persisted {
        epoch: 1,
        ..loaded.clone()
    };
    assert!(matches!(
        store.save(&stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.load().await.unwrap(), Some(loaded.clone()));
    // The current holder can.
    assert_eq!(store.save(&loaded).await.unwrap(), 2);
    // Another cluster's state is its own.
    assert_eq!(
        DynamoStore::new(&config, "zkop-test", "c2")
            .load()
            .await
            .unwrap(),
        None
    );
}

/// The machine's clocks, with the wall clock `skew_ms` off.
#[derive(Debug)]
struct Skewed(i64);

impl Clock for Skewed {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        SystemClock.wall_ms().saturating_add_signed(self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_loss_takeover_on_dynamodb_waits_a_whole_lease_whatever_the_wall_clocks_say() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    create_table(&config, "zkop-test").await;
    let ttl = Duration::from_secs(3);
    let lease = |holder: &str, url: &str| {
        Arc::new(DynamoLease::new(
            &config,
            "zkop-test",
            "c1",
            holder,
            url,
            ttl,
        ))
    };
    let (a_lease, b_lease) = (
        lease("controller-a", "http://127.0.0.1:1"),
        lease("controller-b", "http://127.0.0.1:2"),
    );
    let mut a = LeaseKeeper::new(a_lease.clone(), Arc::new(SystemClock));
    // B's wall clock runs an hour ahead: A's stored expiry looks long past.
    let mut b = LeaseKeeper::new(b_lease, Arc::new(Skewed(3_600_000)));
    assert!(matches!(
        a.check().await.unwrap(),
        Standing::Leader { epoch: 1, .. }
    ));
    let first_read = std::time::Instant::now();
    assert_eq!(
        b.check().await.unwrap(),
        Standing::Follower {
            leader_url: Some("http://127.0.0.1:1".into())
        },
        "B took a lease A had just written"
    );
    // A write from a stale read fails: the record changed since.
    let record = a_lease.read().await.unwrap().unwrap();
    assert!(a_lease.write(Some(&record), 1, 1).await.unwrap());
    assert!(!a_lease.write(Some(&record), 1, 2).await.unwrap());
    // A stops renewing. B takes over only after seeing one record for a
    // whole time to live, on its own clock, with the next epoch.
    let taken = loop {
        if let Standing::Leader { epoch, .. } = b.check().await.unwrap() {
            break epoch;
        }
        assert!(first_read.elapsed() < ttl * 3, "B never took over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        first_read.elapsed() >= ttl,
        "B took over after {:?}",
        first_read.elapsed()
    );
    assert_eq!(taken, 2);
    assert_eq!(
        a.check().await.unwrap(),
        Standing::Follower {
            leader_url: Some("http://127.0.0.1:2".into())
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auto_scaling_group_is_observed_scaled_and_terminated_through() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let group = create_group(&config, "zk-test", 3).await;
    let fleet = AsgFleet::new(&config, &group);
    let view = fleet.observe().await.unwrap();
    assert_eq!(view.desired_capacity, 3);
    assert_eq!(view.instances.len(), 3);
    assert!(
        view.instances
            .iter()
            .all(|i| i.state == InstanceState::Running && i.zone.is_some()),
        "{view:?}"
    );

    fleet.set_desired_capacity(5).await.unwrap();
    let view = fleet.observe().await.unwrap();
    assert_eq!(view.desired_capacity, 5);
    assert_eq!(
        view.instances
            .iter()
            .filter(|i| i.state != InstanceState::Terminated)
            .count(),
        5
    );

    let victim = view.instances[0].id.clone();
    fleet.terminate(&victim).await.unwrap();
    let view = fleet.observe().await.unwrap();
    assert_eq!(view.desired_capacity, 4);
    assert!(
        view.instances
            .iter()
            .all(|i| i.id != victim || i.state == InstanceState::Terminated),
        "{view:?}"
    );
    assert_eq!(
        view.instances
            .iter()
            .filter(|i| i.state != InstanceState::Terminated)
            .count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_a_detached_instance_is_gone_only_when_ec2_says_terminated() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let group = create_group(&config, "zk-detach", 3).await;
    let fleet = AsgFleet::new(&config, &group);
    let view = fleet.observe().await.unwrap();
    let detached = view.instances[0].id.clone();
    let asg = aws_sdk_autoscaling::Client::new(&config);
    asg.detach_instances()
        .auto_scaling_group_name(&group)
        .instance_ids(detached.as_str())
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .unwrap();
    let listed = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&group)
        .send()
        .await
        .unwrap();
    assert!(
        listed.auto_scaling_groups()[0]
            .instances()
            .iter()
            .all(|i| i.instance_id() != Some(detached.as_str())),
        "moto still lists the detached instance: the test proves nothing"
    );
    // Still running in EC2: its member and its id stay.
    let view = fleet.observe().await.unwrap();
    let seen = view.instances.iter().find(|i| i.id == detached);
    assert_eq!(
        seen.map(|i| i.state),
        Some(InstanceState::Running),
        "{view:?}"
    );
    // EC2 says terminated: now it is gone.
    aws_sdk_ec2::Client::new(&config)
        .terminate_instances()
        .instance_ids(detached.as_str())
        .send()
        .await
        .unwrap();
    let view = fleet.observe().await.unwrap();
    assert!(view.instances.iter().all(|i| i.id != detached), "{view:?}");
    assert_eq!(view.instances.len(), 2, "{view:?}");
}

/// Recorded Auto Scaling answers (query protocol, XML) for an instance held in
/// `Terminating:Wait` by a termination hook: moto never holds one, and answers
/// `CompleteLifecycleAction` with a 500.
fn recorded_answer(action: &str) -> &'static str {
    match action {
        "DescribeAutoScalingGroups" => {
            r#"<DescribeAutoScalingGroupsResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeAutoScalingGroupsResult><AutoScalingGroups><member>
    <AutoScalingGroupName>zk</AutoScalingGroupName>
    <MinSize>0</MinSize><MaxSize>5</MaxSize><DesiredCapacity>2</DesiredCapacity>
    <DefaultCooldown>300</DefaultCooldown><HealthCheckType>EC2</HealthCheckType>
    <CreatedTime>2026-11-25T00:00:00Z</CreatedTime>
    <AvailabilityZones><member>us-east-1a</member></AvailabilityZones>
    <Instances>
      <member><InstanceId>i-0aaa</InstanceId><AvailabilityZone>us-east-1a</AvailabilityZone><LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus><ProtectedFromScaleIn>true</ProtectedFromScaleIn></member>
      <member><InstanceId>i-0bbb</InstanceId><AvailabilityZone>us-east-1b</AvailabilityZone><LifecycleState>Terminating:Wait</LifecycleState><HealthStatus>Healthy</HealthStatus><ProtectedFromScaleIn>true</ProtectedFromScaleIn></member>
      <member><InstanceId>i-0ccc</InstanceId><AvailabilityZone>us-east-1c</AvailabilityZone><LifecycleState>Terminating:Proceed</LifecycleState><HealthStatus>Healthy</HealthStatus><ProtectedFromScaleIn>true</ProtectedFromScaleIn></member>
      <member><InstanceId>i-0ddd</InstanceId><AvailabilityZone>us-east-1c</AvailabilityZone><LifecycleState>Terminating</LifecycleState><HealthStatus>Unhealthy</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>
      <member><InstanceId>i-0eee</InstanceId><AvailabilityZone>us-east-1a</AvailabilityZone><LifecycleState>Terminated</LifecycleState><HealthStatus>Unhealthy</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>
    </Instances>
  </member></AutoScalingGroups></DescribeAutoScalingGroupsResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</DescribeAutoScalingGroupsResponse>"#
        }
        "DescribeLifecycleHooks" => {
            r#"<DescribeLifecycleHooksResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeLifecycleHooksResult><LifecycleHooks>
    <member><LifecycleHookName>zkop-launch</LifecycleHookName><AutoScalingGroupName>zk</AutoScalingGroupName><LifecycleTransition>autoscaling:EC2_INSTANCE_LAUNCHING</LifecycleTransition><HeartbeatTimeout>600</HeartbeatTimeout><DefaultResult>ABANDON</DefaultResult></member>
    <member><LifecycleHookName>zkop-leave</LifecycleHookName><AutoScalingGroupName>zk</AutoScalingGroupName><LifecycleTransition>autoscaling:EC2_INSTANCE_TERMINATING</LifecycleTransition><HeartbeatTimeout>600</HeartbeatTimeout><DefaultResult>CONTINUE</DefaultResult></member>
  </LifecycleHooks></DescribeLifecycleHooksResult>
  <ResponseMetadata><RequestId>2</RequestId></ResponseMetadata>
</DescribeLifecycleHooksResponse>"#
        }
        "CompleteLifecycleAction" => {
            r#"<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <CompleteLifecycleActionResult/>
  <ResponseMetadata><RequestId>3</RequestId></ResponseMetadata>
</CompleteLifecycleActionResponse>"#
        }
        _ => "",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_an_instance_held_by_a_termination_hook_is_seen_and_let_go_and_gone_only_when_terminated()
 {
    use std::sync::{Arc, Mutex};
    let requests: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = requests.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let seen = seen.clone();
        async move {
            let action = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .unwrap_or_default()
                .to_string();
            seen.lock().unwrap().push(body);
            ([("content-type", "text/xml")], recorded_answer(&action))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "t", "t", None, None, "static",
        ))
        .load()
        .await;
    let fleet = AsgFleet::new(&config, "zk");
    let view = fleet.observe().await.unwrap();
    let states: Vec<(&str, InstanceState)> = view
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("i-0aaa", InstanceState::Running),
            ("i-0bbb", InstanceState::Terminating),
            // Past its hook EC2 may still run it: not gone until terminated.
            ("i-0ccc", InstanceState::ShuttingDown),
            ("i-0ddd", InstanceState::ShuttingDown),
            ("i-0eee", InstanceState::Terminated),
        ]
    );

    fleet
        .complete_termination(&InstanceId::from("i-0bbb"))
        .await
        .unwrap();
    let requests = requests.lock().unwrap();
    let completes: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("Action=CompleteLifecycleAction"))
        .collect();
    assert_eq!(
        completes.len(),
        1,
        "only the termination hook is completed: {requests:?}"
    );
    for part in [
        "AutoScalingGroupName=zk",
        "LifecycleHookName=zkop-leave",
        "InstanceId=i-0bbb",
        "LifecycleActionResult=CONTINUE",
    ] {
        assert!(
            completes[0].contains(part),
            "{part} missing from {}",
            completes[0]
        );
    }
}
