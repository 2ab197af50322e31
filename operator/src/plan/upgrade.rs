//! A change of ZooKeeper release (`spec.zookeeper.version`): a roll-out
//! that may start only when the target is installed on every member's
//! instance and the step is one ZooKeeper supports, whose first member is a
//! canary, and that says where it stands.

use std::collections::BTreeSet;
use std::time::Duration;

use zkop_spec::releases::Release;

use super::{Ctx, Phase, Plan};
use crate::model::MemberRecord;
use zkop_spec::zk::ServerId;

/// How a refused change of release begins (status, events).
pub const UPGRADE_REFUSED: &str = "spec.zookeeper.version";

impl Ctx<'_> {
    /// The release the spec names.
    pub(super) fn target_release(&self) -> String {
        self.spec.zookeeper.version.to_string()
    }

    /// The release `m` runs, as far as this controller knows: what its
    /// settings name, else what its server said (`srvr`).
    pub(super) fn release_of(&self, m: &MemberRecord) -> Option<String> {
        m.settings
            .as_ref()
            .and_then(|s| s.zookeeper_version.clone())
            .or_else(|| {
                self.fresh_report(&m.instance)
                    .and_then(|r| r.probe.as_ref()?.version.as_deref())
                    .and_then(Release::parse)
                    .map(|r| r.to_string())
            })
    }

    /// Whether `m` is to change release (runs another than the spec's).
    pub(super) fn changes_release(&self, m: &MemberRecord) -> bool {
        self.release_of(m)
            .is_some_and(|v| v != self.target_release())
    }

    /// Whether member `id` runs a release no other member of the ensemble
    /// runs: a change of release restarted it, and the rest have not
    /// followed.
    pub(super) fn alone_on_its_release(&self, id: ServerId) -> bool {
        let Some(m) = self.p.members.get(&id) else {
            return false;
        };
        let Some(mine) = self.release_of(m) else {
            return false;
        };
        let others: Vec<Option<String>> = self
            .p
            .members
            .values()
            .filter(|o| o.id != id && !o.retiring)
            .map(|o| self.release_of(o))
            .collect();
        !others.is_empty() && others.iter().all(|v| v.as_deref() != Some(mine.as_str()))
    }

    /// Why the change of release to the spec's may not go on, if it may
    /// not: the target is missing on an instance (named), or a member's
    /// step to it is not one ZooKeeper supports (with the path to take).
    /// Nothing restarts while refused.
    pub(super) fn upgrade_refused(&self, listed: &[&MemberRecord]) -> Option<Plan> {
        let target = self.target_release();
        let changing: Vec<&&MemberRecord> =
            listed.iter().filter(|m| self.changes_release(m)).collect();
        if changing.is_empty() {
            return None;
        }
        let missing: Vec<String> = listed
            .iter()
            .filter(|m| {
                self.fresh_report(&m.instance)
                    .and_then(|r| r.installed_releases.as_ref())
                    .is_some_and(|installed| !installed.contains(&target))
            })
            .map(|m| m.instance.to_string())
            .collect();
        if !missing.is_empty() {
            return Some(refused(format!(
                "ZooKeeper {target} is not installed on {}: install it there (scripts/install-deps, or a new AMI), or name a release every instance has; nothing was restarted",
                missing.join(", ")
            )));
        }
        let from: BTreeSet<String> = changing.iter().filter_map(|m| self.release_of(m)).collect();
        let to = self.spec.zookeeper.version;
        for running in &from {
            let Some(running) = Release::parse(running) else {
                continue;
            };
            if let Err(why) = supported_step(running, to) {
                return Some(refused(format!("{why}; nothing was restarted")));
            }
        }
        None
    }

    /// While a change of release is under way: the canary (the first
    /// member on the new release) has not yet served `upgrade.canaryFor`.
    pub(super) fn canary_waiting(&self, listed: &[&MemberRecord]) -> Option<Plan> {
        let target = self.target_release();
        let on_target: Vec<&&MemberRecord> = listed
            .iter()
            .filter(|m| self.release_of(m).as_deref() == Some(target.as_str()))
            .collect();
        let behind = listed.iter().filter(|m| self.changes_release(m)).count();
        let [canary] = on_target.as_slice() else {
            return None;
        };
        if behind == 0 {
            return None;
        }
        let want = self.spec.upgrade_canary_for;
        let served = self
            .obs
            .reports
            .get(&canary.instance)
            .and_then(|r| r.serving_for)
            .unwrap_or(Duration::ZERO);
        (served < want).then(|| {
            Plan::new(
                Phase::Reconciling,
                format!(
                    "{}: member {} is the canary on ZooKeeper {target}: {}s of upgrade.canaryFor ({}s) served; {behind} member(s) wait",
                    self.upgrade_progress(listed),
                    canary.id,
                    served.as_secs(),
                    want.as_secs()
                ),
                vec![],
            )
        })
    }

    /// `upgrading 3.8.6 -> 3.9.5: 2 of 5 members`, while members run
    /// another release than the spec's.
    pub(super) fn upgrade_progress(&self, listed: &[&MemberRecord]) -> String {
        let target = self.target_release();
        let from: BTreeSet<String> = listed
            .iter()
            .filter_map(|m| self.release_of(m))
            .filter(|v| *v != target)
            .collect();
        let done = listed
            .iter()
            .filter(|m| self.release_of(m).as_deref() == Some(target.as_str()))
            .count();
        let from: Vec<String> = from.into_iter().collect();
        format!(
            "upgrading {} -> {target}: {done} of {} members",
            if from.is_empty() {
                "?".to_string()
            } else {
                from.join(", ")
            },
            listed.len()
        )
    }
}

fn refused(why: String) -> Plan {
    Plan::new(
        Phase::Reconciling,
        format!("{UPGRADE_REFUSED}: change of release refused: {why}"),
        vec![],
    )
}

/// Whether ZooKeeper supports a rolling step from `from` to `to`: within a
/// minor line either way; from a line's newest patch to the next line (as
/// ZooKeeper documents upgrades); back one line (a rollback). Otherwise the
/// path to take.
pub fn supported_step(from: Release, to: Release) -> Result<(), String> {
    let line = |r: Release| (r.major, r.minor);
    if line(from) == line(to) {
        return Ok(());
    }
    let next_line = from.major == to.major && to.minor == from.minor + 1;
    let back_one = from.major == to.major && from.minor == to.minor + 1;
    if back_one {
        return Ok(());
    }
    let newest = from.newest_of_line();
    if next_line {
        return match newest {
            Some(n) if n == from => Ok(()),
            Some(n) => Err(format!(
                "ZooKeeper upgrades to the next minor line from the newest patch of a line: {from} -> {to} goes through {n} first ({from} -> {n} -> {to})"
            )),
            None => Err(format!(
                "{from} is a release zkop does not know: upgrade it to a known release of its line first"
            )),
        };
    }
    let via = Release::parse(&format!("{}.{}.0", from.major, from.minor + 1))
        .and_then(Release::newest_of_line);
    Err(match via {
        Some(v) if from < to => format!(
            "{from} -> {to} jumps over a minor line: upgrade one line at a time ({from} -> {} -> {v} -> ...)",
            from.newest_of_line()
                .map_or(from.to_string(), |n| n.to_string())
        ),
        _ => format!(
            "{from} -> {to} is not a step ZooKeeper supports: one minor line at a time, up from a line's newest patch or back one line"
        ),
    })
}
