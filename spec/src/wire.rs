//! What the controller and its agents (and the CLI) say to each other over HTTP.
//! JSON, camelCase.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::InstanceId;
use crate::backup::drill::DrillRecord;
use crate::backup::{BackupTarget, RestoreFrom};
use crate::zk::{ConfigVersion, DynamicConfig, MemberRole, Server, ServerId, ServerMode, Zxid};

/// What the controller wants one instance's agent to do. Agents long-poll it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredNodeState {
    /// The cluster's name.
    pub cluster: String,
    /// The controller's leadership epoch; agents refuse a lower one than they have seen.
    pub epoch: u64,
    /// Bumped whenever anything the controller wants changes.
    pub revision: u64,
    /// The instance this is for.
    pub instance: InstanceId,
    /// The work this agent's node should do.
    pub node: NodeAssignment,
    /// The controller is at work on the cluster (anything but `Running`):
    /// probe the server every 200 ms, not at the steady pace of once a
    /// second (its next step often waits on a probe). Absent from an older
    /// controller: probe closely.
    #[serde(default = "probe_closely_by_default")]
    pub probe_closely: bool,
}

fn probe_closely_by_default() -> bool {
    true
}

/// The job of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum NodeAssignment {
    /// No member here (yet): run nothing.
    Idle,
    /// Run ZooKeeper as server `server_id`.
    Member(Box<MemberAssignment>),
    /// The member has left the config: stop ZooKeeper and keep it stopped.
    Retired {
        /// The id it had.
        server_id: ServerId,
    },
}

/// How to run a member's ZooKeeper server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberAssignment {
    /// The server id (`myid`).
    pub server_id: ServerId,
    /// The config to start with when the node has none that lists it: the bootstrap
    /// config, or (for a joiner) the current config plus itself as an observer.
    pub initial_config: DynamicConfig,
    /// Static `zoo.cfg` keys (the agent adds `dataDir` and keeps ZooKeeper's
    /// `dynamicConfigFile`).
    pub static_config: BTreeMap<String, String>,
    /// JVM heap in MiB.
    pub heap_mb: u32,
    /// Extra JVM flags.
    pub jvm_flags: Vec<String>,
    /// A reconfig this agent should run against its server, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconfig: Option<ReconfigOrder>,
    /// A quorum-loss recovery: restart the server under this config (only the
    /// survivors, versioned just above the last committed one). Applied once
    /// per generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// Restart generation (`zkop roll`): a rise restarts the server even with
    /// unchanged settings.
    #[serde(default)]
    pub roll: u64,
    /// The ZooKeeper release to run (`spec.zookeeper.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper_version: Option<String>,
    /// Seed the data directory from this backup before the first start; only
    /// ever into an empty data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreFrom>,
    /// Ship this member's transactions to the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<ShipOrder>,
}

/// The backup shipping job of one member, fenced by the controller's epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipOrder {
    /// Where to ship.
    pub target: BackupTarget,
    /// How old the newest shipped transaction may be, in milliseconds.
    pub recovery_point_ms: u64,
    /// How old the newest point's snapshot may get before the shipper makes
    /// one offline (ms; none: never).
    #[serde(default)]
    pub snapshot_every_ms: Option<u64>,
    /// How often the shipper runs a restore drill (ms; none: never).
    #[serde(default)]
    pub verify_every_ms: Option<u64>,
    /// The newest transaction the survivors of the last forced recovery
    /// held (the controller's record): a point holding later ones of its
    /// epoch is the lost voters' branch, even to a member whose logs
    /// cannot tell (one synced by a snapshot since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_fork: Option<Zxid>,
}

impl MemberAssignment {
    /// Whether the server runs with TLS keys (quorum TLS, from the first
    /// stage of a live switch-on), and so needs its node certificate.
    pub fn tls(&self) -> bool {
        self.static_config.contains_key("sslQuorum")
    }

    /// The secure client port, with TLS on.
    pub fn secure_client_port(&self) -> Option<u16> {
        self.static_config.get("secureClientPort")?.parse().ok()
    }

