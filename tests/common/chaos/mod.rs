//! Seeded fault injection on a fleet of namespaced instances (`zkop local up
//! --netns`): members killed, paused and partitioned, the spec edited, one
//! fault at a time and never a majority at once, while a client writes. After
//! each fault heals the cluster must come back to its spec with no member
//! fenced and none replaced but the one the fault took; at the end every
//! acknowledged write must read back and no epoch may have had two leaders.
//! The same seed gives the same faults, targets and hold times.

mod checks;
mod controllers;
mod harsh;
mod minority;
mod stalls;
mod watchers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use zkop_spec::wire::StatusReply;

use super::history::{self, History};
use super::netns::Hub;
use super::{LocalCluster, example_spec, now_ms};
use checks::{back_to_spec, check_after, steps_since};
pub use controllers::{ControllerFault, ControllerFigures, run_controller_faults};
pub use minority::{MinoritySide, run_minority_side};
pub use watchers::{Acked, Leaders, shared_epochs};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL a member's ZooKeeper server (its agent restarts it).
    KillServer,
    /// SIGKILL a member's agent and server: the instance is lost and replaced.
    KillInstance,
    /// SIGSTOP a member's server for the hold time.
    PauseServer,
    /// SIGSTOP a member's agent for the hold time.
    PauseAgent,
    /// Cut one follower off the network.
    CutFollower,
    /// Cut the leader off the network.
    CutLeader,
    /// Move a minority to the far side of a partition (they reach each other).
    SplitMinority,
    /// Edit `replicas` by two (3 to 5, or back: `scale-out`, `scale-in`).
    Scale,
    /// Edit a ZooKeeper setting that rolls every member.
    Roll,
    /// Lose the quorum while stalled voters were seen ahead of the survivor
    /// (issue 24): `recover` must wait for them, forcing nothing.
    StalledAhead,
    /// Roll every member with restarts slower than `memberDeadAfter`
    /// (issue 24): none may be taken for dead and replaced.
    SlowRoll,
    /// Change ZooKeeper's release (`spec.zookeeper.version`) between the two
    /// installed ones, down or back up (issue 25): a rolling restart onto
    /// another release, every member on it afterwards.
    Upgrade,
    /// Two of five voters hit at once, each by its own seeded fault (issue
    /// 26); with three voters the run scales out to five first.
    TwoAtOnce,
    /// Every server, every agent and the controller SIGKILLed at the same
    /// moment, all started again after the hold (issue 26): what ZooKeeper
    /// fsynced is all that is left.
    PowerLoss,
    /// One member's data directory full (a tmpfs with 16 KiB to spare),
    /// then moved back to the real disk (issue 26).
    DiskFull,
}

/// The two installed releases the `upgrade` fault moves between; the run
/// starts on the first (the default).
const RELEASES: [&str; 2] = ["3.9.5", "3.8.6"];

/// The fleet's spec: three voters on the default release, the 3.8 line's
/// known issue accepted (the `upgrade` fault goes there), a short canary.
fn chaos_spec() -> String {
    super::on_release(&example_spec(3), RELEASES[0]) + "  upgrade:\n    canaryFor: 5s\n"
}

/// Every kind, in a fixed order.
pub const FAULTS: [Fault; 15] = [
    Fault::KillServer,
    Fault::KillInstance,
    Fault::PauseServer,
    Fault::PauseAgent,
    Fault::CutFollower,
    Fault::CutLeader,
    Fault::SplitMinority,
    Fault::Scale,
    Fault::Roll,
    Fault::StalledAhead,
    Fault::SlowRoll,
    Fault::Upgrade,
    Fault::TwoAtOnce,
    Fault::PowerLoss,
    Fault::DiskFull,
];

impl Fault {
    /// The name in the figure line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillServer => "kill-server",
            Fault::KillInstance => "kill-instance",
            Fault::PauseServer => "pause-server",
            Fault::PauseAgent => "pause-agent",
            Fault::CutFollower => "cut-follower",
            Fault::CutLeader => "cut-leader",
            Fault::SplitMinority => "split-minority",
            Fault::Scale => "scale",
            Fault::Roll => "roll",
            Fault::StalledAhead => "stalled-voter-ahead",
            Fault::SlowRoll => "slow-roll",
            Fault::Upgrade => "upgrade",
            Fault::TwoAtOnce => "two-at-once",
            Fault::PowerLoss => "power-loss",
            Fault::DiskFull => "disk-full",
        }
    }
}

