//! Backups: the shipping member, and bootstraps that restore.

use zkop_spec::backup::{BackupTarget, RestoreFrom, RestorePoint};

use super::kit::*;

fn with_backup(mut b: B) -> B {
    b.spec = zkop_spec::parse_spec(
        "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  backup:\n    dir: /backups/t\n  healing:\n    onTotalLoss: restore\n",
    )
    .unwrap();
    b
}

/// Three members with ids and fresh reports, nothing bootstrapped.
fn unbootstrapped(spec: ValidatedCluster, held_members: bool) -> B {
    let mut b = B {
        spec,
        obs: Observed {
            desired_capacity: 3,
            now_ms: 1,
            ..Observed::default()
        },
        p: Persisted {
            cluster: "t".into(),
            held_members,
            ..Persisted::default()
        },
    };
    for i in 1..=3 {
        b = b.member(i, None);
    }
    b
}

fn restore_spec() -> ValidatedCluster {
    zkop_spec::parse_spec(
        "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  bootstrap:\n    restore:\n      from:\n        dir: /backups/old\n      toZxid: \"0x100000010\"\n",
    )
    .unwrap()
}

#[test]
fn a_restore_bootstraps_one_voter_seeded_from_the_backup_and_the_others_join_it() {
    let mut b = unbootstrapped(restore_spec(), false);
    let plan = b.plan();
    let want = RestoreFrom {
        target: BackupTarget::Dir {
            path: "/backups/old".into(),
        },
        to: RestorePoint::Zxid {
            zxid: "0x100000010".parse().unwrap(),
        },
    };
    let step = match &plan.steps[..] {
        [s @ Step::Bootstrap { config, restore }] => {
            assert_eq!(config.voter_count(), 1, "{plan:?}");
            assert_eq!(restore.as_ref(), Some(&want));
            s.clone()
        }
        other => panic!("expected a bootstrap of one restored voter, got {other:?}"),
    };
    let out = act(&b, &step);
    let seeded: Vec<u64> = out
        .state
        .members
        .values()
        .filter(|m| m.restore.is_some())
        .map(|m| m.id.0)
        .collect();
    assert_eq!(seeded, vec![1]);
    let desired = crate::desired::desired_for(&b.spec, &out.state, "i-1", 1);
    match desired.node {
        NodeAssignment::Member(m) => assert_eq!(m.restore, Some(want)),
        other => panic!("{other:?}"),
    }
    // The restored voter serves: the others join it as after a scale-out.
    b.p = out.state;
    b.p.config.as_mut().unwrap().version = Some(ConfigVersion(V1));
    let b = b.refresh_probes();
    let plan = b.plan();
    assert!(
        matches!(plan.steps.first(), Some(Step::StartJoiner { id, .. }) if id.0 == 2),
        "{plan:?}"
    );
}

#[test]
fn a_spec_restore_applies_only_while_the_cluster_never_held_members() {
    let b = unbootstrapped(restore_spec(), true);
    let plan = b.plan();
    assert!(
        matches!(&plan.steps[..], [Step::Bootstrap { config, restore: None }] if config.voter_count() == 3),
        "{plan:?}"
    );
}

#[test]
fn on_total_loss_restore_the_lost_are_fenced_then_the_own_newest_point_is_restored() {
    let mut b = with_backup(cluster(3).dead(1).dead(2).dead(3));
    b.obs.leaderless_for = Duration::from_secs(60);
    let plan = b.plan();
    let own = RestoreFrom {
        target: BackupTarget::Dir {
            path: "/backups/t".into(),
        },
        to: RestorePoint::Newest,
    };
    let step = plan.steps.first().cloned().unwrap();
    assert_eq!(
        step,
        Step::DiscardEnsemble {
            lost: vec![ServerId(1), ServerId(2), ServerId(3)],
            restore: Some(own.clone()),
        },
        "{plan:?}"
    );
    let out = act(&b, &step);
    assert!(
        out.message.contains("healing.onTotalLoss: restore"),
        "{}",
        out.message
    );
    assert_eq!(out.state.pending_restore, Some(own.clone()));
    assert!(out.state.held_members);
    // The next bootstrap, on new instances, restores one voter from it.
    let mut next = unbootstrapped(b.spec.clone(), true);
    next.p.pending_restore = Some(own.clone());
    let plan = next.plan();
    assert!(
        matches!(&plan.steps[..], [Step::Bootstrap { config, restore: Some(r) }] if config.voter_count() == 1 && *r == own),
        "{plan:?}"
    );
    let out = act(&next, &plan.steps[0]);
    assert_eq!(out.state.pending_restore, None);
}

#[test]
fn the_shipper_is_a_serving_follower_and_the_job_moves_when_it_stops_serving() {
    let mut b = with_backup(cluster(3));
    let plan = b.plan();
    assert_eq!(
        plan.steps.first(),
        Some(&Step::AssignShipper {
            id: Some(ServerId(2))
        }),
        "not the leader (1): {plan:?}"
    );
    b.p.shipper = Some(ServerId(2));
    assert_eq!(b.plan().steps, vec![], "a serving shipper keeps the job");
    let desired = crate::desired::desired_for(&b.spec, &b.p, "i-2", 1);
    match desired.node {
        NodeAssignment::Member(m) => assert_eq!(m.backup.map(|o| o.recovery_point_ms), Some(5000)),
        other => panic!("{other:?}"),
    }
    let others = crate::desired::desired_for(&b.spec, &b.p, "i-3", 1);
    assert!(matches!(others.node, NodeAssignment::Member(m) if m.backup.is_none()));
    // Member 2's server stops serving: member 3 takes the job.
    b.obs.reports.get_mut("i-2").unwrap().report.probe = None;
    assert_eq!(
        b.plan().steps.first(),
        Some(&Step::AssignShipper {
            id: Some(ServerId(3))
        })
    );
    // Without spec.backup, no one ships.
    let mut b = cluster(3);
    b.p.shipper = Some(ServerId(2));
    assert_eq!(
        b.plan().steps.first(),
        Some(&Step::AssignShipper { id: None })
    );
}
