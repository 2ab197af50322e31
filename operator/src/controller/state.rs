//! What the loop and the HTTP API share: the running spec, the persisted state
//! and its revision (desired states are computed from them), the report cache,
//! the people's requests, the last plan, the event log, and who leads.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::info;

use zkop_spec::ValidatedCluster;
use zkop_spec::wire::{AgentReport, DesiredNodeState, Event, StatusReply};

use super::leadership::Standing;
use super::observe::{ReportCache, Requests};
use super::status_cache::StatusCache;
use super::status_view::{StatusInput, status_view};
use crate::adapters::FleetView;
use crate::clock::{SharedClock, system};
use crate::desired::desired_for;
use crate::metrics::Metrics;
use crate::model::{Instance, Observed, Persisted};
use crate::plan::{Phase, Plan};

/// Events kept for `zkop status`.
pub const MAX_EVENTS: usize = 50;

/// How often reports from unknown instances may make the controller look at
/// the fleet again.
pub const UNKNOWN_REFRESH: Duration = Duration::from_secs(5);

/// A report from an instance the fleet does not list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance {0} is not in the fleet: its report is not kept (the fleet is looked at again)")]
pub struct UnknownInstance(pub String);

pub(super) struct SharedState {
    pub(super) spec: ValidatedCluster,
    pub(super) persisted: Persisted,
    revision: u64,
    pub(super) reports: ReportCache,
    instances: Vec<Instance>,
    plan: Option<Plan>,
    events: VecDeque<Event>,
    /// Whether this controller leads, and until when.
    standing: Standing,
    /// The epoch another controller stored, while this one is fenced off.
    fenced: Option<u64>,
    /// The last reconcile error, cleared by a good pass.
    last_error: Option<String>,
    pub(super) requests: Requests,
    /// When an unknown instance's report last asked for a look at the fleet.
    refresh_asked_at: Option<tokio::time::Instant>,
    /// Members already warned about their ZooKeeper release, with it.
    warned: std::collections::BTreeSet<(zkop_spec::zk::ServerId, String)>,
    /// Whether the backup was behind its recovery point at the last pass
    /// (`None` until it first caught up).
    backup_behind: Option<bool>,
    /// When the newest restore drill reported ran (ms since the Unix epoch).
    drill_seen_ms: Option<u64>,
    /// Each listed instance's agent key digest, bound at its first contact.
    pub(super) agent_keys: std::collections::BTreeMap<String, [u8; 32]>,
    /// What the consistency canary found last (`spec.canary`).
    pub(super) canary: Option<zkop_spec::canary::CanaryStatus>,
    /// The status page's plots: the last hour's samples, oldest first.
    pub(super) samples: VecDeque<zkop_spec::canary::TimelineSample>,
}

impl SharedState {
    /// Asks for a look at the fleet unless one was asked for within
    /// `UNKNOWN_REFRESH`; whether it asked.
    fn ask_for_fleet_look(&mut self, now: tokio::time::Instant) -> bool {
        let due = self
            .refresh_asked_at
            .is_none_or(|t| now.saturating_duration_since(t) >= UNKNOWN_REFRESH);
        if due {
            self.refresh_asked_at = Some(now);
            self.requests.refresh_fleet = true;
        }
        due
    }
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
    /// Where time comes from.
    pub clock: SharedClock,
    state: Mutex<SharedState>,
    revision_tx: watch::Sender<u64>,
    /// Wakes the loop early: an agent reported something new, or a person
    /// asked for something.
    pub(super) news: Notify,
    /// The cluster CA, when TLS is on (set once at start).
    pub(super) signer: std::sync::OnceLock<super::certificates::Signer>,
    /// The status view, shared until what it shows changes.
    pub(super) status_cache: StatusCache,
}

impl Shared {
    /// Shared state for a controller of `spec`, starting from `persisted`.
    pub fn new(token: String, spec: ValidatedCluster, persisted: Persisted) -> Arc<Self> {
        Self::with_clock(token, spec, persisted, system())
    }

