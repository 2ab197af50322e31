//! The controller: the reconcile loop, modelled on kube-runtime's controller.
//! One pass: lead (or follow) -> follow the spec file -> observe (fleet, agent
//! reports, persisted state; I/O) -> plan (pure) -> act on the first step
//! (I/O) -> persist -> requeue. `reconcile` returns a [`Requeue`]; errors go
//! through [`error_policy`], which backs off.
//!
//! Rooms: `requeue` (when the next pass runs, the error policy), `observe`
//! (report cache and leader clock -> [`Observed`](crate::model::Observed)),
//! `state` (what the loop and the API share), `status_view` (a pure status),
//! `spec_file` (live spec edits), `test_points` (crash tests). Time comes from
//! the [`Clock`](crate::clock::Clock) in [`Shared`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::info;

use crate::act::act;
use crate::adapters::{Fleet, FleetView, IdLedger, StateStore, StoreError};
use crate::model::Persisted;
use crate::plan::{Phase, Step, plan};

mod agent_identity;
mod certificates;
mod fence;
mod leadership;
mod observe;
mod publish;
mod requeue;
mod spec_file;
mod state;
mod status_cache;
mod status_view;
mod test_points;
#[cfg(test)]
mod tests;

pub use agent_identity::{AGENT_KEY_HEADER, AgentRefused};
pub use certificates::{SignRefused, Signer};
pub use fence::{FENCE_CHECK, IDLE_FENCE_CHECK};
pub use leadership::{
    AlwaysLeader, LEASE_MARGIN, Leadership, LeaseKeeper, RENEW_AFTER, SharedLease, Standing,
};
pub use observe::{LEADER_FRESH, ReportCache, Requests, ZXID_FRESH};
pub use publish::PUBLISH_AFTER;
pub use requeue::{BACKOFF_FIRST, BACKOFF_MAX, Backoff, ReconcileError, Requeue, error_policy};
pub use spec_file::SpecFile;
pub use state::{MAX_EVENTS, ReplaceRefused, Shared, UNKNOWN_REFRESH, UnknownInstance};
pub use status_view::{
    STATUS_FRESH, StatusInput, connect_string, serving, status_role, status_view,
};
pub use test_points::TestPoints;

/// The controller: the loop and its adapters.
pub struct Controller<F, L, S, E> {
    /// State shared with the API.
    pub shared: Arc<Shared>,
    /// The fleet.
    pub fleet: Arc<F>,
    /// The id ledger.
    pub ledger: L,
    /// The state store.
    pub store: S,
    /// The spec file to follow, if any.
    pub spec_file: Option<SpecFile>,
    /// Decides whether this controller may act.
    pub leadership: E,
    /// The lease epoch this controller leads under, while it leads.
    epoch: Option<u64>,
    /// The cluster epoch it stored when it took the cluster over, while it
    /// leads: a higher one stored since fences it off (`fence`).
    cluster_epoch: Option<u64>,
    /// Another controller's takeover, while it keeps this one off the cluster.
    fenced: Option<fence::Fenced>,
    /// When the state record was last read for the fence.
    fence_checked: Option<Instant>,
    /// This controller's API URL, stored with a takeover so that a
    /// controller fenced off by it can name it.
    url: Option<String>,
    /// When this controller began observing (under its current epoch).
    started: Instant,
    test_points: TestPoints,
    /// The fleet as last observed while the cluster was Running with nothing
    /// to do, and when: reused for `IDLE_FLEET_REFRESH`.
    idle_view: Option<(FleetView, Instant)>,
    /// What was last published for clients, and where.
    published: Option<(
        zkop_spec::clients::ClientsPolicy,
        crate::adapters::Published,
    )>,
}

/// How often an idle controller asks the fleet (every pass otherwise) while
/// every agent reports and none has news: on AWS one
/// `DescribeAutoScalingGroups` a minute instead of 120. An agent's news, an
/// unknown instance's report or a quiet agent asks sooner: reports, not
/// polling, say when something changed.
pub const IDLE_FLEET_REFRESH: Duration = Duration::from_secs(60);
/// How often it asks while an agent of a running instance is quiet.
pub const QUIET_FLEET_REFRESH: Duration = Duration::from_secs(5);
/// An agent not heard from for this long is quiet (agents report every second).
pub const AGENT_QUIET: Duration = Duration::from_secs(3);