    /// What the server must run with; the agent restarts it when these differ
    /// from what it was started with.
    pub fn settings(&self) -> ServerSettings {
        ServerSettings {
            static_config: self.static_config.clone(),
            heap_mb: self.heap_mb,
            jvm_flags: self.jvm_flags.clone(),
            roll: self.roll,
            zookeeper_version: self.zookeeper_version.clone(),
        }
    }
}

/// The settings a server runs with that only a restart changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSettings {
    /// Static `zoo.cfg` keys.
    pub static_config: BTreeMap<String, String>,
    /// JVM heap in MiB.
    pub heap_mb: u32,
    /// Extra JVM flags.
    pub jvm_flags: Vec<String>,
    /// Restart generation (`zkop roll`).
    #[serde(default)]
    pub roll: u64,
    /// The ZooKeeper release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper_version: Option<String>,
}

/// A forced config after a quorum loss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// Rises with every recovery; an agent applies each generation once.
    pub generation: u64,
    /// The survivors' config, with its version.
    pub config: DynamicConfig,
}

/// An incremental reconfig to run, conditional on the config version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconfigOrder {
    /// Identifies the order; results echo it.
    pub seq: u64,
    /// Run only if the committed config still has this version.
    pub from_version: ConfigVersion,
    /// Servers to add, or whose role changes.
    pub joining: Vec<Server>,
    /// Servers to remove.
    pub leaving: Vec<ServerId>,
}

/// What an agent sees on its node, posted to the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentReport {
    /// The instance id.
    pub instance: InstanceId,
    /// The address the agent advertises for its server.
    pub address: String,
    /// The highest controller epoch it has seen.
    pub epoch_seen: u64,
    /// The revision of the last desired state it acted on.
    pub revision_seen: u64,
    /// The id in its data directory's `myid`, if any.
    #[serde(default)]
    pub server_id: Option<ServerId>,
    /// The supervised ZooKeeper process.
    pub process: ProcessReport,
    /// What the four-letter words said, when the server answered.
    #[serde(default)]
    pub probe: Option<ProbeReport>,
    /// The last zxid in the data directory, read from its files while the
    /// server is not serving (for choosing survivors after a quorum loss).
    #[serde(default)]
    pub disk_zxid: Option<Zxid>,
    /// The highest config version among the node's own dynamic config files.
    #[serde(default)]
    pub disk_config_version: Option<ConfigVersion>,
    /// The outcome of the last reconfig order it ran.
    #[serde(default)]
    pub reconfig: Option<ReconfigResult>,
    /// Recent problems, newest last.
    #[serde(default)]
    pub errors: Vec<String>,
    /// The settings the running server was started with.
    #[serde(default)]
    pub settings: Option<ServerSettings>,
    /// The backup shipping this agent does, when it is the shipper.
    #[serde(default)]
    pub backup: Option<ShippingReport>,
    /// When its node certificate expires (ms since the Unix epoch), with TLS on.
    #[serde(default)]
    pub certificate_not_after_ms: Option<u64>,
    /// When the certificate its running server started with expires: the
    /// one the secure client port shows until a restart (ZooKeeper 3.8
    /// reloads the quorum's certificate, not the client port's).
    #[serde(default)]
    pub served_certificate_not_after_ms: Option<u64>,
    /// The ZooKeeper releases installed on its instance (`3.9.5`), or none
    /// when the agent runs a classpath of its own (`--zookeeper-classpath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_releases: Option<Vec<String>>,
    /// Space on the filesystem of ZooKeeper's data directory.
    #[serde(default)]
    pub data_disk: Option<DiskSpace>,
}

pub use crate::disk::{DATA_DISK_FULL_BELOW_BYTES, DiskSpace};
pub use crate::process::ProcessReport;

