//! Spec loading and validation: YAML text -> [`ValidatedCluster`], or every
//! problem found, each naming its field path (`spec.voters.max: must be odd, got 4`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub(crate) use crate::duration::check_duration;

use crate::backup::{BackupPolicy, RestoreFrom};
use crate::cluster::{
    API_VERSION, ClusterSpec, DynamodbState, Fleet, FleetSpec, Ids, IdsSpec, KIND,
    QuorumLossPolicy, StateSpec, TotalLossPolicy, ZookeeperCluster, ZookeeperSettings,
};
use crate::zk;
use crate::zk::largest_odd_at_most;

/// One thing wrong with a spec, at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// Dotted field path, e.g. `spec.voters.max`.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text is not YAML at all (expected for typos in indentation or quoting).
    #[error("malformed YAML at line {line}, column {column}: {reason}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's words.
        reason: String,
    },
    /// The YAML does not fit the spec's shape or its rules; one line per problem.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<SpecProblem>),
}

impl SpecError {
    /// Each problem on its own line.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

/// ZooKeeper settings after validation: ports fit in `u16`.
#[derive(Debug, Clone, PartialEq)]
pub struct ZkSettings {
    /// The ZooKeeper release members run.
    pub version: crate::releases::Release,
    /// Client port.
    pub client_port: u16,
    /// Secure client port (bound only with TLS on).
    pub secure_client_port: u16,
    /// Quorum (follower to leader) port.
    pub quorum_port: u16,
    /// Leader election port.
    pub election_port: u16,
    /// Tick in milliseconds.
    pub tick_time: u32,
    /// Init limit in ticks.
    pub init_limit: u32,
    /// Sync limit in ticks.
    pub sync_limit: u32,
    /// Heap in MiB.
    pub heap_mb: u32,
    /// Extra JVM flags.
    pub jvm_flags: Vec<String>,
    /// Passthrough `zoo.cfg` properties (none of them owned by zkop).
    pub server_properties: BTreeMap<String, String>,
}

/// A spec that passed validation; nothing downstream reads the raw spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedCluster {
    /// `metadata.name`.
    pub name: String,
    /// Instances wanted.
    pub replicas: u32,
    /// Fewest voters (odd).
    pub voters_min: u32,
    /// Most voters (odd).
    pub voters_max: u32,
    /// Standby observers kept ready for a down voter's vote.
    pub standby: u32,
    /// Where instances come from.
    pub fleet: Fleet,
    /// How ids are claimed.
    pub ids: Ids,
    /// Durable state on AWS.
    pub state: Option<DynamodbState>,
    /// The SSM parameter holding the secrets, if any.
    pub secrets_parameter: Option<String>,
    /// ZooKeeper settings.
    pub zookeeper: ZkSettings,
    /// Healing policy.
    pub healing: HealingPolicy,
    /// `rollout.timeout`: how long a restarted member may take to come back.
    pub rollout_timeout: Duration,
    /// `upgrade.canaryFor`: how long the first member on a new release
    /// serves before the next restarts.
    pub upgrade_canary_for: Duration,
    /// `spec.canary.every`, when the consistency canary runs.
    pub canary_every: Option<Duration>,
    /// `spec.backup`, when the cluster ships backups.
    pub backup: Option<BackupPolicy>,
    /// `spec.bootstrap.restore`, when the first ensemble is seeded from a backup.
    pub restore: Option<RestoreFrom>,
    /// Where the connect string is published.
    pub clients: crate::clients::ClientsPolicy,
    /// `spec.tls`, when TLS is on.
    pub tls: Option<crate::tls::TlsPolicy>,
    /// `spec.tls`'s settings, whether or not TLS is on: switching it off
    /// live walks back through them.
    pub tls_settings: crate::tls::TlsPolicy,
}