impl<F: Fleet, L: IdLedger, S: StateStore, E: Leadership> Controller<F, L, S, E> {
    /// A controller over these adapters.
    pub fn new(
        shared: Arc<Shared>,
        fleet: Arc<F>,
        ledger: L,
        store: S,
        spec_file: Option<SpecFile>,
        leadership: E,
    ) -> Self {
        Self {
            fleet,
            ledger,
            store,
            spec_file,
            leadership,
            epoch: None,
            cluster_epoch: None,
            fenced: None,
            fence_checked: None,
            url: None,
            started: shared.clock.now(),
            test_points: TestPoints::from_env(),
            idle_view: None,
            published: None,
            shared,
        }
    }

    /// Names this controller's API URL in the state it takes over.
    pub fn advertising(mut self, url: &str) -> Self {
        self.url = Some(url.to_string());
        self
    }

    fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    /// Leads or follows; on taking over, adopts the stored state under a new epoch.
    async fn lead(&mut self) -> Result<bool, ReconcileError> {
        let standing = match self.leadership.check().await {
            Ok(standing) => standing,
            Err(e) => {
                if self.shared.lease_left().is_zero() {
                    // Lapsed: acting again is a takeover, with its waits.
                    self.epoch = None;
                }
                return Err(e.into());
            }
        };
        let before = self.shared.follower_of();
        let standing = self.fenced_standing(standing);
        self.shared.set_standing(standing.clone());
        match standing {
            Standing::Leader { epoch, .. } => {
                if self.epoch != Some(epoch) {
                    self.take_over(epoch).await?;
                }
                Ok(true)
            }
            Standing::Follower { leader_url } => {
                self.cluster_epoch = None;
                if self.epoch.take().is_some() || before != Some(leader_url.clone()) {
                    info!(leader = ?leader_url, "following");
                }
                Ok(false)
            }
        }
    }

    /// Adopts the stored state under an epoch above every epoch stored before
    /// (a lost lease record restarts the lease's epochs, and no two leaders
    /// may share one), and restarts the leader clock.
    async fn take_over(&mut self, lease_epoch: u64) -> Result<(), ReconcileError> {
        let name = self.shared.spec().name;
        let mut p = Self::within_lease(&self.shared, self.store.load())
            .await?
            .unwrap_or_else(|| Persisted {
                cluster: name.clone(),
                ..Persisted::default()
            });
        p.epoch = lease_epoch.max(p.epoch + 1);
        p.leader_url = self.url.clone();
        p.store_version = Self::within_lease(&self.shared, self.store.save(&p)).await?;
        let epoch = p.epoch;
        self.cluster_epoch = Some(epoch);
        self.fence_checked = Some(self.now());
        self.shared.commit(p);
        // Observations made under another leader are not trusted.
        let now = self.now();
        self.started = now;
        self.shared.lock().reports.restart_observation(now);
        self.epoch = Some(lease_epoch);
        self.shared.event(
            "leader",
            format!("leading cluster {name} with epoch {epoch}"),
        );
        Ok(())
    }

    /// Runs `effect` only while the lease lets this controller act, and for
    /// no longer than it does: every call that observes or changes the
    /// cluster goes through here.
    async fn within_lease<T, X: Into<ReconcileError>>(
        shared: &Shared,
        effect: impl Future<Output = Result<T, X>>,
    ) -> Result<T, ReconcileError> {
        let left = shared.lease_left();
        if left.is_zero() {
            return Err(ReconcileError::LeaseLapsed);
        }
        match tokio::time::timeout(left, effect).await {
            Ok(outcome) => outcome.map_err(Into::into),
            Err(_) => Err(ReconcileError::LeaseLapsed),
        }
    }

