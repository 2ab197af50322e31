//! A membership change as a value: who joins (with the role they take), who
//! leaves, and why. The reason is typed so that tests compare decisions, not
//! sentences; its text (the reconfig's `purpose`, shown in events and status)
//! is rendered from it in one place.

use std::fmt;

use zkop_spec::InstanceId;
use zkop_spec::zk::{Server, ServerId};

/// One incremental reconfig the planner wants.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipChange {
    /// Servers added or whose role changes, with their new role.
    pub joining: Vec<Server>,
    /// Servers removed.
    pub leaving: Vec<ServerId>,
    /// Why.
    pub why: ChangeReason,
}

impl MembershipChange {
    /// A change of `joining` and `leaving` for `why`.
    pub fn new(joining: Vec<Server>, leaving: Vec<ServerId>, why: ChangeReason) -> Self {
        Self {
            joining,
            leaving,
            why,
        }
    }
}

/// Why a membership change is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeReason {
    /// A dead observer leaves.
    RemoveDeadObserver {
        /// The observer.
        dead: ServerId,
    },
    /// A dead voter's vote goes to a serving joiner, in one reconfig.
    ReplaceDeadVoter {
        /// The dead voter.
        dead: ServerId,
        /// The joiner taking its vote.
        with: ServerId,
    },
    /// More voters than wanted: the dead one leaves and a follower becomes an
    /// observer, keeping the count odd.
    RemoveDeadVoterDemote {
        /// The dead voter.
        dead: ServerId,
        /// The follower demoted.
        demoted: ServerId,
    },
    /// No joiner is coming: an observer leaves to rejoin as a participant
    /// (promoting it while a voter is down can fail).
    ObserverRejoinsForDeadVoter {
        /// The observer.
        observer: ServerId,
        /// The dead voter it replaces.
        dead: ServerId,
    },
    /// ZooKeeper refused to promote this observer: it leaves the config, to
    /// be added back as a participant.
    ObserverRejoinsForPromotion {
        /// The observer.
        observer: ServerId,
    },
    /// Scale-in: an observer leaves.
    ScaleInObserver {
        /// The observer.
        observer: ServerId,
    },
    /// Scale-in: a voter leaves and another becomes an observer.
    ScaleInVoter {
        /// The voter leaving.
        gone: ServerId,
        /// The voter demoted.
        demoted: ServerId,
    },
    /// Two members become voters together.
    AddVoters {
        /// Their ids.
        ids: Vec<ServerId>,
    },
    /// Two voters become observers together.
    DemoteVoters {
        /// Their ids.
        ids: Vec<ServerId>,
    },
    /// A joiner is added as an observer.
    AddObserver {
        /// The joiner.
        id: ServerId,
    },
    /// Rolling replacement: an outdated observer leaves.
    ReplaceObserver {
        /// The observer.
        id: ServerId,
        /// Its instance.
        instance: InstanceId,
        /// Why it is replaced (launch template, or `zkop replace`).
        because: String,
    },
    /// Rolling replacement: an outdated voter hands its vote to a new member.
    HandOverVote {
        /// The old member's role word (follower, leader).
        role: &'static str,
        /// The old member.
        old: ServerId,
        /// Its instance.
        old_instance: InstanceId,
        /// Why it is replaced.
        because: String,
        /// The member taking the vote.
        new: ServerId,
        /// Its instance.
        new_instance: InstanceId,
        /// The launch template version the fleet launches from, when known.
        to: Option<String>,
    },
    /// A zone holds a majority of the voters: one of its followers hands
    /// its vote to an observer in another zone.
    ZoneRebalance {
        /// The crowded zone.
        zone: String,
        /// Its follower, now an observer.
        demoted: ServerId,
        /// The observer, now a voter.
        promoted: ServerId,
    },
    /// Turning TLS on: every line loses its plaintext client part (or, off,
    /// gets it back), in one reconfig naming the whole membership.
    TlsClientParts {
        /// Whether the parts are dropped.
        dropped: bool,
    },
}

fn ids_text(ids: &[ServerId]) -> String {
    let ids: Vec<u64> = ids.iter().map(|id| id.0).collect();
    format!("{ids:?}")
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RemoveDeadObserver { dead } => write!(f, "remove dead observer {dead}"),
            Self::ReplaceDeadVoter { dead, with } => {
                write!(f, "replace dead voter {dead} with {with}")
            }
            Self::RemoveDeadVoterDemote { dead, demoted } => {
                write!(f, "remove dead voter {dead}, demote {demoted} to observer")
            }
            Self::ObserverRejoinsForDeadVoter { observer, dead } => write!(
                f,
                "observer {observer} leaves to rejoin as the replacement of dead voter {dead}"
            ),
            Self::ObserverRejoinsForPromotion { observer } => write!(
                f,
                "observer {observer} leaves to rejoin as a participant (its promotion was refused)"
            ),
            Self::ScaleInObserver { observer } => write!(f, "scale in: remove observer {observer}"),
            Self::ScaleInVoter { gone, demoted } => {
                write!(
                    f,
                    "scale in: remove voter {gone}, demote {demoted} to observer"
                )
            }
            Self::AddVoters { ids } => write!(f, "add voters {}", ids_text(ids)),
            Self::DemoteVoters { ids } => write!(f, "demote voters {} to observers", ids_text(ids)),
            Self::AddObserver { id } => write!(f, "add observer {id}"),
            Self::ReplaceObserver {
                id,
                instance,
                because,
            } => write!(
                f,
                "rolling replacement: observer {id} on {instance} ({because}) leaves"
            ),
            Self::HandOverVote {
                role,
                old,
                old_instance,
                because,
                new,
                new_instance,
                to,
            } => {
                write!(
                    f,
                    "rolling replacement: {role} {old} on {old_instance} ({because}) hands its vote to {new} on {new_instance}"
                )?;
                match to {
                    Some(t) => write!(f, " (launch template {t})"),
                    None => Ok(()),
                }
            }
            Self::ZoneRebalance {
                zone,
                demoted,
                promoted,
            } => write!(
                f,
                "zone {zone} holds a majority of the voters: voter {demoted} hands its vote to observer {promoted}"
            ),
            Self::TlsClientParts { dropped: true } => {
                write!(f, "TLS: drop the plaintext client parts")
            }
            Self::TlsClientParts { dropped: false } => {
                write!(f, "TLS off: give the lines their plaintext client parts")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_the_events_always_said() {
        let id = ServerId;
        assert_eq!(
            ChangeReason::ReplaceDeadVoter {
                dead: id(2),
                with: id(4)
            }
            .to_string(),
            "replace dead voter 2 with 4"
        );
        assert_eq!(
            ChangeReason::AddVoters {
                ids: vec![id(4), id(5)]
            }
            .to_string(),
            "add voters [4, 5]"
        );
        let hand = ChangeReason::HandOverVote {
            role: "leader",
            old: id(1),
            old_instance: "i-1".into(),
            because: "zkop replace".into(),
            new: id(4),
            new_instance: "i-4".into(),
            to: Some("lt-1:2".into()),
        };
        assert_eq!(
            hand.to_string(),
            "rolling replacement: leader 1 on i-1 (zkop replace) hands its vote to 4 on i-4 (launch template lt-1:2)"
        );
    }
}
