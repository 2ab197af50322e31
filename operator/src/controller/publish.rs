//! Publishing where clients connect (`spec.clients`) from the loop: once per
//! change, before the pass acts on its step, so that a member on its way out
//! (out of the config, its instance next) leaves the records first.

use std::time::Duration;

use zkop_spec::validate::ValidatedCluster;

use super::{Controller, ReconcileError};
use crate::adapters::{Fleet, IdLedger, Published, StateStore};
use crate::controller::Leadership;

/// How long a new leader listens to reports before it publishes: until
/// then it knows of too few serving members, and would remove the others'
/// records.
pub const PUBLISH_AFTER: Duration = Duration::from_secs(3);

impl<F: Fleet, L: IdLedger, S: StateStore, E: Leadership> Controller<F, L, S, E> {
    /// Publishes what clients are told when it changed; a failure stops the
    /// pass before it acts (and is retried with backoff).
    pub(super) async fn publish(
        &mut self,
        spec: &ValidatedCluster,
        uptime: Duration,
    ) -> Result<(), ReconcileError> {
        let c = &spec.clients;
        if (c.ssm_parameter.is_none() && c.route53.is_none()) || uptime < PUBLISH_AFTER {
            return Ok(());
        }
        let status = self.shared.status();
        let what = Published {
            members: super::serving(&status.members)
                .map(|m| (m.id, m.address.clone()))
                .collect(),
            connect_string: status.connect_string,
        };
        // Never nothing: after a total loss the last records stay until
        // members serve again.
        if what.members.is_empty() || self.published.as_ref() == Some(&(c.clone(), what.clone())) {
            return Ok(());
        }
        let done = Self::within_lease(&self.shared, self.fleet.publish(c, &what)).await?;
        if !done.is_empty() {
            self.shared.event("published", done.join("; "));
        }
        self.published = Some((c.clone(), what));
        Ok(())
    }
}
