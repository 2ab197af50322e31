//! The controller's two pictures of the world: what it persisted (intent and the
//! facts it must never forget) and what it observed this pass (the fleet and the
//! agents' reports). "Unknown" is explicit (`Option`), never guessed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use zkop_spec::InstanceId;
use zkop_spec::wire::{AgentReport, ReconfigOrder, Recovery, ServerSettings};
use zkop_spec::zk::{DynamicConfig, MemberRole, Server, ServerId, Zxid};

/// What must survive a controller crash, and why:
/// - `ever_bootstrapped`: a fresh ensemble is bootstrapped only when this is false,
///   so a restart never bootstraps over live data;
/// - `members`: which instance holds which server id, and the config each was
///   started with (a joiner restarted before it was added needs it again);
/// - `config`: the last committed membership, to plan reconfigs when no member
///   answers;
/// - `reconfig`: the one reconfig in flight, so a restarted controller waits for
///   its outcome instead of issuing a second;
/// - `epoch`: the controller epoch every desired state carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Persisted {
    /// The cluster's name.
    pub cluster: String,
    /// The version this state was stored under; a save is conditional on it, so
    /// a controller that read an older state cannot overwrite a newer one.
    #[serde(default)]
    pub store_version: u64,
    /// The controller epoch; bumped each time a controller takes over.
    pub epoch: u64,
    /// Whether an ensemble was ever bootstrapped from this state.
    pub ever_bootstrapped: bool,
    /// Members by server id.
    pub members: BTreeMap<ServerId, MemberRecord>,
    /// The last committed config known (version `None` until a member reports it).
    pub config: Option<DynamicConfig>,
    /// The reconfig in flight.
    pub reconfig: Option<PendingReconfig>,
    /// The next reconfig order's sequence number.
    pub next_seq: u64,
    /// No reconfig is issued before this time (ms since the Unix epoch) after a failure.
    pub reconfig_not_before_ms: u64,
    /// The last quorum-loss recovery's generation.
    #[serde(default)]
    pub recovery_generation: u64,
    /// The highest zxid any member of this ensemble ever reported: what a
    /// recovery may have lost is measured against it, across controller restarts.
    #[serde(default)]
    pub max_zxid_seen: Option<Zxid>,
    /// Restart generation: `zkop roll` raises it, and every member restarts
    /// once, one at a time.
    #[serde(default)]
    pub roll: u64,
    /// The member a rolling restart restarted last, until the next one.
    #[serde(default)]
    pub rollout: Option<RolloutStep>,
    /// Instances `zkop replace` asked to replace: their members are replaced
    /// as on a new launch template version, one at a time.
    #[serde(default)]
    pub replace: std::collections::BTreeSet<InstanceId>,
    /// Reconfigs failed in a row: the wait before the next one doubles with each.
    #[serde(default)]
    pub reconfig_failures: u32,
    /// Observers whose promotion ZooKeeper refused: each leaves the config
    /// first and is added back as a participant (ARCHITECTURE's rule).
    #[serde(default)]
    pub promote_by_rejoining: std::collections::BTreeSet<ServerId>,
    /// Whether an ensemble ever ran from this state: `spec.bootstrap.restore`
    /// applies only before.
    #[serde(default)]
    pub held_members: bool,
    /// A total loss's restore (`onTotalLoss: restore`), waiting for the next bootstrap.
    #[serde(default)]
    pub pending_restore: Option<zkop_spec::backup::RestoreFrom>,
    /// The member shipping the backup.
    #[serde(default)]
    pub shipper: Option<ServerId>,
    /// Where the last forced recovery forked the history: the newest
    /// transaction its survivors held. A backup point holding later ones
    /// of that epoch holds the lost voters' branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_fork: Option<Zxid>,
    /// Voters that stopped serving for `healing.voterDownAfter` while a
    /// standby was ready: treated as dead (their vote goes to the standby
    /// through the live quorum), then retired once out of the config.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub voters_down: std::collections::BTreeSet<ServerId>,
    /// The config version when a voter was marked down: while the config is
    /// still that one, the standby's swap has not begun, and a voter that
    /// serves again is unmarked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voter_down_config: Option<zkop_spec::zk::ConfigVersion>,
    /// How far TLS is on in the servers (set at bootstrap and by each stage
    /// of a live switch; none in states from before, see `desired::tls_stage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_stage: Option<zkop_spec::tls_stage::TlsStage>,
    /// The API URL of the controller that took the cluster over last (under
    /// `epoch`): a controller fenced off by it names it in its 503s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_url: Option<String>,
}

/// One step of a rolling restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// The member restarted.
    pub member: ServerId,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// The leader's zxid then: the member is caught up once it reaches it.
    pub leader_zxid: Option<Zxid>,
}

/// A server id held by an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    /// The id.
    pub id: ServerId,
    /// The instance holding it.
    pub instance: InstanceId,
    /// Its server line (address from its agent, ports from the spec).
    pub server: Server,
    /// The config it starts with; `None` until it is told to start.
    pub initial_config: Option<DynamicConfig>,
    /// Removed from the config on purpose; its instance is terminated next.
    pub retiring: bool,
    /// Its instance is tagged with the cluster and id and protected from
    /// scale-in (done after the id is claimed: tags follow the lease).
    #[serde(default)]
    pub adopted: bool,
    /// The forced config this member restarts under after a quorum loss.
    #[serde(default)]
    pub recovery: Option<Recovery>,
    /// The settings this member runs with; a rolling restart moves them to the
    /// spec's one member at a time. `None`: the spec's.
    #[serde(default)]
    pub settings: Option<ServerSettings>,
    /// The backup this member's data directory is seeded from before its
    /// first start (the first voter of a restored ensemble).
    #[serde(default)]
    pub restore: Option<zkop_spec::backup::RestoreFrom>,
}