/// What the shipping agent has shipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShippingReport {
    /// The point it ships to (its manifest key).
    #[serde(default)]
    pub point: Option<String>,
    /// The newest transaction shipped.
    #[serde(default)]
    pub newest_zxid: Option<Zxid>,
    /// When that transaction was proposed (ms since the Unix epoch): the
    /// recovery point measured is now minus this, while writes come in.
    #[serde(default)]
    pub newest_time_ms: Option<u64>,
    /// When the backup last caught up with the server (ms since the Unix epoch).
    #[serde(default)]
    pub caught_up_ms: Option<u64>,
    /// When the last shipment ran (ms since the Unix epoch).
    #[serde(default)]
    pub tick_ms: Option<u64>,
    /// At the last shipment, how old the oldest transaction the server had
    /// processed and the backup lacked was (0: none); unknown after a failure.
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// Bytes shipped since the agent started.
    pub bytes_shipped: u64,
    /// Bytes of transaction logs read from disk to ship them, since the
    /// agent started (each read goes on from where the last stopped).
    #[serde(default)]
    pub log_bytes_read: u64,
    /// The last shipping problem, until a shipment succeeds.
    #[serde(default)]
    pub error: Option<String>,
    /// The newest restore drill recorded in the backup.
    #[serde(default)]
    pub last_drill: Option<DrillRecord>,
    /// The newest successful one.
    #[serde(default)]
    pub last_good_drill: Option<DrillRecord>,
}

impl AgentReport {
    /// Whether `other` says something this one does not, zxids aside (they
    /// move with every write): worth telling the controller at once.
    pub fn differs_from(&self, other: &AgentReport) -> bool {
        let without_zxids = |r: &AgentReport| {
            let mut r = r.clone();
            r.disk_zxid = None;
            r.backup = None;
            // Free space moves with every write too; a full disk is news.
            r.data_disk = r.data_disk.map(|d| DiskSpace {
                free_bytes: u64::from(d.full()),
                total_bytes: 0,
            });
            if let Some(p) = r.probe.as_mut() {
                p.zxid = None;
            }
            r
        };
        without_zxids(self) != without_zxids(other)
    }
}

/// What `srvr` and `conf` said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeReport {
    /// Whether the server serves requests (has a quorum).
    pub serving: bool,
    /// Its mode when serving.
    #[serde(default)]
    pub mode: Option<ServerMode>,
    /// Its last zxid when serving.
    #[serde(default)]
    pub zxid: Option<Zxid>,
    /// The membership it knows, with version.
    #[serde(default)]
    pub config: Option<DynamicConfig>,
    /// The ZooKeeper release it runs (`3.8.0`), when it said.
    #[serde(default)]
    pub version: Option<String>,
}

/// The outcome of a reconfig order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReconfigResult {
    /// The order's seq.
    pub seq: u64,
    /// The new config when it succeeded.
    #[serde(default)]
    pub config: Option<DynamicConfig>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// The cluster as `zkop status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReply {
    /// The cluster's name.
    pub cluster: String,
    /// What clients connect with: every serving voter and observer in the
    /// committed config, `address:clientPort`, by server id, comma-separated
    /// (empty while none serves).
    #[serde(default)]
    pub connect_string: String,
    /// Its phase (see the controller's `Phase`).
    pub phase: String,
    /// Why it is in that phase.
    pub reason: String,
    /// The committed config version, when known.
    pub config_version: Option<ConfigVersion>,
    /// One row per member.
    pub members: Vec<MemberStatus>,
    /// Recent events, oldest first.
    pub events: Vec<Event>,
    /// The last reconcile error, until a pass succeeds again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Backups, when the spec asks for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// How far TLS is on in the servers (none: plaintext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls_stage::TlsStage>,
    /// How many more voters can stop serving with the quorum kept (none:
    /// no config yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_tolerance: Option<usize>,
    /// How many whole zones can be lost (the most crowded first) with the
    /// quorum kept (none: no config yet, or a voter's zone is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_failure_tolerance: Option<usize>,
    /// The ZooKeeper release the spec names: members on another are being
    /// upgraded or rolled back to it.
    #[serde(default)]
    pub zookeeper_version: Option<String>,
    /// Set when the controller answering does not lead the cluster: the
    /// leader's URL (empty when unknown). Everything else is then as this
    /// controller last saw it, not the cluster now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<String>,
    /// The consistency canary, when `spec.canary` runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::canary::CanaryStatus>,
}

