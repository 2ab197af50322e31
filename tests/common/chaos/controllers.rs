//! The AWS sandbox's part of the fault suite: two controllers on one Auto
//! Scaling group (moto), each reaching DynamoDB through a proxy the test
//! cuts. Faults, seeded: the leading or the standing-by controller SIGKILLed
//! and restarted (the agents outlive it), the leading controller cut from
//! DynamoDB (its lease) for a while, and a `zkop run DIR` over the same spec
//! started beside them, while a client writes. After each: one
//! controller leads, the same three voters serve, nothing was terminated,
//! fenced or forced; at the end every acknowledged write reads back.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use zkop_spec::wire::StatusReply;

use super::super::aws::{AwsCluster, leadership_gauges};
use super::super::{LocalCluster, events_of, members, settled, write_until};

/// One controller fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerFault {
    /// SIGKILL the leading controller, restart it after the hold.
    KillLeader,
    /// SIGKILL the controller standing by, restart it after the hold.
    KillStandby,
    /// Cut the leading controller from DynamoDB (its lease) for the hold.
    CutLease,
    /// Start `zkop run DIR` over the same spec beside the two `zkop run
    /// FILE` controllers for the hold (a group of one file and a file meet
    /// at one lease), sampling every 200 ms that no two lead; then SIGKILL it.
    GroupBeside,
}

/// What the run did, for its figure line.
#[derive(Debug, Default)]
pub struct ControllerFigures {
    /// Faults, in order.
    pub faults: Vec<ControllerFault>,
    /// Writes acknowledged.
    pub acked: usize,
    /// The slowest return to one leader with the spec.
    pub slowest: Duration,
}

/// Runs `n` seeded controller faults (each kind once first) in the sandbox on
/// `network`.
pub async fn run_controller_faults(n: usize, seed: u64, network: &str) -> ControllerFigures {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut c, first) = AwsCluster::start_with_dynamodb_proxy(3, network, 2)
        .await
        .settled(3)
        .await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let writer = tokio::spawn(write_until(LocalCluster::endpoints(&first), stop_rx));
    let kinds = [
        ControllerFault::KillLeader,
        ControllerFault::CutLease,
        ControllerFault::KillStandby,
        ControllerFault::GroupBeside,
    ];
    let mut fig = ControllerFigures::default();
    for i in 0..n {
        let fault = kinds
            .get(i)
            .copied()
            .unwrap_or(kinds[rng.random_range(0..kinds.len())]);
        // A lease cut may outlast the lease (15 s): then the other takes over.
        let most = if fault == ControllerFault::CutLease {
            30
        } else {
            20
        };
        let hold = Duration::from_secs(rng.random_range(2..=most));
        let started = super::super::now_ms();
        let leader = leading(&c).await;
        inject(&mut c, fault, leader, hold).await;
        let healed = Instant::now();
        let s = one_leader_with_the_spec(&c).await;
        let took = healed.elapsed();
        fig.slowest = fig.slowest.max(took);
        fig.faults.push(fault);
        assert_eq!(
            members(&s),
            members(&first),
            "seed {seed}: {fault:?} changed the members"
        );
        let drastic = [
            "terminate_instance",
            "fence_instance",
            "force_config",
            "discard_ensemble",
        ];
        let taken = events_of(&s, &drastic, started);
        assert!(
            taken.is_empty(),
            "seed {seed}: {fault:?}: {taken:#?}; every event since it began: {:#?}",
            s.events
                .iter()
                .filter(|e| e.at_ms >= started)
                .map(|e| format!("{} {}: {}", e.at_ms, e.kind, e.message))
                .collect::<Vec<_>>()
        );
        eprintln!(
            "chaos: controller fault {} {fault:?} (held {hold:?}, controller {leader} led): controller {} leads with the spec {:.1} s after it healed",
            i + 1,
            leading(&c).await,
            took.as_secs_f64()
        );
    }
    stop_tx.send(true).expect("writer");
    let acked = writer.await.expect("writer");
    fig.acked = acked.len();
    let last = one_leader_with_the_spec(&c).await;
    super::super::assert_writes_kept(&last, &acked).await;
    fig
}

/// Injects `fault`, holds it for `hold`, heals it; `leader` leads now.
async fn inject(c: &mut AwsCluster, fault: ControllerFault, leader: usize, hold: Duration) {
    match fault {
        ControllerFault::KillLeader | ControllerFault::KillStandby => {
            let which = if fault == ControllerFault::KillLeader {
                leader
            } else {
                1 - leader
            };
            c.kill_controller(which);
            tokio::time::sleep(hold).await;
            c.respawn_controller(which);
        }
        ControllerFault::CutLease => {
            let proxy = c.dynamodb_proxy(leader);
            proxy.set_cut(true);
            tokio::time::sleep(hold).await;
            proxy.set_cut(false);
        }
        ControllerFault::GroupBeside => group_beside(c, hold).await,
    }
}

/// `zkop run DIR` beside the file controllers for `hold`: at every sample
/// (every 200 ms) at most one controller leads aws-3, and none is fenced.
async fn group_beside(c: &mut AwsCluster, hold: Duration) {
    let name = format!("group-{}", super::super::now_ms());
    let (url, pid) = c.spawn_group(&name, "127.0.0.6", &[]);
    let until = Instant::now() + hold;
    let mut samples = 0;
    while Instant::now() < until {
        let mut leading = Vec::new();
        for u in c.urls.iter().chain([&url]) {
            if let Some((leader, fenced)) = leadership_gauges(c.http(), u, &c.token).await {
                assert!(!fenced, "{u} was fenced with a group beside the files");
                if leader {
                    leading.push(u.clone());
                }
            }
        }
        assert!(
            leading.len() <= 1,
            "two controllers led aws-3 at once: {leading:?}"
        );
        samples += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: kill(2) on the controller this fault started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    eprintln!("chaos: a group beside the files for {hold:?}: {samples} samples, never two leaders");
}

/// Which controller answers `GET /v1/status` with 200, waiting for one.
async fn leading(c: &AwsCluster) -> usize {
    super::super::wait_until("a leading controller", Duration::from_secs(90), || async {
        for i in 0..2 {
            if answer(c, i).await == Some(200) {
                return Some(i);
            }
        }
        None
    })
    .await
}

/// Controller `i`'s HTTP status for `GET /v1/status`, `None` when it does not answer.
async fn answer(c: &AwsCluster, i: usize) -> Option<u16> {
    c.status_of(i).await.map(|(code, _)| code)
}

/// Waits until exactly one controller leads and its status shows the three
/// voters serving.
async fn one_leader_with_the_spec(c: &AwsCluster) -> StatusReply {
    let limit = Duration::from_secs(120);
    super::super::wait_until("one leader with three serving voters", limit, || async {
        let mut leaders = Vec::new();
        for i in 0..2 {
            if answer(c, i).await == Some(200) {
                leaders.push(i);
            }
        }
        let [i] = leaders[..] else { return None };
        let s = c.api_of(i).status().await?;
        settled(&s, 3, 0).then_some(s)
    })
    .await
}