/// The healing policy, durations parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct HealingPolicy {
    /// On quorum loss.
    pub quorum_loss: QuorumLossPolicy,
    /// When no member survives.
    pub on_total_loss: TotalLossPolicy,
    /// How long without a leader before quorum loss is declared.
    pub detect_after: Duration,
    /// How long a silent member may stay before it is dead.
    pub member_dead_after: Duration,
    /// How long a voter may not serve before a standby takes its vote.
    pub voter_down_after: Duration,
}

impl ValidatedCluster {
    /// The voter count the spec asks for: the largest odd number no greater than
    /// `replicas` and `voters.max` (never below `voters.min`, which validation ensures).
    pub fn target_voters(&self) -> usize {
        self.target_voters_for(self.replicas)
    }

    /// The voter count for `members` members: the largest odd number no greater
    /// than `members` and `voters.max`.
    pub fn target_voters_for(&self, members: u32) -> usize {
        largest_odd_at_most(members.min(self.voters_max)) as usize
    }

    /// Whether the fleet is sized by someone else (`fleet.aws.scaling: external`).
    pub fn externally_scaled(&self) -> bool {
        matches!(&self.fleet, Fleet::Aws(a) if a.scaling == crate::cluster::Scaling::External)
    }

    /// The static `zoo.cfg` keys every server gets once TLS is as the spec says.
    pub fn static_properties(&self) -> BTreeMap<String, String> {
        self.static_properties_at(crate::tls_stage::TlsStage::target(self))
    }

    /// `healing.memberDeadAfter`.
    pub fn member_dead_after(&self) -> Duration {
        self.healing.member_dead_after
    }

    /// A one-line summary for `zkop validate`.
    pub fn summary(&self) -> String {
        let fleet = match &self.fleet {
            Fleet::Local(_) => "local".to_string(),
            Fleet::Aws(a) => format!("aws {} in {}", a.auto_scaling_group_name, a.region),
        };
        let backup = self
            .backup
            .as_ref()
            .map(|b| {
                format!(
                    ", backup to {} (recovery point {}s)",
                    b.target,
                    b.recovery_point.as_secs()
                )
            })
            .unwrap_or_default();
        format!(
            "{}: {} replicas, {} voters (min {}, max {}), fleet {}, client port {}{backup}",
            self.name,
            self.replicas,
            self.target_voters(),
            self.voters_min,
            self.voters_max,
            fleet,
            self.zookeeper.client_port
        )
    }
}

/// Parses and validates spec YAML.
pub fn parse_spec(text: &str) -> Result<ValidatedCluster, SpecError> {
    if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        return Err(SpecError::Malformed {
            line,
            column,
            reason: strip_location(&e.to_string()),
        });
    }
    // serde_yaml's messages start with the field path (`spec.voters: unknown field ...`).
    let raw: ZookeeperCluster = serde_yaml::from_str(text).map_err(|e| {
        let msg = strip_location(&e.to_string());
        let (path, reason) = match msg.split_once(": ") {
            Some((path, reason)) if !path.contains(' ') => (path.to_string(), reason.to_string()),
            _ => ("(document)".to_string(), msg.clone()),
        };
        let reason = match e.location() {
            Some(l) => format!("{reason} (line {}, column {})", l.line(), l.column()),
            None => reason,
        };
        SpecError::Invalid(vec![SpecProblem { path, reason }])
    })?;
    validate(raw)
}

// serde_yaml appends " at line L column C"; we report location ourselves.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The problems found so far.
pub(crate) struct Problems(Vec<SpecProblem>);

