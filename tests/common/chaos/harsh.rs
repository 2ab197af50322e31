//! Harsher faults (issue 26): two at once on a five-voter ensemble, never a
//! majority down at once.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use zkop_spec::wire::StatusReply;

use super::{Fault, signal};
use crate::common::LocalCluster;
use crate::common::netns::Hub;

/// What one of the two faults did, to undo it.
enum Undo {
    /// Nothing: the agent restarts the killed server.
    Nothing,
    /// SIGCONT this PID.
    Resume(u32),
    /// Heal this instance's network.
    Heal(String),
}

/// Two members hit at once, each by a fault picked among killing or pausing
/// its server, pausing its agent and cutting it off, held together for
/// `hold`; returns what each got, for the fault's line.
pub async fn two_at_once(
    c: &LocalCluster,
    hub: &Hub,
    before: &StatusReply,
    rng: &mut StdRng,
    hold: Duration,
) -> Vec<String> {
    assert!(
        before.members.len() >= 5,
        "two faults at once need five voters: {:#?}",
        before.members
    );
    let kinds = [
        Fault::KillServer,
        Fault::PauseServer,
        Fault::PauseAgent,
        Fault::CutFollower,
    ];
    let mut undo = Vec::new();
    let mut done = Vec::new();
    for m in before.members.choose_multiple(rng, 2) {
        let instance = m.instance.to_string();
        let kind = *kinds.choose(rng).unwrap_or(&Fault::KillServer);
        let pid = |p: Option<u32>| {
            p.unwrap_or_else(|| panic!("{instance}: the process to signal is not running"))
        };
        undo.push(match kind {
            Fault::KillServer => {
                signal(c.server_pid(&instance), libc::SIGKILL, &instance);
                Undo::Nothing
            }
            Fault::PauseServer | Fault::PauseAgent => {
                let p = pid(if kind == Fault::PauseServer {
                    c.server_pid(&instance)
                } else {
                    c.agent_pid(&instance)
                });
                signal(Some(p), libc::SIGSTOP, &instance);
                Undo::Resume(p)
            }
            _ => {
                hub.cut(&instance);
                Undo::Heal(instance.clone())
            }
        });
        let name = match kind {
            Fault::CutFollower => "cut-off",
            k => k.name(),
        };
        done.push(format!("{instance} {name}"));
    }
    tokio::time::sleep(hold).await;
    for u in undo {
        match u {
            Undo::Nothing => {}
            Undo::Resume(p) => signal(Some(p), libc::SIGCONT, "paused"),
            Undo::Heal(i) => hub.heal(&i),
        }
    }
    done
}

/// Runs a shell script in the mount namespace of process `pid`: an agent's,
/// which `ip netns exec` made for it and its server (it goes with them).
fn in_mount_namespace(pid: u32, script: &str) {
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--", "sh", "-euc", script])
        .output()
        .unwrap_or_else(|e| panic!("nsenter: {e}"));
    assert!(
        out.status.success(),
        "in the mount namespace of PID {pid}, `{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Holds the instance's server down (agent paused, server killed) while
/// `script` runs on its data directory, `$d`.
async fn with_server_down(c: &LocalCluster, instance: &str, script: &str) {
    let agent = c
        .agent_pid(instance)
        .unwrap_or_else(|| panic!("{instance}: no agent"));
    signal(Some(agent), libc::SIGSTOP, instance);
    if let Some(server) = c.server_pid(instance) {
        signal(Some(server), libc::SIGKILL, instance);
        crate::common::wait_until("the server gone", Duration::from_secs(30), || async {
            (!crate::common::alive(server)).then_some(())
        })
        .await;
    }
    let data = c.state_dir().join("instances").join(instance).join("data");
    in_mount_namespace(agent, &format!("d='{}'\n{script}", data.display()));
    signal(Some(agent), libc::SIGCONT, instance);
}

/// One member's data directory moved onto a filesystem with 16 KiB to
/// spare (a tmpfs in the mount namespace of its agent and server): ZooKeeper fails on ENOSPC
/// at its next snapshot or log writes. Status must name the member's disk
/// as full while the others keep the quorum. After `hold` the data moves
/// back to the real disk (as an operator moving it to a bigger volume) and
/// the member must serve again, as the same member. Returns the instance.
pub async fn disk_full(
    c: &LocalCluster,
    before: &StatusReply,
    rng: &mut StdRng,
    hold: Duration,
) -> String {
    let instance = before
        .members
        .choose(rng)
        .map(|m| m.instance.to_string())
        .unwrap_or_default();
    // Log files are preallocated sparse: copy them sparse, count what is used.
    with_server_down(
        c,
        &instance,
        "t=\"$d.full\"; mkdir -p \"$t\"
used=$(du -s --block-size=1 \"$d\" | cut -f1)
mount -t tmpfs -o size=$((used + 16384)) zkop-disk-full \"$t\"
cp -a --sparse=always \"$d/.\" \"$t/\"
mount --bind \"$t\" \"$d\"
umount \"$t\"; rmdir \"$t\"",
    )
    .await;
    let full = crate::common::wait_until(
        "status to name the full disk",
        Duration::from_secs(30),
        || async {
            let s = c.status().await?;
            let m = s.members.iter().find(|m| m.instance.as_str() == instance)?;
            m.problem.clone().filter(|p| p.starts_with("disk full"))
        },
    )
    .await;
    tokio::time::sleep(hold).await;
    let log = c
        .state_dir()
        .join("instances")
        .join(&instance)
        .join("logs/zookeeper.out");
    let enospc = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("No space left on device")
        .count();
    eprintln!(
        "chaos: disk full on {instance}: status says {full:?}; its server's log says \"No space left on device\" {enospc} times"
    );
    with_server_down(
        c,
        &instance,
        "m=\"$d.moved\"; rm -rf \"$m\"; mkdir \"$m\"; cp -a \"$d/.\" \"$m/\"
umount -l \"$d\"
rm -rf \"$d\"; mv \"$m\" \"$d\"",
    )
    .await;
    instance
}
