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