impl Problems {
    /// A problem at `path`.
    pub(crate) fn add(&mut self, path: &str, reason: impl Into<String>) {
        self.0.push(SpecProblem {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    /// A problem unless `lo <= v <= hi`.
    pub(crate) fn range(&mut self, path: &str, v: u32, lo: u32, hi: u32) {
        if v < lo || v > hi {
            self.add(path, format!("must be between {lo} and {hi}, got {v}"));
        }
    }
}

/// Checks the rules the types cannot express.
pub fn validate(raw: ZookeeperCluster) -> Result<ValidatedCluster, SpecError> {
    let mut p = Problems(Vec::new());
    check_header(&mut p, &raw);
    let s = &raw.spec;
    check_counts(&mut p, s);
    let placement = check_placement(&mut p, &s.fleet, &s.ids, &s.state);
    let zookeeper = check_zookeeper(&mut p, &s.zookeeper);
    let healing = crate::healing::check_healing(&mut p, s);
    let (rollout_timeout, upgrade_canary_for) = check_rollout(&mut p, s);
    let canary_every = s
        .canary
        .as_ref()
        .and_then(|c| check_duration(&mut p, "spec.canary.every", &c.every, (1, 3600), "1h"));
    let secrets_parameter = check_secrets(&mut p, s);
    let backup = crate::backup::check_backup(&mut p, &s.backup);
    let restore = crate::backup::check_bootstrap(&mut p, &s.bootstrap);
    let clients = crate::clients::check_clients(&mut p, &s.clients, s.fleet.aws.is_some());
    let tls_spec = s.tls.clone().unwrap_or_default();
    crate::releases::check_version(&mut p, &s.zookeeper, tls_spec.enabled);
    let tls_settings = crate::tls::check_tls(
        &mut p,
        &tls_spec,
        s.fleet.aws.is_some() && s.secrets.is_none(),
    );
    if s.healing.on_total_loss == TotalLossPolicy::Restore && s.backup.is_none() {
        p.add(
            "spec.healing.onTotalLoss",
            "`restore` needs spec.backup: a total loss restores the cluster's own newest backup point",
        );
    }
    let (
        Some((fleet, ids, state)),
        Some(zookeeper),
        Some(healing),
        Some(rollout_timeout),
        Some(upgrade_canary_for),
        Some(backup),
        Some(restore),
        Some(tls_settings),
        true,
    ) = (
        placement,
        zookeeper,
        healing,
        rollout_timeout,
        upgrade_canary_for,
        backup,
        restore,
        tls_settings,
        p.0.is_empty(),
    )
    else {
        return Err(SpecError::Invalid(p.0));
    };
    Ok(ValidatedCluster {
        name: raw.metadata.name,
        replicas: s.replicas,
        voters_min: s.voters.min,
        voters_max: s.voters.max,
        standby: s.voters.standby,
        fleet,
        ids,
        state,
        secrets_parameter,
        zookeeper,
        healing,
        rollout_timeout,
        upgrade_canary_for,
        canary_every,
        backup,
        restore,
        clients,
        tls: Some(tls_settings.clone()).filter(|_| tls_spec.enabled),
        tls_settings,
    })
}

/// `rollout.timeout` and `upgrade.canaryFor`.
fn check_rollout(p: &mut Problems, s: &ClusterSpec) -> (Option<Duration>, Option<Duration>) {
    let timeout = check_duration(
        p,
        "spec.rollout.timeout",
        &s.rollout.timeout,
        (10, 86_400),
        "24h",
    );
    let canary_for = check_duration(
        p,
        "spec.upgrade.canaryFor",
        &s.upgrade.canary_for,
        (0, 86_400),
        "24h",
    );
    (timeout, canary_for)
}

/// `apiVersion`, `kind` and `metadata.name`.
fn check_header(p: &mut Problems, raw: &ZookeeperCluster) {
    if raw.api_version != API_VERSION {
        p.add(
            "apiVersion",
            format!("must be `{API_VERSION}`, got `{}`", raw.api_version),
        );
    }
    if raw.kind != KIND {
        p.add("kind", format!("must be `{KIND}`, got `{}`", raw.kind));
    }
    let name = &raw.metadata.name;
    let name_ok = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        p.add(
            "metadata.name",
            format!(
                "must be 1 to 40 lower-case letters, digits or `-`, starting with a letter, got `{name}`"
            ),
        );
    }
}

/// Voter bounds and replicas.
fn check_counts(p: &mut Problems, s: &ClusterSpec) {
    for (path, v) in [
        ("spec.voters.min", s.voters.min),
        ("spec.voters.max", s.voters.max),
    ] {
        if v % 2 == 0 {
            p.add(path, format!("must be odd, got {v}"));
        }
        p.range(path, v, 1, 9);
    }
    if s.voters.max < s.voters.min {
        p.add(
            "spec.voters.max",
            format!(
                "must be at least voters.min ({}), got {}",
                s.voters.min, s.voters.max
            ),
        );
    }
    p.range("spec.replicas", s.replicas, 1, 99);
    if s.replicas < s.voters.min {
        p.add(
            "spec.replicas",
            format!(
                "must be at least voters.min ({}), got {}",
                s.voters.min, s.replicas
            ),
        );
    }
}

/// `spec.secrets`: only with fleet.aws, and a valid SSM parameter name.
fn check_secrets(p: &mut Problems, s: &ClusterSpec) -> Option<String> {
    let secrets_parameter = s.secrets.as_ref().map(|x| x.ssm_parameter.clone());
    if let Some(name) = &secrets_parameter {
        if s.fleet.aws.is_none() {
            p.add(
                "spec.secrets",
                "only with fleet.aws: a local cluster keeps its secrets in the state directory",
            );
        }
        let ok = !name.is_empty()
            && name.len() <= 2048
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
        if !ok {
            p.add(
                "spec.secrets.ssmParameter",
                format!("must be an SSM parameter name (letters, digits, `/_.-`), got `{name}`"),
            );
        }
    }
    secrets_parameter
}

fn check_placement(
    p: &mut Problems,
    fleet: &FleetSpec,
    ids: &IdsSpec,
    state: &Option<StateSpec>,
) -> Option<(Fleet, Ids, Option<DynamodbState>)> {
    let fleet = match (&fleet.local, &fleet.aws) {
        (Some(l), None) => {
            l.check_zones(p);
            l.check_network(p);
            Fleet::Local(l.clone())
        }
        (None, Some(a)) => Fleet::Aws(a.clone()),
        _ => {
            p.add("spec.fleet", "must set exactly one of `local` or `aws`");
            return None;
        }
    };
    let ids = match (&ids.local, &ids.cloudwatch_logs) {
        (Some(l), None) => Ids::Local(l.clone()),
        (None, Some(c)) => Ids::CloudwatchLogs(c.clone()),
        _ => {
            p.add(
                "spec.ids",
                "must set exactly one of `local` or `cloudwatchLogs`",
            );
            return None;
        }
    };
    let state = state.as_ref().map(|s| s.dynamodb.clone());
    match &fleet {
        Fleet::Local(_) => {
            if matches!(ids, Ids::CloudwatchLogs(_)) {
                p.add(
                    "spec.ids.cloudwatchLogs",
                    "needs fleet.aws; a local fleet claims ids with `ids.local`",
                );
            }
            if state.is_some() {
                p.add(
                    "spec.state",
                    "not used with fleet.local: a local cluster keeps its state in the state directory",
                );
            }
        }
        Fleet::Aws(aws) => {
            if aws.region.trim().is_empty() {
                p.add("spec.fleet.aws.region", "must not be empty");
            }
            if aws.auto_scaling_group_name.trim().is_empty() {
                p.add("spec.fleet.aws.autoScalingGroupName", "must not be empty");
            }
            if aws.api_port == Some(0) {
                p.add("spec.fleet.aws.apiPort", "must be a port, 1 to 65535");
            }
            match &ids {
                Ids::Local(_) => p.add(
                    "spec.ids",
                    "fleet.aws needs `ids.cloudwatchLogs.logGroup`: local id files cannot be shared between machines",
                ),
                Ids::CloudwatchLogs(c) if c.log_group.trim().is_empty() => {
                    p.add("spec.ids.cloudwatchLogs.logGroup", "must not be empty")
                }
                Ids::CloudwatchLogs(_) => {}
            }
            match &state {
                None => p.add("spec.state", "fleet.aws needs `state.dynamodb.table`"),
                Some(d) if d.table.trim().is_empty() => {
                    p.add("spec.state.dynamodb.table", "must not be empty")
                }
                Some(_) => {}
            }
        }
    }
    Some((fleet, ids, state))
}

fn check_zookeeper(p: &mut Problems, z: &ZookeeperSettings) -> Option<ZkSettings> {
    let mut ports = Vec::new();
    for (path, v) in [
        ("spec.zookeeper.clientPort", z.client_port),
        ("spec.zookeeper.quorumPort", z.quorum_port),
        ("spec.zookeeper.electionPort", z.election_port),
        ("spec.zookeeper.secureClientPort", z.secure_client_port),
    ] {
        match u16::try_from(v) {
            Ok(port) if port > 0 => {
                if let Some((other, _)) = ports.iter().find(|(_, q)| *q == port) {
                    p.add(path, format!("port {port} is already used by {other}"));
                }
                ports.push((path, port));
            }
            _ => p.add(path, format!("must be a port between 1 and 65535, got {v}")),
        }
    }
    p.range("spec.zookeeper.tickTime", z.tick_time, 100, 60_000);
    p.range("spec.zookeeper.initLimit", z.init_limit, 1, 1000);
    p.range("spec.zookeeper.syncLimit", z.sync_limit, 1, 1000);
    p.range("spec.zookeeper.heapMb", z.heap_mb, 64, 65_536);
    for (i, flag) in z.jvm_flags.iter().enumerate() {
        let path = format!("spec.zookeeper.jvmFlags[{i}]");
        if !flag.starts_with('-') || flag.chars().any(char::is_whitespace) {
            p.add(
                &path,
                format!("must be one flag starting with `-`, got `{flag}`"),
            );
        } else if flag.starts_with("-Xmx") || flag.starts_with("-Xms") {
            p.add(&path, "set the heap with spec.zookeeper.heapMb");
        } else if flag.contains("superDigest") || flag.contains("skipACL") {
            p.add(&path, "zkop sets ZooKeeper's authentication itself");
        }
    }
    for (k, v) in &z.server_properties {
        let path = format!("spec.zookeeper.serverProperties.{k}");
        if k.is_empty() || k.contains(['=', '\n', ' ', '#']) {
            p.add(&path, "is not a valid zoo.cfg key");
        } else if k.contains("superDigest") {
            // ZooKeeper reads system properties from zoo.cfg too: a super
            // digest here would replace the one zkop derives from its secret.
            p.add(&path, "zkop sets ZooKeeper's authentication itself");
        } else if zk::is_owned_key(k) {
            p.add(
                &path,
                "zkop sets this key itself; use the typed field or leave it out",
            );
        }
        if v.contains(['\n', '\r']) {
            p.add(&path, "a value must be on one line");
        }
    }
    Some(ZkSettings {
        version: crate::releases::Release::parse(&z.version)?,
        client_port: ports.iter().find(|(n, _)| n.ends_with(".clientPort"))?.1,
        secure_client_port: ports
            .iter()
            .find(|(n, _)| n.ends_with("secureClientPort"))?
            .1,
        quorum_port: ports.iter().find(|(n, _)| n.ends_with("quorumPort"))?.1,
        election_port: ports.iter().find(|(n, _)| n.ends_with("electionPort"))?.1,
        tick_time: z.tick_time,
        init_limit: z.init_limit,
        sync_limit: z.sync_limit,
        heap_mb: z.heap_mb,
        jvm_flags: z.jvm_flags.clone(),
        server_properties: z.server_properties.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: demo\nspec:\n  replicas: 3\n";

    fn problems(text: &str) -> Vec<String> {
        match parse_spec(text) {
            Ok(_) => vec![],
            Err(e) => e.lines(),
        }
    }

    #[test]
    fn a_minimal_spec_gets_the_documented_defaults() {
        let c = parse_spec(MINIMAL).unwrap();
        assert_eq!((c.voters_min, c.voters_max), (3, 5));
        assert_eq!(c.zookeeper.client_port, 2181);
        assert_eq!(c.zookeeper.tick_time, 2000);
        assert_eq!(c.member_dead_after(), Duration::from_secs(60));
        assert_eq!(c.target_voters(), 3);
        assert!(matches!(c.fleet, Fleet::Local(_)));
    }

    #[test]
    fn target_voters_is_the_largest_odd_within_bounds() {
        let mut c = parse_spec(MINIMAL).unwrap();
        for (replicas, want) in [(3, 3), (4, 3), (5, 5), (6, 5), (9, 5)] {
            c.replicas = replicas;
            assert_eq!(c.target_voters(), want, "replicas {replicas}");
        }
    }

    #[test]
    fn even_voter_bounds_name_the_field() {
        let text = MINIMAL.replace(
            "replicas: 3",
            "replicas: 4\n  voters:\n    min: 3\n    max: 4",
        );
        assert_eq!(problems(&text), vec!["spec.voters.max: must be odd, got 4"]);
    }

    #[test]
    fn every_problem_is_reported_on_its_own_line() {
        let text = MINIMAL.replace(
            "replicas: 3",
            "replicas: 1\n  zookeeper:\n    clientPort: 70000\n    quorumPort: 3888\n    electionPort: 3888\n    serverProperties:\n      dataDir: /x",
        );
        let got = problems(&text);
        assert!(
            got.contains(&"spec.replicas: must be at least voters.min (3), got 1".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(
                &"spec.zookeeper.clientPort: must be a port between 1 and 65535, got 70000"
                    .to_string()
            ),
            "{got:?}"
        );
        assert!(got.contains(&"spec.zookeeper.electionPort: port 3888 is already used by spec.zookeeper.quorumPort".to_string()), "{got:?}");
        assert!(
            got.iter()
                .any(|l| l.starts_with("spec.zookeeper.serverProperties.dataDir: zkop sets")),
            "{got:?}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let text = MINIMAL.replace("replicas: 3", "replicas: 3\n  voters:\n    mx: 5");
        let got = problems(&text);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("spec.voters"), "{got:?}");
        assert!(got[0].contains("unknown field `mx`"), "{got:?}");
    }

    #[test]
    fn malformed_yaml_gives_line_and_column() {
        let err = parse_spec("apiVersion: zkop/v1alpha1\nkind: [unclosed\n").unwrap_err();
        match err {
            SpecError::Malformed { line, .. } => assert!(line >= 2),
            other => panic!("expected malformed, got {other}"),
        }
    }

    #[test]
    fn secrets_in_ssm_are_for_the_aws_fleet_only() {
        let text = MINIMAL.replace(
            "replicas: 3",
            "replicas: 3\n  secrets:\n    ssmParameter: /zkop/x",
        );
        assert_eq!(
            problems(&text),
            vec![
                "spec.secrets: only with fleet.aws: a local cluster keeps its secrets in the state directory"
            ]
        );
    }

    #[test]
    fn aws_fleet_needs_leases_and_state() {
        let text = MINIMAL.replace(
            "replicas: 3",
            "replicas: 3\n  fleet:\n    aws:\n      region: eu-west-1\n      autoScalingGroupName: zk",
        );
        let got = problems(&text);
        assert!(got.iter().any(|l| l.starts_with("spec.ids:")), "{got:?}");
        assert!(got.iter().any(|l| l.starts_with("spec.state:")), "{got:?}");
    }
}
