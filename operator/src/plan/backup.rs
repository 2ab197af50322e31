//! Backups: which member ships the ensemble's transactions, and the restore a
//! bootstrap seeds its first voter with.

use zkop_spec::backup::{RestoreFrom, RestorePoint};
use zkop_spec::zk::{DynamicConfig, MemberRole, ServerId};

use super::{Ctx, Step};

impl Ctx<'_> {
    /// The member to ship the backup: a serving observer or follower rather
    /// than the leader (shipping reads the disk the leader writes to), the
    /// current one as long as it serves. A step when that changes.
    pub(super) fn shipper_step(
        &self,
        config: &DynamicConfig,
        leader: Option<ServerId>,
    ) -> Option<Step> {
        let current = self.p.shipper;
        if self.spec.backup.is_none() {
            return current.map(|_| Step::AssignShipper { id: None });
        }
        let serving = |id: ServerId| {
            self.serving_id(id) && self.p.members.get(&id).is_some_and(|m| !m.retiring)
        };
        let best = config
            .servers
            .values()
            .filter(|s| serving(s.id))
            .min_by_key(|s| {
                (
                    Some(s.id) == leader,
                    s.role == MemberRole::Participant,
                    s.id,
                )
            })
            .map(|s| s.id);
        let keep = current.is_some_and(|c| {
            config.servers.contains_key(&c) && serving(c) && (Some(c) != leader || best == leader)
        });
        (!keep && best != current).then_some(Step::AssignShipper { id: best })
    }

    /// The restore the next bootstrap seeds its first voter with: a total
    /// loss's (`onTotalLoss: restore`), or `spec.bootstrap.restore` while the
    /// cluster has never held members.
    pub(super) fn bootstrap_restore(&self) -> Option<RestoreFrom> {
        self.p.pending_restore.clone().or_else(|| {
            (!self.p.held_members)
                .then(|| self.spec.restore.clone())
                .flatten()
        })
    }

    /// The restore a total loss asks for under `onTotalLoss: restore`.
    pub(super) fn own_newest_point(&self) -> Option<RestoreFrom> {
        self.spec.backup.as_ref().map(|b| RestoreFrom {
            target: b.target.clone(),
            to: RestorePoint::Newest,
        })
    }
}
