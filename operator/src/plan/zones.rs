//! Voters across availability zones: when the fleet spans three zones or
//! more, no zone holds a majority of the voters, so losing any one zone
//! keeps the quorum. Voters are added from, and a dead voter's vote handed
//! to, the zones with the fewest; a zone holding a majority hands a vote to
//! an observer elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use zkop_spec::zk::{DynamicConfig, MemberRole, Server, ServerId};

use super::Ctx;
use super::change::{ChangeReason, MembershipChange};

/// How many of `serving` voters (by zone) can be lost with a majority of
/// `voters` kept: 0 when none can.
pub fn failure_tolerance(serving: usize, voters: usize) -> usize {
    serving.saturating_sub(voters / 2 + 1)
}

/// How many whole zones can be lost (the most crowded first) with a
/// majority of `voters` kept; `serving_by_zone` counts serving voters.
pub fn zone_failure_tolerance(serving_by_zone: &[usize], voters: usize) -> usize {
    let mut counts = serving_by_zone.to_vec();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let mut left: usize = counts.iter().sum();
    let majority = voters / 2 + 1;
    let mut lost = 0;
    for c in counts {
        if left.saturating_sub(c) < majority {
            break;
        }
        left -= c;
        lost += 1;
    }
    lost
}

impl Ctx<'_> {
    /// The zone of a member's instance, when the fleet says.
    pub(super) fn zone_of(&self, id: ServerId) -> Option<&str> {
        let m = self.p.members.get(&id)?;
        self.obs
            .instances
            .iter()
            .find(|i| i.id == m.instance)?
            .zone
            .as_deref()
    }

    /// The zones the fleet's running instances are in.
    fn zones(&self) -> BTreeSet<&str> {
        self.obs
            .instances
            .iter()
            .filter(|i| self.obs.instance_up(&i.id))
            .filter_map(|i| i.zone.as_deref())
            .collect()
    }

    /// Live voters per zone (every zone of the fleet, zero included).
    fn voters_by_zone(&self, config: &DynamicConfig) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> = self.zones().into_iter().map(|z| (z, 0)).collect();
        for s in config.voters().filter(|s| !self.dead_id(s.id)) {
            if let Some(z) = self.zone_of(s.id) {
                *counts.entry(z).or_default() += 1;
            }
        }
        counts
    }

    /// `candidates` in the order voters should come from them: each next
    /// one from the zone with the fewest voters so far (ties: as given).
    pub(super) fn spread_over_zones(
        &self,
        config: &DynamicConfig,
        mut candidates: Vec<Server>,
    ) -> Vec<Server> {
        let mut counts = self.voters_by_zone(config);
        let mut ordered = Vec::with_capacity(candidates.len());
        while !candidates.is_empty() {
            let count = |s: &Server| {
                self.zone_of(s.id)
                    .map_or(usize::MAX, |z| counts.get(z).copied().unwrap_or(0))
            };
            let best = (0..candidates.len())
                .min_by_key(|i| count(&candidates[*i]))
                .unwrap_or(0);
            let s = candidates.remove(best);
            if let Some(z) = self.zone_of(s.id) {
                *counts.entry(z).or_default() += 1;
            }
            ordered.push(s);
        }
        ordered
    }

    /// `followers` in the order voters should leave: each next one from the
    /// zone with the most voters left (ties: as given).
    pub(super) fn crowded_first(
        &self,
        config: &DynamicConfig,
        followers: &[ServerId],
    ) -> Vec<ServerId> {
        let mut counts = self.voters_by_zone(config);
        let mut left = followers.to_vec();
        let mut ordered = Vec::with_capacity(left.len());
        while !left.is_empty() {
            let crowd = |id: ServerId| {
                self.zone_of(id)
                    .and_then(|z| counts.get(z).copied())
                    .unwrap_or(0)
            };
            // The first of the most crowded: max_by_key keeps the last.
            let best = (0..left.len())
                .rev()
                .max_by_key(|i| crowd(left[*i]))
                .unwrap_or(0);
            let id = left.remove(best);
            if let Some(c) = self.zone_of(id).and_then(|z| counts.get_mut(z)) {
                *c = c.saturating_sub(1);
            }
            ordered.push(id);
        }
        ordered
    }

    /// With three zones or more and every voter serving: a zone holding a
    /// majority of the voters hands one follower's vote to a serving
    /// observer in the zone with the fewest voters, in one reconfig.
    pub(super) fn zone_rebalance(
        &self,
        config: &DynamicConfig,
        live_observers: &[ServerId],
        followers: &[ServerId],
    ) -> Option<MembershipChange> {
        let counts = self.voters_by_zone(config);
        let voters = config.voter_count();
        if counts.len() < 3 || config.voters().any(|s| !self.serving_id(s.id)) {
            return None;
        }
        let (&crowded, _) = counts.iter().find(|(_, c)| **c > voters / 2)?;
        let follower = followers
            .iter()
            .copied()
            .find(|id| self.zone_of(*id) == Some(crowded))?;
        let observer = live_observers
            .iter()
            .copied()
            .filter(|id| self.zone_of(*id).is_some_and(|z| z != crowded))
            .min_by_key(|id| {
                self.zone_of(*id)
                    .and_then(|z| counts.get(z).copied())
                    .unwrap_or(usize::MAX)
            })?;
        let server = |id: ServerId, role| config.servers.get(&id).map(|s| s.with_role(role));
        Some(MembershipChange::new(
            vec![
                server(observer, MemberRole::Participant)?,
                server(follower, MemberRole::Observer)?,
            ],
            vec![],
            ChangeReason::ZoneRebalance {
                zone: crowded.to_string(),
                demoted: follower,
                promoted: observer,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_count_what_can_be_lost_with_a_majority_kept() {
        assert_eq!(failure_tolerance(5, 5), 2);
        assert_eq!(failure_tolerance(3, 5), 0);
        assert_eq!(failure_tolerance(2, 3), 0);
        assert_eq!(failure_tolerance(1, 3), 0);
        // 2 + 2 + 1 of five: any one zone can go, not two.
        assert_eq!(zone_failure_tolerance(&[2, 2, 1], 5), 1);
        // 3 + 1 + 1: losing the crowded zone loses the quorum.
        assert_eq!(zone_failure_tolerance(&[3, 1, 1], 5), 0);
        assert_eq!(zone_failure_tolerance(&[1, 1, 1], 3), 1);
        assert_eq!(zone_failure_tolerance(&[3], 3), 0);
    }
}
