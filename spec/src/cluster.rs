//! The `ZookeeperCluster` spec as a person writes it (YAML), with its defaults.
//!
//! These types only describe the document; [`crate::validate`] turns one into a
//! [`crate::validate::ValidatedCluster`], and nothing after that reads them again.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only `apiVersion` this release understands.
pub const API_VERSION: &str = "zkop/v1alpha1";
/// The only `kind` this release understands.
pub const KIND: &str = "ZookeeperCluster";

/// A ZooKeeper ensemble that zkop keeps running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "ZookeeperCluster")]
pub struct ZookeeperCluster {
    /// Always `zkop/v1alpha1`.
    pub api_version: String,
    /// Always `ZookeeperCluster`.
    pub kind: String,
    /// Names the cluster.
    pub metadata: Metadata,
    /// What the ensemble should look like.
    pub spec: ClusterSpec,
}

/// Identifies the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Lower-case letters, digits and `-`, 1 to 40 characters, starting with a letter.
    /// Used in paths, log group and table keys.
    pub name: String,
}

/// The desired ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Instances wanted, each running one ZooKeeper server (1 to 99, at least `voters.min`).
    pub replicas: u32,
    /// Bounds on the number of voting members (participants); healthy members
    /// beyond the voter count become observers.
    #[serde(default)]
    pub voters: Voters,
    /// Where instances come from.
    #[serde(default)]
    pub fleet: FleetSpec,
    /// How each instance claims its ZooKeeper server id.
    #[serde(default)]
    pub ids: IdsSpec,
    /// Where the controller keeps its durable state. Only with `fleet.aws`;
    /// a local cluster keeps its state in the state directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateSpec>,
    /// Where the API token and ZooKeeper super-user password come from on AWS.
    /// Without it they are files in the state directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretsSpec>,
    /// ZooKeeper server settings.
    #[serde(default)]
    pub zookeeper: ZookeeperSettings,
    /// What zkop does when members or the quorum are lost.
    #[serde(default)]
    pub healing: Healing,
    /// How changes that need ZooKeeper restarted are rolled out.
    #[serde(default)]
    pub rollout: Rollout,
    /// How a change of ZooKeeper release is rolled out.
    #[serde(default)]
    pub upgrade: Upgrade,
    /// A canary that checks the live ensemble's consistency (default: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// Continuous backups of the ensemble's data (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::backup::BackupSpec>,
    /// How the first ensemble starts: empty (default) or restored from a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<crate::backup::BootstrapSpec>,
    /// Where the connect string is published for clients (default: the
    /// controller's state directory and API only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<crate::clients::ClientsSpec>,
    /// TLS on the quorum and for clients (default: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::TlsSpec>,
}

/// Bounds on the number of voters. Both odd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Voters {
    /// Fewest voters the ensemble runs with (odd, default 3).
    #[serde(default = "default_voters_min")]
    pub min: u32,
    /// Most voters the ensemble grows to (odd, at most 9, default 5).
    #[serde(default = "default_voters_max")]
    pub max: u32,
    /// Synced observers kept ready to take a down voter's vote (0 to 2,
    /// default 0), on instances beyond `replicas`.
    #[serde(default)]
    pub standby: u32,
}

fn default_voters_min() -> u32 {
    3
}
fn default_voters_max() -> u32 {
    5
}

impl Default for Voters {
    fn default() -> Self {
        Self {
            min: default_voters_min(),
            max: default_voters_max(),
            standby: 0,
        }
    }
}

/// The source of instances: exactly one of `local` or `aws`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetSpec {
    /// Local processes on loopback addresses (`zkop local up`). The default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalFleet>,
    /// An EC2 Auto Scaling group (`zkop run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsFleet>,
}

impl Default for FleetSpec {
    fn default() -> Self {
        FleetSpec {
            local: Some(LocalFleet::default()),
            aws: None,
        }
    }
}

/// The fleet, once validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Fleet {
    /// Local processes.
    Local(LocalFleet),
    /// An Auto Scaling group.
    Aws(AwsFleet),
}

/// Local processes; the loopback range is chosen with `zkop local up --network`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalFleet {
    /// Simulated availability zones (e.g. `[a, b, c]`): each new instance
    /// goes to the zone with the fewest running instances, as an Auto
    /// Scaling group balances its zones. None: one zone, `local`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// The loopback network the instances take their addresses from (e.g.
    /// `127.0.20.0/24`; default: `zkop local up --network`). Clusters run
    /// from one directory need one each, and they must not overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl LocalFleet {
    /// `fleet.local.network`: a CIDR inside 127.0.0.0/8.
    pub(crate) fn check_network(&self, p: &mut crate::validate::Problems) {
        let Some(cidr) = &self.network else { return };
        match crate::network::parse_cidr(cidr) {
            Ok((addr, _)) if !addr.is_loopback() => p.add(
                "spec.fleet.local.network",
                format!("`{cidr}`: must be inside 127.0.0.0/8"),
            ),
            Ok(_) => {}
            Err(e) => p.add("spec.fleet.local.network", e),
        }
    }

    /// `fleet.local.zones`: distinct names of letters, digits and `-`.
    pub(crate) fn check_zones(&self, p: &mut crate::validate::Problems) {
        let zones = &self.zones;
        for (i, z) in zones.iter().enumerate() {
            let ok = (1..=32).contains(&z.len())
                && z.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                p.add(
                    &format!("spec.fleet.local.zones[{i}]"),
                    format!("must be 1 to 32 letters, digits or `-`, got `{z}`"),
                );
            } else if zones[..i].contains(z) {
                p.add(
                    &format!("spec.fleet.local.zones[{i}]"),
                    format!("`{z}` is listed twice"),
                );
            }
        }
    }
}