/// The faults of a run: every kind once in a seeded order, `Scale` twice (out
/// and back in), as far as `n` allows; then seeded picks.
/// `CHAOS_ONLY` (kind names, comma-separated) keeps only those kinds, to
/// reproduce one.
pub fn plan_faults(rng: &mut StdRng, n: usize) -> Vec<Fault> {
    let only = std::env::var("CHAOS_ONLY").unwrap_or_default();
    let kinds: Vec<Fault> = FAULTS
        .into_iter()
        .filter(|f| only.is_empty() || only.split(',').any(|k| k.trim() == f.name()))
        .collect();
    assert!(!kinds.is_empty(), "CHAOS_ONLY={only}: no such fault kind");
    let mut plan = kinds.clone();
    if kinds.contains(&Fault::Scale) {
        plan.push(Fault::Scale);
    }
    plan.shuffle(rng);
    plan.truncate(n);
    while plan.len() < n {
        plan.push(*kinds.choose(rng).expect("kinds"));
    }
    plan
}

/// A run's size and seed.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Faults to inject.
    pub faults: usize,
    /// The seed of faults, targets and hold times.
    pub seed: u64,
    /// Hold times are picked between these (seconds), below `memberDeadAfter`.
    pub hold_secs: (u64, u64),
}

impl ChaosOptions {
    /// `CHAOS_FAULTS`, `CHAOS_SEED` and `CHAOS_HOLD_MAX` over the defaults.
    pub fn from_env(faults: usize, seed: u64) -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        Self {
            faults: var("CHAOS_FAULTS").map_or(faults, |n| n as usize),
            seed: var("CHAOS_SEED").unwrap_or(seed),
            hold_secs: (4, var("CHAOS_HOLD_MAX").unwrap_or(8)),
        }
    }
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Figures {
    /// The seed.
    pub seed: u64,
    /// Faults injected, by kind.
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Writes ZooKeeper acknowledged.
    pub acked: usize,
    /// Acknowledged writes that did not read back.
    pub lost: usize,
    /// The slowest return to the spec after a fault healed, and its kind.
    pub slowest: (Duration, &'static str),
    /// Leader epochs seen (each an election).
    pub epochs: usize,
    /// The recorded history's size and its checks' verdicts.
    pub history: String,
}

impl Figures {
    /// The one line `scripts/chaos` prints.
    pub fn line(&self) -> String {
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!(
            "chaos: seed {}, {} faults ({}), {} acknowledged writes, {} lost, slowest return to the spec {:.1} s ({}), {} leader epochs; {}",
            self.seed,
            self.by_kind.values().sum::<usize>(),
            kinds.join(", "),
            self.acked,
            self.lost,
            self.slowest.0.as_secs_f64(),
            self.slowest.1,
            self.epochs,
            if self.history.is_empty() {
                "history not checked yet"
            } else {
                &self.history
            }
        )
    }
}

/// Runs the faults on a three-voter cluster of namespaced instances and
/// returns the figures; panics, keeping the state directory (every server's
/// log) and naming the seed, when a check fails.
pub fn run(opts: &ChaosOptions) -> Figures {
    let _serial = super::SERIAL.blocking_lock();
    let (hub, rt) = super::netns::hub_and_runtime(200);
    eprintln!(
        "chaos: seed {} ({} faults), namespaces {}-*",
        opts.seed, opts.faults, hub.prefix
    );
    rt.block_on(run_in_hub(&hub, opts))
}

/// What the cluster should look like after a fault.
#[derive(Debug)]
enum Expect {
    /// The same members.
    Same,
    /// The same members but this instance's, which is replaced.
    Replaced(String),
    /// More members, every one of before kept.
    Grown,
    /// Fewer members, each one of before.
    Shrunk,
    /// The same members, each restarted.
    Rolled,
}

/// The spec the faults start from and what edits have made of it.
struct World {
    replicas: usize,
    rolled: bool,
    /// Index in `RELEASES` of the release the spec names.
    release: usize,
}

async fn run_in_hub(hub: &Hub, opts: &ChaosOptions) -> Figures {
    let mut c = LocalCluster::start_in(&chaos_spec(), hub).await;
    let _keep = KeepOnFailure {
        state: c.state_dir(),
        seed: opts.seed,
    };
    let first = back_to_spec(&c, 3, None).await;
    let beside = watchers::Beside::start(&c, &first, opts.seed).await;

    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut world = World {
        replicas: 3,
        rolled: false,
        release: 0,
    };
    let mut fig = Figures {
        seed: opts.seed,
        ..Figures::default()
    };
    for (i, fault) in plan_faults(&mut rng, opts.faults).into_iter().enumerate() {
        if fault == Fault::TwoAtOnce && world.replicas < 5 {
            // Two at once need five voters (never a majority down at once).
            c.set_replicas(world.replicas as u32, 5);
            world.replicas = 5;
        }
        let before = back_to_spec(&c, world.replicas, None).await;
        let started = now_ms();
        let hold = Duration::from_secs(rand::Rng::random_range(
            &mut rng,
            opts.hold_secs.0..=opts.hold_secs.1,
        ));
        let (expect, healed) = if fault == Fault::PowerLoss {
            c.power_loss(hold).await;
            let _ = beside
                .api
                .send((c.url().to_string(), c.token().to_string()));
            (Expect::Same, Instant::now())
        } else {
            inject(&c, hub, fault, &before, &mut rng, &mut world, hold).await
        };
        let rolled = matches!(expect, Expect::Rolled).then_some(started);
        let after = back_to_spec(&c, world.replicas, rolled).await;
        let took = healed.elapsed();
        check_after(
            fault,
            &expect,
            (&before, &after),
            started,
            &world,
            opts.seed,
        );
        let name = match expect {
            Expect::Grown => "scale-out",
            Expect::Shrunk => "scale-in",
            _ => fault.name(),
        };
        *fig.by_kind.entry(name).or_default() += 1;
        if took > fig.slowest.0 {
            fig.slowest = (took, name);
        }
        eprintln!(
            "chaos: fault {} {name} ({expect:?}, held {hold:?}): back to the spec {:.1} s after it healed; steps {:?}",
            i + 1,
            took.as_secs_f64(),
            steps_since(&after, started)
        );
    }
    let last = back_to_spec(&c, world.replicas, None).await;
    let (acked, leaders, recorded) = beside.finish().await;
    check_end(&mut fig, &last, &acked, &leaders).await;
    check_history(&mut fig, &recorded, &c.state_dir());
    fig
}

/// Checks the recorded history (linearizable writes, consistent sessions);
/// it and, on a failure, the failing slice stay beside the state directory.
fn check_history(fig: &mut Figures, recorded: &History, state: &Path) {
    // CHAOS_HISTORY_DIR keeps it after a run that passed too (scripts/chaos).
    let dir = std::env::var_os("CHAOS_HISTORY_DIR").map_or_else(
        || {
            state
                .parent()
                .map_or_else(|| state.join("history"), |p| p.join("history"))
        },
        PathBuf::from,
    );
    let verdicts = history::check(recorded, &dir);
    fig.history = verdicts.line();
    assert!(
        verdicts.passed(),
        "seed {}: the history failed its checks ({}), kept in {}: {verdicts:#?}",
        fig.seed,
        fig.history,
        dir.display()
    );
}

/// Every acknowledged write reads back; no epoch had two leaders.
async fn check_end(fig: &mut Figures, last: &StatusReply, acked: &[Acked], leaders: &Leaders) {
    fig.acked = acked.len();
    fig.epochs = leaders.len();
    let lost = watchers::lost_writes(&LocalCluster::endpoints(last), acked).await;
    fig.lost = lost.len();
    assert!(
        lost.is_empty(),
        "seed {}: {} acknowledged writes lost: {lost:?}",
        fig.seed,
        lost.len()
    );
    assert!(fig.acked > 0, "seed {}: no write got through", fig.seed);
    let shared = shared_epochs(leaders);
    assert!(
        shared.is_empty(),
        "seed {}: epochs led by two servers: {shared:?}",
        fig.seed
    );
}

/// Injects `fault`, holds it, heals it; returns what to expect and when it healed.
async fn inject(
    c: &LocalCluster,
    hub: &Hub,
    fault: Fault,
    before: &StatusReply,
    rng: &mut StdRng,
    world: &mut World,
    hold: Duration,
) -> (Expect, Instant) {
    let any = before.members.choose(rng).expect("members").clone();
    let instance = any.instance.to_string();
    let expect = match fault {
        Fault::KillServer => {
            signal(c.server_pid(&instance), libc::SIGKILL, &instance);
            Expect::Same
        }
        Fault::KillInstance => {
            c.kill_instance(&instance);
            Expect::Replaced(instance)
        }
        Fault::PauseServer => {
            pause(c.server_pid(&instance), hold, &instance).await;
            Expect::Same
        }
        Fault::PauseAgent => {
            pause(c.agent_pid(&instance), hold, &instance).await;
            Expect::Same
        }
        Fault::CutFollower | Fault::CutLeader => {
            cut_off(hub, fault, before, rng, hold).await;
            Expect::Same
        }
        Fault::SplitMinority => {
            let minority = (before.members.len() - 1) / 2;
            let side: Vec<String> = before
                .members
                .choose_multiple(rng, minority)
                .map(|m| m.instance.to_string())
                .collect();
            side.iter().for_each(|i| hub.isolate(i));
            tokio::time::sleep(hold).await;
            side.iter().for_each(|i| hub.heal(i));
            Expect::Same
        }
        Fault::Scale => {
            let to = if world.replicas == 3 { 5 } else { 3 };
            c.set_replicas(world.replicas as u32, to as u32);
            let grown = to > world.replicas;
            world.replicas = to;
            if grown { Expect::Grown } else { Expect::Shrunk }
        }
        Fault::Roll | Fault::SlowRoll => {
            roll(c, fault, before, world).await;
            Expect::Rolled
        }
        Fault::StalledAhead => {
            stalls::stalled_voter_ahead(c, hub, before, rng).await;
            Expect::Same
        }
        Fault::PowerLoss => unreachable!("the run loop restarts the cluster itself"),
        Fault::DiskFull => {
            harsh::disk_full(c, before, rng, hold).await;
            Expect::Same
        }
        Fault::TwoAtOnce => {
            let two = harsh::two_at_once(c, hub, before, rng, hold).await;
            eprintln!("chaos: two at once: {}", two.join(", "));
            Expect::Same
        }
        Fault::Upgrade => {
            let next = 1 - world.release;
            c.edit_spec(
                &format!("version: {}", RELEASES[world.release]),
                &format!("version: {}", RELEASES[next]),
            );
            world.release = next;
            Expect::Rolled
        }
    };
    (expect, Instant::now())
}

/// A roll (or a slow roll): `maxClientCnxns` edited to the other value.
async fn roll(c: &LocalCluster, fault: Fault, before: &StatusReply, world: &mut World) {
    let (from, to) = if world.rolled {
        ("\"120\"", "\"100\"")
    } else {
        ("\"100\"", "\"120\"")
    };
    match fault {
        Fault::SlowRoll => stalls::slow_roll(c, before, from, to).await,
        _ => c.edit_spec(
            &format!("maxClientCnxns: {from}"),
            &format!("maxClientCnxns: {to}"),
        ),
    }
    world.rolled = !world.rolled;
}

/// Cuts a follower or the leader (as `fault` says) off for `hold`.
async fn cut_off(hub: &Hub, fault: Fault, before: &StatusReply, rng: &mut StdRng, hold: Duration) {
    let role = if fault == Fault::CutLeader {
        "leader"
    } else {
        "follower"
    };
    let target = before
        .members
        .iter()
        .filter(|m| m.role == role)
        .collect::<Vec<_>>()
        .choose(rng)
        .map(|m| m.instance.to_string())
        .unwrap_or_else(|| panic!("no {role}: {:#?}", before.members));
    hub.cut(&target);
    tokio::time::sleep(hold).await;
    hub.heal(&target);
}

/// Sends `sig` to a process the fault needs, which must run.
fn signal(pid: Option<u32>, sig: libc::c_int, instance: &str) {
    let pid = pid.unwrap_or_else(|| panic!("{instance}: the process to signal is not running"));
    // SAFETY: kill(2) on a PID just checked to be this cluster's agent or server.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// SIGSTOP for `hold`, then SIGCONT.
async fn pause(pid: Option<u32>, hold: Duration, instance: &str) {
    signal(pid, libc::SIGSTOP, instance);
    tokio::time::sleep(hold).await;
    signal(pid, libc::SIGCONT, instance);
}

/// On a failed check, copies the state directory (every server's log, data
/// and config) beside the target directory and says where, with the seed.
struct KeepOnFailure {
    state: PathBuf,
    seed: u64,
}

impl Drop for KeepOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Some(target) = super::zkop_bin()
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
        else {
            return;
        };
        let dest = target
            .join("chaos-failures")
            .join(format!("seed-{}-{}", self.seed, now_ms()));
        let _ = std::fs::create_dir_all(&dest);
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(&self.state)
            .arg(&dest)
            .status();
        // The controller's own log and the recorded history sit beside the
        // state directory.
        if let Some(beside) = self.state.parent() {
            let _ = std::fs::copy(beside.join("zkop.log"), dest.join("zkop.log"));
            let _ = std::process::Command::new("cp")
                .arg("-a")
                .arg(beside.join("history"))
                .arg(&dest)
                .status();
        }
        eprintln!(
            "chaos: seed {} failed; state, every server's log and the controller's kept in {} ({copied:?})",
            self.seed,
            dest.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn a_seed_gives_the_same_faults_and_every_kind_comes_first() {
        let plan = |seed| plan_faults(&mut StdRng::seed_from_u64(seed), FAULTS.len() + 2);
        assert_eq!(plan(7), plan(7));
        assert_ne!(plan(7), plan(8));
        let first = &plan(7)[..=FAULTS.len()];
        assert_eq!(first.iter().collect::<BTreeSet<_>>().len(), FAULTS.len());
        assert_eq!(first.iter().filter(|f| **f == Fault::Scale).count(), 2);
        assert_eq!(plan_faults(&mut StdRng::seed_from_u64(1), 3).len(), 3);
    }
}
