//! The reconcile loop, modelled on kube-runtime's controller:
//! observe (fleet, agent reports, persisted state) -> plan (pure) -> act (one
//! step) -> persist -> requeue. `reconcile` returns a [`Requeue`]; errors go
//! through [`error_policy`], which backs off.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{info, warn};

use zkop_spec::ValidatedCluster;
use zkop_spec::wire::{AgentReport, DesiredNodeState, Event, MemberStatus, StatusReply};
use zkop_spec::zk::{MemberRole, ServerMode};

use crate::act::{ActError, act};
use crate::adapters::aws::LeaseState;
use crate::adapters::{Fleet, FleetError, FleetView, IdLedger, StateStore, StoreError};
use crate::desired::desired_for;
use crate::leadership::Leadership;
use crate::metrics::Metrics;
use crate::model::{Instance, InstanceState, Observed, Persisted, SeenReport};
use crate::plan::{Phase, Plan, Step, plan};

/// Events kept for `zkop status`.
const MAX_EVENTS: usize = 50;

/// When to run the next pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requeue {
    after: Duration,
}

impl Requeue {
    /// Work remains: run the next pass almost at once.
    #[must_use]
    pub fn soon() -> Self {
        Self {
            after: Duration::from_millis(100),
        }
    }

    /// Nothing to do now: look again after `after` (agents report every second).
    #[must_use]
    pub fn after(after: Duration) -> Self {
        Self { after }
    }

    /// The delay.
    pub fn delay(self) -> Duration {
        self.after
    }
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The fleet could not be observed (expected; retried).
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A step failed (see [`ActError`]).
    #[error(transparent)]
    Act(#[from] ActError),
    /// The new state could not be saved; the step's effect is re-planned.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReconcileError {
    /// A short category for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::Fleet(_) => "fleet",
            ReconcileError::Act(e) => e.category(),
            ReconcileError::Store(_) => "store",
        }
    }
}

/// Backoff for failing passes: 500 ms doubling to 10 s, reset by a good pass.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(500),
        }
    }
}

/// What to do after a failed pass: count it, log it, back off.
pub fn error_policy(err: &ReconcileError, backoff: &mut Backoff, metrics: &Metrics) -> Requeue {
    metrics.error(err.category());
    warn!(category = err.category(), error = %err, "reconcile failed; retrying");
    let r = Requeue::after(backoff.next);
    backoff.next = (backoff.next * 2).min(Duration::from_secs(10));
    r
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct SharedState {
    spec: ValidatedCluster,
    persisted: Persisted,
    revision: u64,
    reports: BTreeMap<String, (AgentReport, Instant)>,
    instances: Vec<Instance>,
    plan: Option<Plan>,
    events: VecDeque<Event>,
    /// `None` while this controller leads; otherwise the leader's URL, if known.
    follower_of: Option<Option<String>>,
    /// The last reconcile error, cleared by a good pass.
    last_error: Option<String>,
    /// When a member last reported leading (or this controller started).
    leader_seen_at: Instant,
    /// `zkop roll` asked for a restart of every member; cleared once recorded.
    roll_requested: bool,
    replace_requested: std::collections::BTreeSet<String>,
}

/// Why `zkop replace` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceRefused {
    /// No member of the config runs on the instance.
    #[error("no member of the config runs on instance {0}")]
    NoMember(String),
    /// The group's own policies size it, so the controller cannot add the
    /// replacement's instance.
    #[error(
        "the group is scaled externally (spec.fleet.aws.scaling: external): terminate the instance through Auto Scaling instead; its termination hook holds it until its member has left the config"
    )]
    ExternallyScaled,
}

/// What the loop and the HTTP API share.
pub struct Shared {
    /// The API's bearer token.
    pub token: String,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    state: Mutex<SharedState>,
    revision_tx: watch::Sender<u64>,
    /// Wakes the loop early: an agent reported something new, or a person
    /// asked for something.
    news: tokio::sync::Notify,
}