/// An EC2 Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsFleet {
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// Name of the Auto Scaling group whose instances run the members.
    pub auto_scaling_group_name: String,
    /// Who sizes the group: `controller` (default: desired capacity follows
    /// `spec.replicas`) or `external` (the group's own policies; membership
    /// follows whatever instances exist, and `replicas` is ignored).
    #[serde(default)]
    pub scaling: Scaling,
    /// The port this cluster's API listens on when `zkop run DIR` runs it
    /// beside other clusters (required there, distinct per cluster; a single
    /// spec file takes `--api`). Agents reach the controller at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_port: Option<u16>,
}

/// Who sizes an Auto Scaling group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Scaling {
    /// The controller sets the desired capacity to `spec.replicas`.
    #[default]
    Controller,
    /// The group's own scaling policies decide; zkop follows.
    External,
}

/// How server ids are claimed: exactly one of `local` or `cloudwatchLogs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdsSpec {
    /// Create-exclusive files in the state directory. The default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalIds>,
    /// One CloudWatch Logs stream per live id in a log group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudwatch_logs: Option<CloudwatchLogsIds>,
}

impl Default for IdsSpec {
    fn default() -> Self {
        IdsSpec {
            local: Some(LocalIds::default()),
            cloudwatch_logs: None,
        }
    }
}

/// The id ledger, once validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Ids {
    /// Files in the state directory.
    Local(LocalIds),
    /// CloudWatch Logs streams.
    CloudwatchLogs(CloudwatchLogsIds),
}

/// Id claims as files in the state directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalIds {}

/// Id leases as CloudWatch Logs streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudwatchLogsIds {
    /// The log group holding one stream per claimed id.
    pub log_group: String,
}

/// Durable controller state on AWS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateSpec {
    /// A DynamoDB table.
    pub dynamodb: DynamodbState,
}

/// A DynamoDB table for state and the controller's leader lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynamodbState {
    /// Table name.
    pub table: String,
}

/// The cluster's secrets in AWS Systems Manager Parameter Store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretsSpec {
    /// A SecureString parameter holding `{"apiToken": "...", "superPassword": "..."}`,
    /// e.g. `/zkop/prod-zk/secrets`.
    pub ssm_parameter: String,
}

/// ZooKeeper server settings. Changing them affects servers started afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZookeeperSettings {
    /// The ZooKeeper release every member runs (default `3.9.5`, the newest
    /// zkop knows without a known data-loss bug). A change rolls members
    /// one at a time onto it; it must be installed on every instance.
    #[serde(default = "default_version")]
    pub version: String,
    /// Known issues of `version` accepted knowingly, by id (e.g.
    /// `ZOOKEEPER-4394`): without them a release with a known data-loss bug,
    /// or a CVE in a feature the spec uses, is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_known_issues: Vec<String>,
    /// Port clients connect to (default 2181).
    #[serde(default = "default_client_port")]
    pub client_port: u32,
    /// Port clients connect to over TLS when `tls.enabled` (default 2281).
    #[serde(default = "default_secure_client_port")]
    pub secure_client_port: u32,
    /// Port followers use to reach the leader (default 2888).
    #[serde(default = "default_quorum_port")]
    pub quorum_port: u32,
    /// Port for leader election (default 3888).
    #[serde(default = "default_election_port")]
    pub election_port: u32,
    /// ZooKeeper's basic time unit in milliseconds (default 2000, 100 to 60000).
    #[serde(default = "default_tick_time")]
    pub tick_time: u32,
    /// Ticks a follower may take to connect and sync to the leader (default 10, 1 to 1000).
    #[serde(default = "default_init_limit")]
    pub init_limit: u32,
    /// Ticks a follower may lag behind the leader (default 5, 1 to 1000).
    #[serde(default = "default_sync_limit")]
    pub sync_limit: u32,
    /// JVM heap in MiB (default 512, 64 to 65536).
    #[serde(default = "default_heap_mb")]
    pub heap_mb: u32,
    /// Extra JVM flags, e.g. `-XX:+UseG1GC` (default none).
    #[serde(default)]
    pub jvm_flags: Vec<String>,
    /// Extra `zoo.cfg` properties passed through as they are, e.g.
    /// `autopurge.snapRetainCount: "5"`. Keys zkop owns are refused.
    #[serde(default)]
    pub server_properties: BTreeMap<String, String>,
}