    /// One pass: observe, plan, act on the first step, persist.
    pub async fn reconcile(&mut self) -> Result<Requeue, ReconcileError> {
        self.shared.metrics.pass();
        if !self.lead().await? {
            return Ok(Requeue::idle(Duration::from_secs(2)));
        }
        if self.fence_check_due(self.now()) {
            self.check_fence().await?;
        }
        if let Some(f) = self.spec_file.as_mut() {
            f.poll(&self.shared);
        }
        let refresh = self.shared.take_fleet_refresh();
        let cached = self
            .idle_view
            .as_ref()
            .filter(|_| !refresh)
            .filter(|(v, at)| {
                let age = self.now().saturating_duration_since(*at);
                let limit = match self.shared.any_agent_quiet(v, AGENT_QUIET) {
                    true => QUIET_FLEET_REFRESH,
                    false => IDLE_FLEET_REFRESH,
                };
                age < limit
            })
            .map(|(v, _)| v.clone());
        let fresh = cached.is_none();
        let view = match cached {
            Some(v) => v,
            None => Self::within_lease(&self.shared, self.fleet.observe()).await?,
        };
        let (spec, persisted, observed) = self.shared.snapshot(view.clone());
        let uptime = self.now().saturating_duration_since(self.started);
        let plan = plan(&spec, &observed, &persisted, uptime);
        self.keep_plan(&plan);
        self.publish(&spec, uptime).await?;
        let Some(step) = plan.steps.first() else {
            if plan.phase != Phase::Running {
                self.idle_view = None;
            } else if fresh {
                self.idle_view = Some((view, self.now()));
            }
            return Ok(Requeue::idle(Duration::from_millis(500)));
        };
        self.idle_view = None;
        // Nothing is changed for a cluster another controller took over.
        self.check_fence().await?;
        self.test_points.check(step, &persisted, false);
        let t = self.now();
        // A step's event is stamped when the step began: once its outcome is
        // committed, agents act on it before the event is recorded.
        let began_ms = self.shared.clock.wall_ms();
        let outcome = Self::within_lease(
            &self.shared,
            act(
                step,
                &persisted,
                &spec,
                self.fleet.as_ref(),
                &self.ledger,
                observed.now_ms,
            ),
        )
        .await?;
        self.test_points.check(step, &persisted, true);
        if outcome.state != persisted {
            self.persist(outcome.state).await?;
        }
        let now = self.now();
        self.shared.change(|s| match step {
            Step::BeginRoll => s.requests.roll = false,
            // The survivors restart under the forced config: the time they
            // take is not a new loss.
            Step::ForceConfig { .. } => s.reports.restart_leader_clock(now),
            Step::ReplaceInstance { instance } => {
                s.requests.replace.remove(instance);
            }
            _ => {}
        });
        let took = self.now().saturating_duration_since(t);
        self.shared.metrics.step(step.kind(), took);
        self.shared
            .event_at(step.kind(), outcome.message, began_ms, Some(took));
        Ok(Requeue::soon())
    }

    /// Keeps the pass's plan for status; losing and regaining the leader are
    /// events, routine phases are not.
    fn keep_plan(&self, plan: &crate::plan::Plan) {
        let notable = |p: Phase| matches!(p, Phase::Degraded | Phase::QuorumLost);
        let before = self.shared.set_plan(plan.clone());
        if let Some(before) = before
            && before != plan.phase
            && (notable(before) || notable(plan.phase))
        {
            self.shared.event(
                "phase",
                format!(
                    "{} -> {}: {}",
                    before.as_str(),
                    plan.phase.as_str(),
                    plan.reason
                ),
            );
        }
        // The pass's status view, built here once: publish, the API and
        // the metrics share it.
        self.shared.watch_backup();
    }

    /// Saves a step's new state (compare-and-set) and hands it to the API.
    async fn persist(&mut self, mut state: Persisted) -> Result<(), ReconcileError> {
        match Self::within_lease(&self.shared, self.store.save(&state)).await {
            Ok(v) => state.store_version = v,
            Err(ReconcileError::Store(e @ StoreError::Conflict { .. })) => {
                // Someone else wrote: under a higher epoch, another
                // controller took the cluster over and this one stops;
                // otherwise adopt what is stored, then plan again.
                if let Some(stored) = Self::within_lease(&self.shared, self.store.load()).await? {
                    if self.deposed_by(&stored) {
                        return Err(ReconcileError::Fenced(stored.epoch));
                    }
                    self.shared.commit(stored);
                }
                return Err(e.into());
            }
            Err(e) => return Err(e),
        }
        self.shared.commit(state);
        Ok(())
    }

    /// Runs passes until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let (requeue, healthy) = match self.reconcile().await {
                Ok(r) => {
                    backoff = Backoff::default();
                    self.shared.set_last_error(None);
                    (r, true)
                }
                Err(e) => {
                    self.shared
                        .set_last_error(Some(format!("{} error: {e}", e.category())));
                    (error_policy(&e, &mut backoff, &self.shared.metrics), false)
                }
            };
            // News or a spec edit cuts the wait short, but never a backoff
            // after an error.
            let edited = async {
                match self.spec_file.as_ref() {
                    Some(f) => f.edited(&self.shared.clock).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(requeue.deadline(self.now())) => {}
                _ = self.shared.news.notified(), if healthy => {}
                _ = edited, if healthy => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