impl Shared {
    /// Shared state for a controller of `spec`, starting from `persisted`.
    pub fn new(token: String, spec: ValidatedCluster, persisted: Persisted) -> Arc<Self> {
        // Revisions start at the wall clock so that they keep rising across restarts.
        let revision = now_ms();
        let (revision_tx, _) = watch::channel(revision);
        Arc::new(Self {
            token,
            metrics: Metrics::default(),
            state: Mutex::new(SharedState {
                spec,
                persisted,
                revision,
                reports: BTreeMap::new(),
                instances: Vec::new(),
                plan: None,
                events: VecDeque::new(),
                follower_of: Some(None),
                last_error: None,
                leader_seen_at: Instant::now(),
                roll_requested: false,
                replace_requested: Default::default(),
            }),
            revision_tx,
            news: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The desired state of an instance's node, and the current revision.
    pub fn desired(&self, instance: &str) -> DesiredNodeState {
        let s = self.lock();
        desired_for(&s.spec, &s.persisted, instance, s.revision)
    }

    /// Notified when the revision changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    /// `None` while this controller leads; otherwise the leader's URL, if known.
    pub fn follower_of(&self) -> Option<Option<String>> {
        self.lock().follower_of.clone()
    }

    fn set_follower_of(&self, follower_of: Option<Option<String>>) {
        self.lock().follower_of = follower_of;
    }

    /// Keeps an agent's report.
    pub fn record_report(&self, report: AgentReport) {
        let news = {
            let mut s = self.lock();
            let news = s
                .reports
                .get(&report.instance)
                .is_none_or(|(last, _)| report.differs_from(last));
            s.reports
                .insert(report.instance.clone(), (report, Instant::now()));
            news
        };
        if news {
            self.news.notify_one();
        }
    }

    /// Records an event and logs it.
    pub fn event(&self, kind: &str, message: String) {
        self.event_at(kind, message, now_ms());
    }

    /// Records an event stamped `at_ms` and logs it.
    fn event_at(&self, kind: &str, message: String, at_ms: u64) {
        let mut s = self.lock();
        info!(cluster = %s.spec.name, kind, "{message}");
        s.events.push_back(Event {
            at_ms,
            kind: kind.to_string(),
            message,
        });
        while s.events.len() > MAX_EVENTS {
            s.events.pop_front();
        }
    }

    fn commit(&self, persisted: Persisted) {
        self.change(|s| s.persisted = persisted);
    }

    /// Changes what desired states are computed from, bumping the revision so
    /// long polls answer.
    fn change(&self, f: impl FnOnce(&mut SharedState)) {
        let revision = {
            let mut s = self.lock();
            f(&mut s);
            s.revision += 1;
            s.revision
        };
        self.revision_tx.send_replace(revision);
    }

    /// Asks for a rolling restart of every member (`zkop roll`).
    pub fn request_roll(&self) {
        self.change(|s| s.roll_requested = true);
        self.news.notify_one();
    }

    /// Asks for the member on `instance` to be replaced (`zkop replace`).
    pub fn request_replace(&self, instance: &str) -> Result<u64, ReplaceRefused> {
        let id = {
            let s = self.lock();
            if s.spec.externally_scaled() {
                return Err(ReplaceRefused::ExternallyScaled);
            }
            let config = s.persisted.config.as_ref();
            s.persisted
                .members
                .values()
                .find(|m| m.instance == instance && !m.retiring && m.role_in(config).is_some())
                .map(|m| m.id.0)
        };
        let id = id.ok_or_else(|| ReplaceRefused::NoMember(instance.to_string()))?;
        self.change(|s| {
            s.replace_requested.insert(instance.to_string());
        });
        self.news.notify_one();
        Ok(id)
    }

    /// Records the outcome of a pass for `zkop status`.
    pub fn set_last_error(&self, error: Option<String>) {
        self.lock().last_error = error;
    }

    /// The current spec.
    pub fn spec(&self) -> ValidatedCluster {
        self.lock().spec.clone()
    }

    fn set_spec(&self, spec: ValidatedCluster) {
        // Static config and heap ride in desired states.
        self.change(|s| s.spec = spec);
    }

    /// The cluster as `zkop status` shows it.
    pub fn status(&self) -> StatusReply {
        let s = self.lock();
        let config = s.persisted.config.as_ref();
        let fresh = Duration::from_secs(10);
        let mut members: Vec<MemberStatus> = s
            .persisted
            .members
            .values()
            .map(|m| {
                let report = s
                    .reports
                    .get(&m.instance)
                    .filter(|(r, at)| at.elapsed() < fresh && r.server_id == Some(m.id))
                    .map(|(r, _)| r);
                let probe = report.and_then(|r| r.probe.as_ref());
                let serving = probe.is_some_and(|p| p.serving);
                let config_role = m.role_in(config);
                let role = if m.retiring {
                    "leaving"
                } else if !serving {
                    "down"
                } else if config_role.is_none() {
                    "joining"
                } else {
                    match probe.and_then(|p| p.mode) {
                        Some(ServerMode::Leader) => "leader",
                        Some(ServerMode::Observer) => "observer",
                        _ if config_role == Some(MemberRole::Observer) => "observer",
                        _ => "follower",
                    }
                };
                let instance = s.instances.iter().find(|i| i.id == m.instance);
                MemberStatus {
                    id: m.id,
                    instance: m.instance.clone(),
                    address: m.server.address.clone(),
                    client_port: m.server.client_port,
                    role: role.to_string(),
                    config_role,
                    zxid: probe.and_then(|p| p.zxid),
                    zxid_lag: None,
                    healthy: serving,
                    zone: instance.and_then(|i| i.zone.clone()),
                    launch_template: instance.and_then(|i| i.launch_template.clone()),
                }
            })
            .collect();
        let leader_zxid = members
            .iter()
            .find(|m| m.role == "leader")
            .and_then(|m| m.zxid);
        for m in members.iter_mut().filter(|m| m.healthy) {
            m.zxid_lag = m.zxid.zip(leader_zxid).and_then(|(z, l)| z.lag_behind(l));
        }
        let (phase, reason) = s
            .plan
            .as_ref()
            .map(|p| (p.phase.as_str().to_string(), p.reason.clone()))
            .unwrap_or_else(|| ("Pending".into(), "starting".into()));
        StatusReply {
            cluster: s.spec.name.clone(),
            phase,
            reason,
            config_version: config.and_then(|c| c.version),
            members,
            events: s.events.iter().cloned().collect(),
            last_error: s.last_error.clone(),
        }
    }

    fn snapshot(&self, view: FleetView) -> (ValidatedCluster, Persisted, Observed) {
        let FleetView {
            instances,
            desired_capacity,
            launch_template,
        } = view;
        let mut s = self.lock();
        s.instances = instances.clone();
        let reports = s
            .reports
            .iter()
            .map(|(k, (r, at))| {
                (
                    k.clone(),
                    SeenReport {
                        report: r.clone(),
                        age: at.elapsed(),
                    },
                )
            })
            .collect();
        // Agents report every second: a leader not heard of for 2.5 s, or on
        // an instance the fleet lost, leads no more (detection starts there).
        let up = |id: &str| {
            instances
                .iter()
                .any(|i| i.id == id && i.state != InstanceState::Terminated)
        };
        let leading = s.reports.iter().any(|(id, (r, at))| {
            at.elapsed() < Duration::from_millis(2_500)
                && up(id)
                && r.probe
                    .as_ref()
                    .is_some_and(|p| p.serving && p.mode == Some(ServerMode::Leader))
        });
        if leading {
            s.leader_seen_at = Instant::now();
        }
        // Fresh reports only: a dead member's last report must not outlive a
        // discarded ensemble.
        let newest = s
            .reports
            .values()
            .filter(|(_, at)| at.elapsed() < Duration::from_secs(5))
            .filter_map(|(r, _)| r.probe.as_ref().and_then(|p| p.zxid).or(r.disk_zxid))
            .max();
        // Saved with the next state change.
        s.persisted.max_zxid_seen = s.persisted.max_zxid_seen.max(newest);
        let observed = Observed {
            instances,
            desired_capacity,
            reports,
            now_ms: now_ms(),
            leaderless_for: s.leader_seen_at.elapsed(),
            roll_requested: s.roll_requested,
            replace_requested: s.replace_requested.clone(),
            launch_template,
        };
        (s.spec.clone(), s.persisted.clone(), observed)
    }

    /// Keeps the latest plan; returns the phase before it.
    fn set_plan(&self, plan: Plan) -> Option<Phase> {
        self.lock().plan.replace(plan).map(|p| p.phase)
    }
}

/// Whether `ZKOP_TEST_KILL_AT` asks this controller to die here (crash-recovery
/// tests only): `reconfig-outcome` before acting on a reconfig's outcome, so
/// it is never persisted; `claim-outcome` once an id is claimed for a
/// scale-out but before the claim is saved. `acted` says which side of the act.
fn crash_point(step: &Step, p: &Persisted, acted: bool) -> bool {
    let Ok(at) = std::env::var("ZKOP_TEST_KILL_AT") else {
        return false;
    };
    match (at.as_str(), step) {
        ("reconfig-outcome", Step::CompleteReconfig { .. } | Step::RecordConfig { .. }) => {
            !acted && p.reconfig.is_some()
        }
        ("claim-outcome", Step::ClaimId { .. }) => acted && p.ever_bootstrapped,
        _ => false,
    }
}

/// Dies exactly as a SIGKILL would, for `crash_point`.
fn die_for_test(step: &Step) {
    warn!(
        step = step.kind(),
        "ZKOP_TEST_KILL_AT: killing this controller"
    );
    // SAFETY: kill(2) on our own PID.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// Where the spec comes from: re-read each pass, so edits apply while running.
#[derive(Debug)]
pub struct SpecFile {
    path: PathBuf,
    last_text: Option<String>,
}

impl SpecFile {
    /// Watches `path`; `text` is what was loaded at start.
    pub fn new(path: PathBuf, text: String) -> Self {
        Self {
            path,
            last_text: Some(text),
        }
    }

    fn poll(&mut self, shared: &Shared) {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return;
        };
        if self.last_text.as_deref() == Some(text.as_str()) {
            return;
        }
        self.last_text = Some(text.clone());
        let current = shared.spec();
        match zkop_spec::parse_spec(&text) {
            Ok(spec) if spec.name != current.name => shared.event(
                "spec-refused",
                format!(
                    "{}: metadata.name changed from {} to {}; keeping the running spec",
                    self.path.display(),
                    current.name,
                    spec.name
                ),
            ),
            Ok(spec) if spec == current => {}
            Ok(spec) => {
                shared.event(
                    "spec",
                    format!(
                        "spec changed: replicas {} -> {}, voters {} -> {}",
                        current.replicas,
                        spec.replicas,
                        current.target_voters(),
                        spec.target_voters()
                    ),
                );
                shared.set_spec(spec);
            }
            Err(e) => shared.event(
                "spec-refused",
                format!(
                    "{} is invalid; keeping the running spec: {}",
                    self.path.display(),
                    e.lines().join("; ")
                ),
            ),
        }
    }
}

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
    /// The epoch this controller leads under, while it leads.
    epoch: Option<u64>,
    started: Instant,
    /// The fleet as last observed while the cluster was Running with nothing
    /// to do, and when: reused for `IDLE_FLEET_REFRESH`.
    idle_view: Option<(FleetView, Instant)>,
}

/// How often an idle controller asks the fleet (every pass otherwise): the
/// agents' one-second reports still show a lost member at once, and on AWS
/// this keeps the steady state at about 12 `DescribeAutoScalingGroups` a
/// minute instead of 120.
pub const IDLE_FLEET_REFRESH: Duration = Duration::from_secs(5);

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
            shared,
            fleet,
            ledger,
            store,
            spec_file,
            leadership,
            epoch: None,
            started: Instant::now(),
            idle_view: None,
        }
    }

    /// Leads or follows; on taking over, adopts the stored state under the new epoch.
    async fn lead(&mut self) -> Result<bool, ReconcileError> {
        match self.leadership.check(now_ms()).await? {
            LeaseState::Leader { epoch } => {
                if self.epoch != Some(epoch) {
                    let name = self.shared.spec().name;
                    let mut p = self.store.load().await?.unwrap_or_else(|| Persisted {
                        cluster: name.clone(),
                        ..Persisted::default()
                    });
                    if p.epoch < epoch {
                        p.epoch = epoch;
                        p.store_version = self.store.save(&p).await?;
                    }
                    self.shared.commit(p);
                    self.shared.set_follower_of(None);
                    // Observations made under another leader are not trusted.
                    self.started = Instant::now();
                    self.shared.lock().leader_seen_at = Instant::now();
                    self.epoch = Some(epoch);
                    self.shared.event(
                        "leader",
                        format!("leading cluster {name} with epoch {epoch}"),
                    );
                }
                Ok(true)
            }
            LeaseState::Follower { leader_url } => {
                if self.epoch.take().is_some()
                    || self.shared.follower_of() != Some(leader_url.clone())
                {
                    info!(leader = ?leader_url, "following");
                }
                self.shared.set_follower_of(Some(leader_url));
                Ok(false)
            }
        }
    }

    /// One pass: observe, plan, act on the first step, persist.
    pub async fn reconcile(&mut self) -> Result<Requeue, ReconcileError> {
        self.shared.metrics.pass();
        if !self.lead().await? {
            return Ok(Requeue::after(Duration::from_secs(2)));
        }
        if let Some(f) = self.spec_file.as_mut() {
            f.poll(&self.shared);
        }
        let cached = self
            .idle_view
            .as_ref()
            .filter(|(_, at)| at.elapsed() < IDLE_FLEET_REFRESH)
            .map(|(v, _)| v.clone());
        let fresh = cached.is_none();
        let view = match cached {
            Some(v) => v,
            None => self.fleet.observe().await?,
        };
        let (spec, persisted, observed) = self.shared.snapshot(view.clone());
        let plan = plan(&spec, &observed, &persisted, self.started.elapsed());
        // Losing and regaining the leader are events; routine phases are not.
        let notable = |p: Phase| matches!(p, Phase::Degraded | Phase::QuorumLost);
        if let Some(before) = self.shared.set_plan(plan.clone())
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
        let Some(step) = plan.steps.first() else {
            if plan.phase != Phase::Running {
                self.idle_view = None;
            } else if fresh {
                self.idle_view = Some((view, Instant::now()));
            }
            return Ok(Requeue::after(Duration::from_millis(500)));
        };
        self.idle_view = None;
        if crash_point(step, &persisted, false) {
            die_for_test(step);
        }
        let t = Instant::now();
        // A step's event is stamped when the step began: once its outcome is
        // committed, agents act on it before the event is recorded.
        let began_ms = now_ms();
        let outcome = act(
            step,
            &persisted,
            &spec,
            self.fleet.as_ref(),
            &self.ledger,
            observed.now_ms,
        )
        .await?;
        if crash_point(step, &persisted, true) {
            die_for_test(step);
        }
        if outcome.state != persisted {
            let mut state = outcome.state;
            match self.store.save(&state).await {
                Ok(v) => state.store_version = v,
                Err(e @ StoreError::Conflict { .. }) => {
                    // Someone else wrote: adopt what is stored, then plan again.
                    if let Some(stored) = self.store.load().await? {
                        self.shared.commit(stored);
                    }
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
            self.shared.commit(state);
        }
        if *step == Step::BeginRoll {
            self.shared.change(|s| s.roll_requested = false);
        }
        if let Step::ReplaceInstance { instance } = step {
            self.shared.change(|s| {
                s.replace_requested.remove(instance);
            });
        }
        self.shared.metrics.step(step.kind(), t.elapsed());
        self.shared.event_at(step.kind(), outcome.message, began_ms);
        Ok(Requeue::soon())
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
            // News cuts the wait short, but never a backoff after an error.
            tokio::select! {
                _ = tokio::time::sleep(requeue.delay()) => {}
                _ = self.shared.news.notified(), if healthy => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fleet: &str) -> ValidatedCluster {
        let text = format!(
            "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n{fleet}"
        );
        match zkop_spec::parse_spec(&text) {
            Ok(spec) => spec,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn replacing_an_instance_without_a_member_is_refused_by_name() {
        let shared = Shared::new("t".into(), spec(""), Persisted::default());
        assert_eq!(
            shared.request_replace("i-9"),
            Err(ReplaceRefused::NoMember("i-9".into()))
        );
        assert!(shared.lock().replace_requested.is_empty());
    }

    #[test]
    fn an_externally_scaled_group_refuses_zkop_replace_and_records_nothing() {
        let fleet = "  fleet:\n    aws:\n      region: us-east-1\n      autoScalingGroupName: g\n      scaling: external\n  ids:\n    cloudwatchLogs:\n      logGroup: /zkop/t/ids\n  state:\n    dynamodb:\n      table: t\n";
        let shared = Shared::new("t".into(), spec(fleet), Persisted::default());
        let refused = shared.request_replace("i-1");
        assert_eq!(refused, Err(ReplaceRefused::ExternallyScaled));
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("spec.fleet.aws.scaling: external")
        );
        assert!(shared.lock().replace_requested.is_empty());
    }
}