fn default_version() -> String {
    crate::releases::DEFAULT_VERSION.to_string()
}
fn default_client_port() -> u32 {
    2181
}
fn default_secure_client_port() -> u32 {
    2281
}
fn default_quorum_port() -> u32 {
    2888
}
fn default_election_port() -> u32 {
    3888
}
fn default_tick_time() -> u32 {
    2000
}
fn default_init_limit() -> u32 {
    10
}
fn default_sync_limit() -> u32 {
    5
}
fn default_heap_mb() -> u32 {
    512
}

impl Default for ZookeeperSettings {
    fn default() -> Self {
        Self {
            version: default_version(),
            accept_known_issues: Vec::new(),
            client_port: default_client_port(),
            secure_client_port: default_secure_client_port(),
            quorum_port: default_quorum_port(),
            election_port: default_election_port(),
            tick_time: default_tick_time(),
            init_limit: default_init_limit(),
            sync_limit: default_sync_limit(),
            heap_mb: default_heap_mb(),
            jvm_flags: Vec::new(),
            server_properties: BTreeMap::new(),
        }
    }
}

/// What zkop does about lost members and a lost quorum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Healing {
    /// On quorum loss: `recover` (default) or `wait` (report only).
    #[serde(default)]
    pub quorum_loss: QuorumLossPolicy,
    /// When no member survives: `wait` (default), `bootstrap` a fresh, empty
    /// ensemble, or `restore` the newest backup point (needs `spec.backup`).
    #[serde(default)]
    pub on_total_loss: TotalLossPolicy,
    /// How long without a leader before quorum loss is declared (default `10s`).
    #[serde(default = "default_detect_after")]
    #[schemars(schema_with = "crate::duration::schema")]
    pub detect_after: String,
    /// How long a member may stay silent before it is treated as dead (default `60s`).
    #[serde(default = "default_member_dead_after")]
    #[schemars(schema_with = "crate::duration::schema")]
    pub member_dead_after: String,
    /// With `voters.standby`: how long a voter may not serve before a
    /// standby takes its vote (default `10s`; shorter than `memberDeadAfter`).
    #[serde(default = "default_voter_down_after")]
    #[schemars(schema_with = "crate::duration::schema")]
    pub voter_down_after: String,
}

/// Rolling restarts: one member at a time, observers first, the leader last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// How long a restarted member may take to serve again and catch up
    /// before the roll-out halts (default `5m`).
    #[serde(default = "default_rollout_timeout")]
    #[schemars(schema_with = "crate::duration::schema")]
    pub timeout: String,
}

impl Default for Rollout {
    fn default() -> Self {
        Self {
            timeout: default_rollout_timeout(),
        }
    }
}

fn default_rollout_timeout() -> String {
    "5m".into()
}

/// A change of `zookeeper.version`: a roll-out whose first member is a canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upgrade {
    /// How long the first member on the new release must serve before the
    /// next restarts (default `2m`, `0s` to 24h).
    #[serde(default = "default_canary_for")]
    #[schemars(schema_with = "crate::duration::schema")]
    pub canary_for: String,
}

impl Default for Upgrade {
    fn default() -> Self {
        Self {
            canary_for: default_canary_for(),
        }
    }
}

/// The consistency canary: the controller writes a counter under
/// `/zkop/canary` with compare-and-set and reads it back through every
/// member, checking what ZooKeeper promises (docs/reliability.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Canary {
    /// How often a round runs (`1s` to `1h`; `10s` suits most).
    #[schemars(schema_with = "crate::duration::schema")]
    pub every: String,
}

fn default_canary_for() -> String {
    "2m".into()
}

// Kept as text here and parsed by validation, so that a bad duration is
// reported at its own field path.
fn default_detect_after() -> String {
    "10s".into()
}
fn default_member_dead_after() -> String {
    "60s".into()
}

fn default_voter_down_after() -> String {
    "10s".into()
}

impl Default for Healing {
    fn default() -> Self {
        Self {
            quorum_loss: QuorumLossPolicy::default(),
            on_total_loss: TotalLossPolicy::default(),
            detect_after: default_detect_after(),
            member_dead_after: default_member_dead_after(),
            voter_down_after: default_voter_down_after(),
        }
    }
}

/// What to do on quorum loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum QuorumLossPolicy {
    /// Fence the lost voters and rebuild from the survivors, but never while
    /// a lost voter whose instance is still up was seen ahead of every
    /// survivor (its acknowledged transactions would be discarded): then
    /// wait until it comes back or its instance is gone.
    #[default]
    Recover,
    /// Recover even when a lost voter was seen ahead of every survivor: the
    /// transactions only it holds are lost (and reported).
    RecoverLosing,
    /// Only report.
    Wait,
}

/// What to do when no member survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TotalLossPolicy {
    /// Report and wait for a person.
    #[default]
    Wait,
    /// Bootstrap a fresh, empty ensemble (the data is gone).
    Bootstrap,
    /// Bootstrap a new ensemble from the cluster's own newest backup point.
    Restore,
}