    /// The same, on `clock`.
    pub fn with_clock(
        token: String,
        spec: ValidatedCluster,
        persisted: Persisted,
        clock: SharedClock,
    ) -> Arc<Self> {
        // Revisions start at the wall clock so that they keep rising across restarts.
        let revision = clock.wall_ms();
        let (revision_tx, _) = watch::channel(revision);
        let now = clock.now();
        Arc::new(Self {
            token,
            metrics: Metrics::default(),
            clock,
            state: Mutex::new(SharedState {
                spec,
                persisted,
                revision,
                reports: ReportCache::new(now),
                instances: Vec::new(),
                plan: None,
                events: VecDeque::new(),
                standing: Standing::Follower { leader_url: None },
                fenced: None,
                last_error: None,
                requests: Requests::default(),
                refresh_asked_at: None,
                warned: Default::default(),
                backup_behind: None,
                drill_seen_ms: None,
                agent_keys: Default::default(),
                canary: None,
                samples: VecDeque::new(),
            }),
            revision_tx,
            news: Notify::new(),
            signer: std::sync::OnceLock::new(),
            status_cache: StatusCache::default(),
        })
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The desired state of an instance's node, and the current revision.
    pub fn desired(&self, instance: &str) -> DesiredNodeState {
        let s = self.lock();
        let mut desired = desired_for(&s.spec, &s.persisted, instance, s.revision);
        desired.probe_closely = probes_closely(s.plan.as_ref());
        desired
    }

    /// Notified when the revision changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    /// `None` while this controller leads and its lease holds; otherwise the
    /// leader's URL, if known.
    pub fn follower_of(&self) -> Option<Option<String>> {
        match &self.lock().standing {
            Standing::Follower { leader_url } => Some(leader_url.clone()),
            Standing::Leader { until: Some(u), .. } if self.clock.now() >= *u => Some(None),
            Standing::Leader { .. } => None,
        }
    }

    /// How much longer this controller may act: zero once its lease lapsed
    /// or while it follows, `Duration::MAX` when no lease bounds it.
    pub fn lease_left(&self) -> Duration {
        match &self.lock().standing {
            Standing::Follower { .. } => Duration::ZERO,
            Standing::Leader { until: None, .. } => Duration::MAX,
            Standing::Leader { until: Some(u), .. } => {
                u.saturating_duration_since(self.clock.now())
            }
        }
    }

    pub(super) fn set_standing(&self, standing: Standing) {
        self.lock().standing = standing;
    }

    /// The epoch another controller stored, while it keeps this one off
    /// the cluster.
    pub fn fenced(&self) -> Option<u64> {
        self.lock().fenced
    }

    pub(super) fn set_fenced(&self, epoch: Option<u64>) {
        self.lock().fenced = epoch;
    }

    /// Keeps an agent's report if the fleet lists its instance; news wakes
    /// the loop. A report from an instance the last look at the fleet did
    /// not list asks for another look (at most every `UNKNOWN_REFRESH`).
    pub fn record_report(&self, report: AgentReport) -> Result<(), UnknownInstance> {
        let now = self.clock.now();
        let news = {
            let mut s = self.lock();
            if !s.instances.iter().any(|i| i.id == report.instance) {
                drop(s);
                self.ask_for_fleet_look();
                return Err(UnknownInstance(report.instance.to_string()));
            }
            let news = s.reports.record(report, now);
            // News from an agent (a role, a server stopping) may come with a
            // change of the fleet: look again, as for an unknown instance.
            if news {
                s.ask_for_fleet_look(now);
            }
            news
        };
        if news {
            self.status_cache.invalidate();
            self.news.notify_one();
        }
        Ok(())
    }

    /// Asks the loop for another look at the fleet (an instance it did not
    /// list spoke), at most every `UNKNOWN_REFRESH`.
    pub(super) fn ask_for_fleet_look(&self) {
        let now = self.clock.now();
        let asked = self.lock().ask_for_fleet_look(now);
        if asked {
            self.news.notify_one();
        }
    }

    /// Whether the last look at the fleet listed `instance`.
    pub fn instance_listed(&self, instance: &str) -> bool {
        self.lock().instances.iter().any(|i| i.id == instance)
    }

    /// The address the fleet gave `instance` (its private IP).
    pub fn instance_address(&self, instance: &str) -> Option<String> {
        self.lock()
            .instances
            .iter()
            .find(|i| i.id == instance)
            .and_then(|i| i.private_ip.clone())
    }

    /// Whether an agent of a running instance in `view` has been quiet for `after`.
    pub(super) fn any_agent_quiet(&self, view: &FleetView, after: Duration) -> bool {
        let now = self.clock.now();
        self.lock().reports.any_quiet(view, now, after)
    }

    /// Whether someone asked for a fresh look at the fleet; clears the ask.
    pub(super) fn take_fleet_refresh(&self) -> bool {
        std::mem::take(&mut self.lock().requests.refresh_fleet)
    }

    /// Records an event and logs it.
    pub fn event(&self, kind: &str, message: String) {
        self.event_at(kind, message, self.clock.wall_ms(), None);
    }

    /// Records an event stamped `at_ms` (of a step that took `took`) and
    /// logs it.
    pub(super) fn event_at(&self, kind: &str, message: String, at_ms: u64, took: Option<Duration>) {
        let mut s = self.lock();
        self.status_cache.invalidate();
        info!(cluster = %s.spec.name, kind, "{message}");
        s.events.push_back(Event {
            at_ms,
            kind: kind.to_string(),
            message,
            took_ms: took.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        });
        while s.events.len() > MAX_EVENTS {
            s.events.pop_front();
        }
    }

    pub(super) fn commit(&self, persisted: Persisted) {
        self.change(|s| s.persisted = persisted);
    }

    /// Changes what desired states are computed from, bumping the revision so
    /// long polls answer.
    pub(super) fn change(&self, f: impl FnOnce(&mut SharedState)) {
        let revision = {
            let mut s = self.lock();
            f(&mut s);
            self.status_cache.invalidate();
            s.revision += 1;
            s.revision
        };
        self.revision_tx.send_replace(revision);
    }

    /// Asks for a rolling restart of every member (`zkop roll`).
    pub fn request_roll(&self) {
        self.change(|s| s.requests.roll = true);
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
            s.requests.replace.insert(instance.to_string().into());
        });
        self.news.notify_one();
        Ok(id)
    }

    /// Records the outcome of a pass for `zkop status`.
    pub fn set_last_error(&self, error: Option<String>) {
        let mut s = self.lock();
        if s.last_error != error {
            s.last_error = error;
            self.status_cache.invalidate();
        }
    }

    /// The current spec.
    pub fn spec(&self) -> ValidatedCluster {
        self.lock().spec.clone()
    }

    pub(super) fn set_spec(&self, spec: ValidatedCluster) {
        // Static config and heap ride in desired states.
        self.change(|s| s.spec = spec);
    }

    /// The cluster as `zkop status` shows it; from a controller that does
    /// not lead, saying so and naming the leader.
    pub fn status(&self) -> StatusReply {
        let follows = self.follower_of().map(Option::unwrap_or_default);
        let now = self.clock.now();
        let mut reply = self.status_cache.get_or_build(now, || {
            self.metrics.status_view_built();
            self.build_status(now)
        });
        reply.follows = follows;
        reply
    }

    /// The status view, and when a report it counts turns stale.
    fn build_status(
        &self,
        now: tokio::time::Instant,
    ) -> (StatusReply, Option<tokio::time::Instant>) {
        let s = self.lock();
        let stale_at = s.reports.next_stale(super::STATUS_FRESH, now);
        let tls = crate::desired::tls_stage(&s.spec, &s.persisted);
        let mut reply = status_view(StatusInput {
            cluster: &s.spec.name,
            persisted: &s.persisted,
            reports: &s.reports,
            instances: &s.instances,
            plan: s.plan.as_ref(),
            events: s.events.iter().cloned().collect(),
            last_error: s.last_error.clone(),
            now,
            backup: s.spec.backup.as_ref(),
            wall_ms: self.clock.wall_ms(),
            tls,
            clients_port: tls.clients_port(&s.spec),
        });
        reply.zookeeper_version = Some(s.spec.zookeeper.version.to_string());
        reply.canary = s.canary.clone();
        (reply, stale_at)
    }

    /// Whether the plots take a point now (at most one every 5 s): asked
    /// before building one, which takes a status view.
    pub fn sample_due(&self) -> bool {
        sample_due_at(&self.lock().samples, self.clock.wall_ms())
    }

    /// Adds a point to the plots, stamped now (at most one every 5 s; an
    /// hour kept).
    pub fn record_sample(&self, mut sample: zkop_spec::canary::TimelineSample) {
        const KEEP_MS: u64 = 3_600_000;
        let now = self.clock.wall_ms();
        sample.at_ms = now;
        let mut s = self.lock();
        if !sample_due_at(&s.samples, now) {
            return;
        }
        while s.samples.front().is_some_and(|f| f.at_ms + KEEP_MS < now) {
            s.samples.pop_front();
        }
        s.samples.push_back(sample);
    }

    /// The last hour of samples and the events beside them.
    pub fn timeline(&self) -> zkop_spec::canary::Timeline {
        let s = self.lock();
        zkop_spec::canary::Timeline {
            samples: s.samples.iter().cloned().collect(),
            events: s.events.iter().cloned().collect(),
        }
    }

    /// What the consistency canary found (none: it does not run).
    pub fn set_canary(&self, canary: Option<zkop_spec::canary::CanaryStatus>) {
        self.lock().canary = canary;
        self.status_cache.invalidate();
    }

    /// This pass's inputs: the spec, the persisted state (with the highest
    /// zxid fresh reports carry folded in, saved with the next state change)
    /// and the observation.
    pub(super) fn snapshot(&self, view: FleetView) -> (ValidatedCluster, Persisted, Observed) {
        let now = self.clock.now();
        let wall_ms = self.clock.wall_ms();
        let mut guard = self.lock();
        let s = &mut *guard;
        // A pass's view of the fleet and its agents: status is built anew.
        self.status_cache.invalidate();
        s.instances = view.instances.clone();
        s.reports.keep_only(&view.instances);
        s.agent_keys
            .retain(|id, _| view.instances.iter().any(|i| i.id == id.as_str()));
        let observed = s.reports.observe(view, &s.requests, now, wall_ms);
        let newest = s.reports.newest_zxid(now);
        s.persisted.max_zxid_seen = s.persisted.max_zxid_seen.max(newest);
        let warn: Vec<String> = s
            .persisted
            .members
            .values()
            .filter_map(|m| {
                let version = s.reports.version(&m.instance)?.to_string();
                let bug = zkop_spec::releases::known_data_loss(&version)?;
                s.warned
                    .insert((m.id, version.clone()))
                    .then(|| format!("member {} runs ZooKeeper {version}, a release with a known data-loss bug: {bug}; upgrade it", m.id))
            })
            .collect();
        let out = (s.spec.clone(), s.persisted.clone(), observed);
        drop(guard);
        for message in warn {
            self.event("known_bug", message);
        }
        out
    }

    /// An event when the backup falls behind its recovery point, and when it
    /// catches up again (from its first catching up on).
    pub(super) fn watch_backup(&self) {
        // Without a backup, no status view is built for it (every pass).
        if self.lock().spec.backup.is_none() {
            return;
        }
        let Some(b) = self.status().backup else {
            return;
        };
        let (before, new_drill) = {
            let mut s = self.lock();
            let before = s.backup_behind;
            if before.is_some() || !b.behind {
                s.backup_behind = Some(b.behind);
            }
            let drill = b.last_drill.as_ref().map(|d| d.at_ms);
            let new_drill = drill.is_some() && drill != s.drill_seen_ms;
            if new_drill {
                s.drill_seen_ms = drill;
            }
            (before, new_drill)
        };
        if let Some(d) = b.last_drill.as_ref().filter(|_| new_drill) {
            let (kind, verdict) = if d.ok {
                ("backup_drill_passed", "passed")
            } else {
                ("backup_drill_failed", "FAILED")
            };
            self.event(
                kind,
                format!(
                    "the backup at {} {verdict} its restore drill: {}",
                    b.target, d.detail
                ),
            );
        }
        let age = b
            .age_ms
            .map(|a| format!("{:.1}s", a as f64 / 1000.0))
            .unwrap_or_else(|| "unknown".into());
        match (before, b.behind) {
            (Some(false), true) => self.event(
                "backup_behind",
                format!(
                    "the backup at {} is behind: its recovery point is {age}, the spec asks for at most {:.1}s (shipper {}){}",
                    b.target,
                    b.recovery_point_ms as f64 / 1000.0,
                    b.shipper.map(|s| format!("member {s}")).unwrap_or_else(|| "none".into()),
                    b.error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            ),
            (Some(true), false) => self.event(
                "backup_caught_up",
                format!("the backup at {} caught up: recovery point {age}", b.target),
            ),
            _ => {}
        }
    }

    /// Keeps the latest plan; returns the phase before it.
    pub(super) fn set_plan(&self, plan: Plan) -> Option<Phase> {
        let closely = probes_closely(Some(&plan));
        let (previous, was_closely) = {
            let mut s = self.lock();
            let was_closely = probes_closely(s.plan.as_ref());
            (s.plan.replace(plan).map(|p| p.phase), was_closely)
        };
        if closely == was_closely {
            self.status_cache.invalidate();
        } else {
            // The agents' desired states say how closely to probe.
            self.change(|_| {});
        }
        previous
    }
}

