//! `spec.healing` (and `voters.standby`, which heals a down voter): durations
//! parsed and checked against each other.

use crate::cluster::{ClusterSpec, Scaling};
use crate::validate::{HealingPolicy, Problems, check_duration};

/// Validates `spec.healing`, and `voters.standby` beside it.
pub(crate) fn check_healing(p: &mut Problems, s: &ClusterSpec) -> Option<HealingPolicy> {
    let (h, standby) = (&s.healing, s.voters.standby);
    let detect_after = check_duration(
        p,
        "spec.healing.detectAfter",
        &h.detect_after,
        (1, 3600),
        "1h",
    );
    let member_dead_after = check_duration(
        p,
        "spec.healing.memberDeadAfter",
        &h.member_dead_after,
        (5, 86_400),
        "24h",
    );
    let voter_down_after = check_duration(
        p,
        "spec.healing.voterDownAfter",
        &h.voter_down_after,
        (1, 3600),
        "1h",
    );
    if standby > 2 {
        p.add(
            "spec.voters.standby",
            format!("must be 0, 1 or 2, got {standby}"),
        );
    }
    let external = s
        .fleet
        .aws
        .as_ref()
        .is_some_and(|a| a.scaling == Scaling::External);
    if standby > 0 && external {
        p.add(
            "spec.voters.standby",
            "not with fleet.aws.scaling: external: standbys run on instances beyond replicas, which only zkop sizing the group adds",
        );
    }
    if let (Some(down), Some(dead)) = (voter_down_after, member_dead_after)
        && standby > 0
        && down >= dead
    {
        p.add(
            "spec.healing.voterDownAfter",
            format!(
                "must be shorter than spec.healing.memberDeadAfter ({}s): a standby takes a down voter's vote before the voter is dead, got {}s",
                dead.as_secs(),
                down.as_secs()
            ),
        );
    }
    Some(HealingPolicy {
        quorum_loss: h.quorum_loss,
        on_total_loss: h.on_total_loss,
        detect_after: detect_after?,
        member_dead_after: member_dead_after?,
        voter_down_after: voter_down_after?,
    })
}

#[cfg(test)]
mod tests {
    fn spec(extra: &str) -> String {
        format!(
            "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n{extra}"
        )
    }

    #[test]
    fn a_standby_takes_a_vote_before_the_voter_is_dead_and_there_are_at_most_two() {
        let ok = crate::parse_spec(&spec(
            "  voters:\n    standby: 1\n  healing:\n    voterDownAfter: 3s\n",
        ))
        .unwrap();
        assert_eq!(ok.standby, 1);
        assert_eq!(ok.healing.voter_down_after.as_secs(), 3);
        let e = crate::parse_spec(&spec(
            "  voters:\n    standby: 3\n  healing:\n    voterDownAfter: 60s\n    memberDeadAfter: 30s\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("spec.voters.standby: must be 0, 1 or 2, got 3"),
            "{e}"
        );
        assert!(e.contains("spec.healing.voterDownAfter: must be shorter than spec.healing.memberDeadAfter (30s)"), "{e}");
    }

    #[test]
    fn standbys_need_zkop_to_size_the_group() {
        let aws = include_str!("../../examples/aws.yaml")
            .replace("    aws:\n", "    aws:\n      scaling: external\n")
            .replace("  voters:\n", "  voters:\n    standby: 1\n");
        let e = crate::parse_spec(&aws).unwrap_err().to_string();
        assert!(
            e.contains("spec.voters.standby: not with fleet.aws.scaling: external"),
            "{e}"
        );
    }
}