/// Backups as `zkop status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// Where it ships (`dir:PATH`, `s3://bucket/prefix`).
    pub target: String,
    /// The member shipping, if any serves.
    pub shipper: Option<ServerId>,
    /// The point it ships to.
    pub point: Option<String>,
    /// The newest transaction shipped.
    pub newest_zxid: Option<Zxid>,
    /// The recovery point measured (ms): at the last shipment, the age of the
    /// oldest transaction the shipper's server had processed and the backup
    /// lacked (0: none); the time since it, once shipments stop; unknown
    /// after a failed one.
    pub age_ms: Option<u64>,
    /// The recovery point the spec asks for (ms).
    pub recovery_point_ms: u64,
    /// Whether the measured recovery point is past the spec's (or nothing ships).
    pub behind: bool,
    /// When the newest transaction shipped was proposed (ms since the Unix
    /// epoch): a loss now would lose what came after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_time_ms: Option<u64>,
    /// Bytes shipped by the current shipper since its agent started.
    pub bytes_shipped: u64,
    /// Bytes of transaction logs it read to ship them.
    #[serde(default)]
    pub log_bytes_read: u64,
    /// The shipper's last problem, until a shipment succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The newest restore drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<DrillRecord>,
    /// When a drill last proved the backup restorable (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good_drill_ms: Option<u64>,
}

/// One member in `zkop status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Server id.
    pub id: ServerId,
    /// Instance id.
    pub instance: InstanceId,
    /// Advertised address.
    pub address: String,
    /// Client port.
    pub client_port: u16,
    /// What it is now, as `zkop status` shows it.
    pub role: StatusRole,
    /// Its role in the committed config, if listed.
    pub config_role: Option<MemberRole>,
    /// Last zxid seen.
    pub zxid: Option<Zxid>,
    /// Transactions behind the leader's zxid, for a serving member when
    /// countable (`Zxid::lag_behind`).
    #[serde(default)]
    pub zxid_lag: Option<u64>,
    /// Serving and reporting.
    pub healthy: bool,
    /// The instance's availability zone, if the fleet says.
    #[serde(default)]
    pub zone: Option<String>,
    /// The launch template version its instance was launched from, if the
    /// fleet says (`lt-0abc:3`).
    #[serde(default)]
    pub launch_template: Option<String>,
    /// The ZooKeeper release it runs, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper_version: Option<String>,
    /// A known data-loss bug of that release, named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_issue: Option<String>,
    /// The ZooKeeper releases installed on its instance, as its agent
    /// reports them (none: a classpath of one's own, or no report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_releases: Option<Vec<String>>,
    /// With TLS on: when its earlier certificate expires (the client port's
    /// or the quorum's), ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after_ms: Option<u64>,
    /// How long its server has served without a gap, as the leading
    /// controller saw it (seconds): a standby takes a vote only after
    /// serving a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_for_s: Option<u64>,
    /// Free bytes on the filesystem of its data directory, as its agent
    /// last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_free_bytes: Option<u64>,
    /// What keeps it from serving, when its agent knows: its data
    /// directory full, or how its server last exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A member's role as `zkop status`, metrics and the page show it: its role
/// in ZooKeeper when it serves, else where it stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::Display,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum StatusRole {
    /// Serving as the leader.
    Leader,
    /// Serving as a voter that follows.
    Follower,
    /// Serving as a non-voting observer.
    Observer,
    /// Serving, not yet in the committed config.
    Joining,
    /// Leaving: out of the config or on its way out; its instance goes next.
    Leaving,
    /// Not serving (or not reporting).
    Down,
}

impl StatusRole {
    /// The word status shows (`leader`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl PartialEq<&str> for StatusRole {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Something the controller did or saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// A short kind, e.g. `reconfig`, `bootstrap`, `launch`.
    pub kind: String,
    /// What happened, in words.
    pub message: String,
    /// For a step the controller took: how long it took (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
}

/// The cluster's secrets as one SSM SecureString parameter holds them (JSON).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSecrets {
    /// The controller API's bearer token.
    pub api_token: String,
    /// ZooKeeper's super-user password.
    pub super_password: String,
}