/// How often the plots take a point.
const SAMPLE_EVERY_MS: u64 = 5_000;

/// Whether the plots, holding `samples`, take a point at `now_ms`.
fn sample_due_at(samples: &VecDeque<zkop_spec::canary::TimelineSample>, now_ms: u64) -> bool {
    samples
        .back()
        .is_none_or(|last| now_ms >= last.at_ms + SAMPLE_EVERY_MS)
}

/// Whether agents should probe their servers closely under `plan`: while
/// the controller works (anything but `Running`, which has no steps), its
/// next step often waits on their probes.
fn probes_closely(plan: Option<&Plan>) -> bool {
    plan.is_none_or(|p| p.phase != Phase::Running)
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

    #[tokio::test(start_paused = true)]
    async fn the_plots_take_a_point_every_5_s_and_say_so_before_one_is_built() {
        let clock = Arc::new(crate::clock::PausedClock::new(1_000_000));
        let shared = Shared::with_clock("t".into(), spec(""), Persisted::default(), clock);
        assert!(shared.sample_due());
        shared.record_sample(Default::default());
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert!(!shared.sample_due());
        shared.record_sample(Default::default());
        assert_eq!(shared.timeline().samples.len(), 1);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(shared.sample_due());
        shared.record_sample(Default::default());
        assert_eq!(shared.timeline().samples.len(), 2);
    }

    #[test]
    fn agents_probe_closely_unless_the_cluster_runs_and_learn_of_a_change_at_once() {
        let shared = Shared::new("t".into(), spec(""), Persisted::default());
        let plan = |phase| Plan {
            phase,
            reason: String::new(),
            steps: Vec::new(),
        };
        assert!(shared.desired("i-1").probe_closely, "no plan yet");
        let revision = |s: &Shared| s.desired("i-1").revision;
        let before = revision(&shared);
        shared.set_plan(plan(Phase::Running));
        assert!(!shared.desired("i-1").probe_closely);
        assert!(revision(&shared) > before, "the long polls must answer");
        let before = revision(&shared);
        shared.set_plan(plan(Phase::Running));
        assert_eq!(revision(&shared), before, "no news, no revision");
        shared.set_plan(plan(Phase::Reconciling));
        assert!(shared.desired("i-1").probe_closely);
        assert!(revision(&shared) > before);
    }

    #[test]
    fn replacing_an_instance_without_a_member_is_refused_by_name() {
        let shared = Shared::new("t".into(), spec(""), Persisted::default());
        assert_eq!(
            shared.request_replace("i-9"),
            Err(ReplaceRefused::NoMember("i-9".into()))
        );
        assert!(shared.lock().requests.replace.is_empty());
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
        assert!(shared.lock().requests.replace.is_empty());
    }
}
