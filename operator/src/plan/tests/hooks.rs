//! Fencing and the termination lifecycle hook (issue 12, finding 3). moto
//! never holds an instance in `Terminating:Wait`, so these run on the
//! planner; the adapter's reading of Auto Scaling's states is tested against
//! recorded XML (tests/aws_adapters.rs).

use super::kit::*;

fn set_state(b: &mut B, id: u64, state: InstanceState) {
    let inst = instance_of(id);
    for i in &mut b.obs.instances {
        if i.id == inst {
            i.state = state;
        }
    }
}

/// Five voters, 3, 4 and 5 lost (their agents silent, instances `state`),
/// 1 and 2 survive with their data: recovery fences first.
fn lost_three(state: InstanceState) -> B {
    let mut b = cluster(5);
    for id in [3, 4, 5] {
        set_state(&mut b, id, state);
        b.obs.reports.remove(instance_of(id).as_str());
    }
    for (inst, zxid) in [("i-1", "0x100000009"), ("i-2", "0x10000000b")] {
        let r = &mut b.obs.reports.get_mut(inst).unwrap().report;
        let p = r.probe.as_mut().unwrap();
        p.serving = false;
        p.mode = None;
        r.disk_zxid = Some(zxid.parse().unwrap());
        r.disk_config_version = Some(ConfigVersion(V1));
    }
    b.obs.leaderless_for = Duration::from_secs(30);
    b
}

#[test]
fn fencing_a_fenced_voter_held_by_the_hook_has_its_hook_completed_not_fenced_again() {
    // Fenced: the hook holds both. Their hooks are completed, one by one.
    let plan = lost_three(InstanceState::Terminating).plan();
    assert_eq!(
        plan.steps.first(),
        Some(&Step::CompleteLifecycleAction {
            instance: "i-3".into()
        }),
        "{plan:?}"
    );
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::FenceInstance { .. })),
        "{plan:?}"
    );
}

#[test]
fn fencing_an_instance_is_gone_only_when_ec2_says_terminated() {
    // Past the hook, EC2 still shuts them down: nothing is forced yet.
    let plan = lost_three(InstanceState::ShuttingDown).plan();
    assert!(
        !plan.steps.iter().any(|s| matches!(
            s,
            Step::ForceConfig { .. } | Step::FenceInstance { .. } | Step::ForgetMember { .. }
        )),
        "{plan:?}"
    );
    assert!(plan.reason.contains("waiting for EC2"), "{}", plan.reason);
    // Terminated: the survivors' config is forced.
    let plan = lost_three(InstanceState::Terminated).plan();
    assert!(
        matches!(plan.steps.first(), Some(Step::ForceConfig { .. })),
        "{plan:?}"
    );
}

#[test]
fn leader_last_a_leader_held_by_the_hook_is_removed_from_the_config_before_its_hook_completes() {
    // Scaled in from outside: the leader's instance is held by the hook; a
    // joiner stands ready.
    let mut b = cluster(3).capacity(4).joiner(4);
    set_state(&mut b, 1, InstanceState::Terminating);
    let plan = b.plan();
    assert!(
        !plan.steps.contains(&Step::CompleteLifecycleAction {
            instance: "i-1".into()
        }),
        "the hook was completed while the leader is in the config: {plan:?}"
    );
    let reconfig = plan
        .steps
        .iter()
        .find(|s| matches!(s, Step::Reconfig { .. }));
    match reconfig {
        Some(Step::Reconfig { pending }) => {
            assert_eq!(pending.order.leaving, vec![ServerId(1)], "{pending:?}");
            assert_ne!(
                pending.via,
                instance_of(1),
                "run through the leaving leader"
            );
        }
        other => panic!(
            "expected the leader's removal, got {other:?}: {}",
            plan.reason
        ),
    }
}