impl std::fmt::Debug for ClusterSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret, not even in a debug log.
        f.write_str("ClusterSecrets { .. }")
    }
}

impl ClusterSecrets {
    /// Parses the parameter's value; the error never quotes it.
    pub fn parse(value: &str) -> Result<ClusterSecrets, String> {
        serde_json::from_str(value).map_err(|e| {
            format!(
                "not a JSON object with apiToken and superPassword (at line {}, column {})",
                e.line(),
                e.column()
            )
        })
    }
}

/// The body of every API error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
    /// The leader's URL, when this controller is not the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::ConfigVersion;

    #[test]
    fn a_report_is_news_when_more_than_its_zxids_moved() {
        let base = AgentReport {
            instance: "i-1".into(),
            address: "127.0.10.1".into(),
            epoch_seen: 1,
            revision_seen: 1,
            server_id: Some(ServerId(1)),
            process: ProcessReport::default(),
            probe: Some(ProbeReport {
                serving: true,
                mode: Some(ServerMode::Follower),
                zxid: Some(Zxid::from_u64(0x1_0000_0005)),
                config: None,
                version: Some("3.8.0".into()),
            }),
            disk_zxid: None,
            disk_config_version: None,
            reconfig: None,
            errors: vec![],
            settings: None,
            backup: None,
            certificate_not_after_ms: None,
            served_certificate_not_after_ms: None,
            installed_releases: None,
            data_disk: None,
        };
        let mut writes = base.clone();
        writes.probe.as_mut().unwrap().zxid = Some(Zxid::from_u64(0x1_0000_0009));
        assert!(!writes.differs_from(&base));
        let mut leading = base.clone();
        leading.probe.as_mut().unwrap().mode = Some(ServerMode::Leader);
        assert!(leading.differs_from(&base));
        let mut down = base.clone();
        down.probe = None;
        assert!(down.differs_from(&base));
    }

    fn server(id: u64) -> Server {
        Server {
            id: ServerId(id),
            address: format!("127.0.10.{id}"),
            quorum_port: 2888,
            election_port: 3888,
            role: MemberRole::Participant,
            client_address: format!("127.0.10.{id}"),
            client_port: 2181,
        }
    }

    #[test]
    fn every_assignment_survives_json() {
        let mut config = DynamicConfig::of([server(1), server(2), server(3)]);
        config.version = Some(ConfigVersion(0x1_0000_0000));
        let nodes = [
            NodeAssignment::Idle,
            NodeAssignment::Retired {
                server_id: ServerId(2),
            },
            NodeAssignment::Member(Box::new(MemberAssignment {
                server_id: ServerId(1),
                initial_config: config.clone(),
                static_config: BTreeMap::from([("tickTime".to_string(), "500".to_string())]),
                heap_mb: 128,
                jvm_flags: vec!["-XX:+UseSerialGC".into()],
                reconfig: Some(ReconfigOrder {
                    seq: 4,
                    from_version: ConfigVersion(0x1_0000_0000),
                    joining: vec![server(4)],
                    leaving: vec![ServerId(2)],
                }),
                recovery: Some(Recovery {
                    generation: 1,
                    config: config.clone(),
                }),
                roll: 0,
                zookeeper_version: None,
                restore: Some(RestoreFrom {
                    target: BackupTarget::Dir { path: "/b".into() },
                    to: crate::backup::RestorePoint::Zxid {
                        zxid: Zxid::from_u64(0x1_0000_0009),
                    },
                }),
                backup: Some(ShipOrder {
                    target: BackupTarget::Dir { path: "/b".into() },
                    recovery_point_ms: 5000,
                    snapshot_every_ms: Some(3_600_000),
                    verify_every_ms: None,
                    history_fork: None,
                }),
            })),
        ];
        for node in nodes {
            let d = DesiredNodeState {
                cluster: "c".into(),
                epoch: 2,
                revision: 9,
                instance: "i-0001".into(),
                node,
                probe_closely: false,
            };
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(
                serde_json::from_str::<DesiredNodeState>(&json).unwrap(),
                d,
                "{json}"
            );
        }
    }
}