/// A reconfig order handed to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingReconfig {
    /// The order.
    pub order: ReconfigOrder,
    /// The instance whose agent runs it.
    pub via: InstanceId,
    /// Why, in words.
    pub purpose: String,
    /// Members it removes only to add them back (an observer becoming the
    /// replacement of a dead voter): they keep running and are not retired.
    #[serde(default)]
    pub rejoining: Vec<ServerId>,
    /// When it was issued (ms since the Unix epoch).
    pub issued_at_ms: u64,
}

/// An instance's lifecycle as the fleet sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InstanceState {
    /// Launching.
    Pending,
    /// Running.
    Running,
    /// Held by a termination lifecycle hook (`Terminating:Wait`): still alive,
    /// leaving once the controller completes the hook.
    Terminating,
    /// Terminating past its hook (`Terminating`, `Terminating:Proceed`) or in
    /// a state zkop does not know: no place for a member, yet EC2 may still
    /// run it, so not gone either.
    ShuttingDown,
    /// Gone, or going with nothing left to do (terminated, shutting down).
    Terminated,
}

/// One instance of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// Its id.
    pub id: InstanceId,
    /// Its lifecycle state.
    pub state: InstanceState,
    /// Its availability zone, when the fleet knows one.
    pub zone: Option<String>,
    /// The launch template version it was launched from (`lt-0abc:3`), when
    /// the fleet knows it.
    #[serde(default)]
    pub launch_template: Option<String>,
    /// Its private IP, when the fleet knows it: the only address its
    /// member may claim.
    #[serde(default)]
    pub private_ip: Option<String>,
}

/// A report and how old it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenReport {
    /// The report.
    pub report: AgentReport,
    /// Time since it arrived: how old what it says is.
    pub age: Duration,
    /// Time its agent has been silent as this controller observes: since
    /// the report arrived, or since this controller began observing (a
    /// takeover), whichever is later. A leader that takes over judges only
    /// the silence it saw itself.
    pub silent_for: Duration,
    /// Time since a report last said its server serves (or since this
    /// controller began observing); `None`: unknown, never judged by.
    pub served_ago: Option<Duration>,
    /// Time since a report last said its JVM runs (or since this controller
    /// began observing); `None`: unknown, never judged by.
    pub running_ago: Option<Duration>,
    /// How long its server has served without a report saying otherwise;
    /// `None` while it does not serve.
    pub serving_for: Option<Duration>,
    /// How long its server has answered probes without a gap (serving or
    /// not); `None` while it does not answer, or unknown.
    pub answering_for: Option<Duration>,
    /// The highest zxid its reports ever gave (served or read from disk),
    /// even when the latest says nothing: how far a member that
    /// acknowledged and then stalled had come.
    pub zxid_seen: Option<zkop_spec::zk::Zxid>,
}

/// This pass's observation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The fleet's instances (terminated ones may be listed for a while).
    pub instances: Vec<Instance>,
    /// The fleet's desired capacity.
    pub desired_capacity: u32,
    /// The latest report of each instance's agent.
    pub reports: BTreeMap<InstanceId, SeenReport>,
    /// Wall-clock now, in ms since the Unix epoch.
    pub now_ms: u64,
    /// How long no member has reported leading (zero while one does).
    pub leaderless_for: Duration,
    /// `zkop roll` asked for a restart of every member.
    pub roll_requested: bool,
    /// `zkop replace` asked to replace these instances.
    pub replace_requested: std::collections::BTreeSet<InstanceId>,
    /// The launch template version the fleet launches new instances from
    /// (`lt-0abc:4`), when it has one: members on instances launched from
    /// another are replaced, one at a time.
    pub launch_template: Option<String>,
}

impl Observed {
    /// The instance, if the fleet lists it.
    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.id == id)
    }

    /// Whether the fleet says the instance is up (pending or running).
    pub fn instance_up(&self, id: &str) -> bool {
        self.instance(id)
            .is_some_and(|i| matches!(i.state, InstanceState::Pending | InstanceState::Running))
    }

    /// Whether the instance was launched from another launch template version
    /// than the fleet launches from now (unknown on either side: no).
    pub fn outdated(&self, id: &str) -> bool {
        match (&self.launch_template, self.instance(id)) {
            (Some(want), Some(i)) => i.launch_template.as_ref().is_some_and(|v| v != want),
            _ => false,
        }
    }

    /// Whether the instance runs, its server with it: up, or held by a
    /// termination hook (its member may still serve, even lead).
    pub fn instance_alive(&self, id: &str) -> bool {
        self.instance(id).is_some_and(|i| {
            matches!(
                i.state,
                InstanceState::Pending | InstanceState::Running | InstanceState::Terminating
            )
        })
    }

    /// Whether the instance is confirmed gone (terminated, or no longer
    /// listed): only then may its id be released or a config forced without it.
    pub fn instance_gone(&self, id: &str) -> bool {
        self.instance(id)
            .is_none_or(|i| i.state == InstanceState::Terminated)
    }
}

impl MemberRecord {
    /// Whether the member's server is listed in `config`, and how.
    pub fn role_in(&self, config: Option<&DynamicConfig>) -> Option<MemberRole> {
        config.and_then(|c| c.role_of(self.id))
    }
}
