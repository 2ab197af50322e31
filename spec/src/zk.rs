//! ZooKeeper's own configuration and replies, modelled: server lines, the dynamic
//! config (as in `/zookeeper/config` and `zoo.cfg.dynamic.*`), `zoo.cfg`, zxids,
//! and the `srvr`, `mntr` and `conf` four-letter-word replies. Pure; no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::fourlw::{ConfReply, SrvrReply, parse_conf, parse_mntr, parse_srvr};

/// A ZooKeeper server id (`myid`), issued by the id ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(pub u64);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether a server votes (participant) or only follows (observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberRole {
    /// A voter.
    Participant,
    /// A non-voting member.
    Observer,
}

impl MemberRole {
    fn as_str(self) -> &'static str {
        match self {
            MemberRole::Participant => "participant",
            MemberRole::Observer => "observer",
        }
    }
}

/// Why a line of ZooKeeper configuration or a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: `{text}`")]
pub struct ParseError {
    /// 1-based line number in the text given.
    pub line: usize,
    /// The offending line.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One `server.N=addr:quorumPort:electionPort:role;clientAddr:clientPort` entry
/// (`client_port` 0: no client part, as for a secure-only server).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// The server's id.
    pub id: ServerId,
    /// Address peers reach it on.
    pub address: String,
    /// Port followers connect to the leader on.
    pub quorum_port: u16,
    /// Leader election port.
    pub election_port: u16,
    /// Participant or observer.
    pub role: MemberRole,
    /// Address clients connect to.
    pub client_address: String,
    /// Port clients connect to.
    pub client_port: u16,
}

impl Server {
    /// The value part of the `server.N=` line.
    pub fn spec_value(&self) -> String {
        let peer = format!(
            "{}:{}:{}:{}",
            self.address,
            self.quorum_port,
            self.election_port,
            self.role.as_str()
        );
        if self.has_client_part() {
            format!("{peer};{}:{}", self.client_address, self.client_port)
        } else {
            peer
        }
    }

    /// Whether the line names a (plaintext) client port: a secure-only
    /// server's does not, since ZooKeeper would bind the plaintext port there.
    pub fn has_client_part(&self) -> bool {
        self.client_port != 0
    }

    /// The whole `server.N=...` line, as reconfig and the dynamic file take it.
    pub fn line(&self) -> String {
        format!("server.{}={}", self.id, self.spec_value())
    }

    /// The same server with another role.
    pub fn with_role(&self, role: MemberRole) -> Server {
        Server {
            role,
            ..self.clone()
        }
    }

    /// `host:port` for clients.
    pub fn client_endpoint(&self) -> String {
        format!("{}:{}", self.client_address, self.client_port)
    }

    /// Parses `server.N=...` (the client part may be missing, as in old configs).
    pub fn parse_line(line: &str) -> Result<Server, String> {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| "expected `server.N=...`".to_string())?;
        let id = key
            .trim()
            .strip_prefix("server.")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("`{}` is not `server.<number>`", key.trim()))?;
        let (peer, client) = match value.trim().split_once(';') {
            Some((p, c)) => (p, Some(c)),
            None => (value.trim(), None),
        };
        let parts: Vec<&str> = peer.split(':').collect();
        if parts.len() < 3 || parts.len() > 4 {
            return Err("expected `address:quorumPort:electionPort[:role]`".into());
        }
        let port = |s: &str, what: &str| {
            s.parse::<u16>()
                .map_err(|_| format!("{what} `{s}` is not a port number"))
        };
        let role = match parts.get(3).copied() {
            None | Some("participant") => MemberRole::Participant,
            Some("observer") => MemberRole::Observer,
            Some(other) => {
                return Err(format!(
                    "role `{other}` is neither participant nor observer"
                ));
            }
        };
        let (client_address, client_port) = match client {
            Some(c) => {
                let (a, p) = c
                    .rsplit_once(':')
                    .map(|(a, p)| (a.to_string(), p))
                    .unwrap_or_else(|| ("0.0.0.0".to_string(), c));
                (a, port(p, "client port")?)
            }
            None => (parts[0].to_string(), 0),
        };
        Ok(Server {
            id: ServerId(id),
            address: parts[0].to_string(),
            quorum_port: port(parts[1], "quorum port")?,
            election_port: port(parts[2], "election port")?,
            role,
            client_address,
            client_port,
        })
    }
}

/// A config version: the zxid that committed the config, written in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigVersion(pub u64);

impl fmt::Display for ConfigVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl FromStr for ConfigVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let digits = s.strip_prefix("0x").unwrap_or(s);
        u64::from_str_radix(digits, 16)
            .map(ConfigVersion)
            .map_err(|_| format!("`{s}` is not a hex config version"))
    }
}

impl Serialize for ConfigVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The ensemble's membership: what `/zookeeper/config` and the dynamic file hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicConfig {
    /// The servers, by id (a list in JSON).
    #[serde(with = "servers_as_list")]
    pub servers: BTreeMap<ServerId, Server>,
    /// The committed version, when known (`version=` line or file suffix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ConfigVersion>,
}

// A list, not a map: JSON map keys are strings, and the ids would not survive
// internally tagged enums that carry a config.
mod servers_as_list {
    use super::{BTreeMap, Server, ServerId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<ServerId, Server>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let list: Vec<&Server> = m.values().collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<ServerId, Server>, D::Error> {
        let list = Vec::<Server>::deserialize(d)?;
        let mut m = BTreeMap::new();
        for s in list {
            let id = s.id;
            if m.insert(id, s).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "server {id} listed twice"
                )));
            }
        }
        Ok(m)
    }
}

impl DynamicConfig {
    /// A config of these servers, with no version.
    pub fn of(servers: impl IntoIterator<Item = Server>) -> Self {
        DynamicConfig {
            servers: servers.into_iter().map(|s| (s.id, s)).collect(),
            version: None,
        }
    }

    /// The voters (participants).
    pub fn voters(&self) -> impl Iterator<Item = &Server> {
        self.servers
            .values()
            .filter(|s| s.role == MemberRole::Participant)
    }

    /// The observers.
    pub fn observers(&self) -> impl Iterator<Item = &Server> {
        self.servers
            .values()
            .filter(|s| s.role == MemberRole::Observer)
    }

    /// How many voters.
    pub fn voter_count(&self) -> usize {
        self.voters().count()
    }

    /// The smallest number of voters that forms a quorum of this config.
    pub fn majority(&self) -> usize {
        self.voter_count() / 2 + 1
    }

    /// Whether the voters for which `holds` is true form a quorum of this config.
    pub fn quorum_where(&self, holds: impl Fn(ServerId) -> bool) -> bool {
        self.voters().filter(|s| holds(s.id)).count() >= self.majority()
    }

    /// The role of `id` in this config, if listed.
    pub fn role_of(&self, id: ServerId) -> Option<MemberRole> {
        self.servers.get(&id).map(|s| s.role)
    }

    /// The same membership with `server` added or replaced, and no version.
    pub fn with(&self, server: Server) -> DynamicConfig {
        let mut servers = self.servers.clone();
        servers.insert(server.id, server);
        DynamicConfig {
            servers,
            version: None,
        }
    }

    /// The config an incremental reconfig produces: `leaving` removed, `joining` added
    /// or replaced. The version is left unknown.
    pub fn apply(&self, joining: &[Server], leaving: &[ServerId]) -> DynamicConfig {
        let mut servers = self.servers.clone();
        for id in leaving {
            servers.remove(id);
        }
        for s in joining {
            servers.insert(s.id, s.clone());
        }
        DynamicConfig {
            servers,
            version: None,
        }
    }

    /// Renders the dynamic file's text (and `version=` last, when known, as
    /// `/zookeeper/config` has it).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in self.servers.values() {
            out.push_str(&s.line());
            out.push('\n');
        }
        if let Some(v) = self.version {
            out.push_str(&format!("version={v}\n"));
        }
        out
    }

    /// Renders the servers only, as a dynamic config file holds them.
    pub fn render_servers(&self) -> String {
        DynamicConfig {
            servers: self.servers.clone(),
            version: None,
        }
        .render()
    }

    /// Parses `server.N=` lines and an optional `version=` line; blank lines and
    /// `#` comments are skipped.
    pub fn parse(text: &str) -> Result<DynamicConfig, ParseError> {
        let mut config = DynamicConfig::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let err = |reason: String| ParseError {
                line: i + 1,
                text: raw.to_string(),
                reason,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(v) = line.strip_prefix("version=") {
                config.version = Some(v.parse().map_err(err)?);
            } else if line.starts_with("server.") {
                let server = Server::parse_line(line).map_err(err)?;
                if config.servers.insert(server.id, server).is_some() {
                    return Err(err("server id listed twice".into()));
                }
            } else {
                return Err(err("expected `server.N=...` or `version=...`".into()));
            }
        }
        Ok(config)
    }
}

/// Voter arithmetic: the largest odd number of voters `<= n` (1 for 0). An
/// ensemble runs an odd number of voters, so that a majority is a strict
/// one and an even count adds no tolerance.
pub fn largest_odd_at_most(n: u32) -> u32 {
    if n == 0 {
        1
    } else if n % 2 == 1 {
        n
    } else {
        n - 1
    }
}

/// A ZooKeeper transaction id: an (epoch, counter) pair. Compare as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zxid {
    /// The leader epoch.
    pub epoch: u32,
    /// The counter within the epoch.
    pub counter: u32,
}

impl Zxid {
    /// From the 64-bit value ZooKeeper prints.
    pub fn from_u64(v: u64) -> Zxid {
        Zxid {
            epoch: (v >> 32) as u32,
            counter: v as u32,
        }
    }

    /// The 64-bit value.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.epoch) << 32) | u64::from(self.counter)
    }

    /// Whether a transaction can have this id. Counter 0 only opens an epoch:
    /// a new leader's `srvr` shows it until the first write, and no other
    /// server's zxid reaches it, however caught up.
    pub fn is_transaction(self) -> bool {
        self.counter > 0
    }

    /// How many transactions `self` is ahead of `other`, when both are in one epoch.
    pub fn lead_over(self, other: Zxid) -> Option<u64> {
        (self.epoch == other.epoch && self.counter >= other.counter)
            .then(|| u64::from(self.counter - other.counter))
    }

    /// How many transactions a serving member at `self` is behind the leader
    /// at `leader`: the difference within one epoch, 0 when the leader's
    /// epoch has no transaction yet (serving, the member synced with it, and
    /// its zxid stays in the epoch before until the first write), unknown
    /// across epochs otherwise.
    pub fn lag_behind(self, leader: Zxid) -> Option<u64> {
        if self >= leader || !leader.is_transaction() {
            return Some(0);
        }
        leader.lead_over(self)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.as_u64())
    }
}

impl FromStr for Zxid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let digits = s.strip_prefix("0x").unwrap_or(s);
        u64::from_str_radix(digits, 16)
            .map(Zxid::from_u64)
            .map_err(|_| format!("`{s}` is not a hex zxid"))
    }
}

impl Serialize for Zxid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Zxid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The mode a serving server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ServerMode {
    /// Leads the ensemble.
    Leader,
    /// Follows the leader (a voter, or a joiner not yet added).
    Follower,
    /// An observer.
    Observer,
    /// Standalone (never used by zkop).
    Standalone,
}

impl FromStr for ServerMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "leader" => Ok(ServerMode::Leader),
            "follower" => Ok(ServerMode::Follower),
            "observer" => Ok(ServerMode::Observer),
            "standalone" => Ok(ServerMode::Standalone),
            other => Err(format!("unknown mode `{other}`")),
        }
    }
}

/// `zoo.cfg` as ordered `key=value` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZooCfg(pub BTreeMap<String, String>);

impl ZooCfg {
    /// Renders `key=value` lines, sorted by key.
    pub fn render(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// Parses `key=value` lines, skipping blanks and `#` comments.
    pub fn parse(text: &str) -> Result<ZooCfg, ParseError> {
        let mut map = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| ParseError {
                line: i + 1,
                text: raw.to_string(),
                reason: "expected `key=value`".into(),
            })?;
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(ZooCfg(map))
    }

    /// The `dynamicConfigFile=` value.
    pub fn dynamic_config_file(&self) -> Option<&str> {
        self.0.get(DYNAMIC_CONFIG_FILE).map(String::as_str)
    }
}

/// The `zoo.cfg` key naming the dynamic file; ZooKeeper rewrites it after reconfigs.
pub const DYNAMIC_CONFIG_FILE: &str = "dynamicConfigFile";

/// Four-letter words zkop needs; always whitelisted.
pub const FOUR_LETTER_WORDS: &str = "ruok,srvr,mntr,conf,hash";

/// `zoo.cfg` keys zkop owns: refused in `serverProperties`.
pub const OWNED_KEYS: &[&str] = &[
    "dataDir",
    // The transaction logs stay in dataDir's version-2: zxids read from disk
    // and the data a recovery keeps are found there.
    "dataLogDir",
    DYNAMIC_CONFIG_FILE,
    "clientPort",
    "clientPortAddress",
    "secureClientPort",
    "secureClientPortAddress",
    "reconfigEnabled",
    "standaloneEnabled",
    "admin.enableServer",
    "admin.serverAddress",
    "admin.serverPort",
    "4lw.commands.whitelist",
    "skipACL",
    "tickTime",
    "initLimit",
    "syncLimit",
    "peerType",
];

/// Key prefixes zkop owns (membership lines).
pub const OWNED_KEY_PREFIXES: &[&str] = &["server.", "group.", "weight."];

/// Whether `key` is one zkop sets itself.
pub fn is_owned_key(key: &str) -> bool {
    OWNED_KEYS.contains(&key)
        || crate::tls::OWNED_KEYS.contains(&key)
        || OWNED_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The static `zoo.cfg` keys for a server, in precedence order: ZooKeeper's
/// defaults that zkop changes, then the user's passthrough, then the keys zkop
/// owns (which win). `dataDir` and `dynamicConfigFile` are the agent's to add.
pub fn static_properties(
    tick_time: u32,
    init_limit: u32,
    sync_limit: u32,
    passthrough: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut cfg = BTreeMap::new();
    // Defaults zkop picks differently from ZooKeeper's.
    cfg.insert("autopurge.snapRetainCount".into(), "5".into());
    cfg.insert("autopurge.purgeInterval".into(), "1".into());
    for (k, v) in passthrough {
        cfg.insert(k.clone(), v.clone());
    }
    let owned = [
        ("tickTime", tick_time.to_string()),
        ("initLimit", init_limit.to_string()),
        ("syncLimit", sync_limit.to_string()),
        ("reconfigEnabled", "true".into()),
        ("standaloneEnabled", "false".into()),
        ("admin.enableServer", "false".into()),
        ("4lw.commands.whitelist", FOUR_LETTER_WORDS.into()),
    ];
    for (k, v) in owned {
        cfg.insert(k.to_string(), v);
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONF_REPLY: &str = "clientPort=2181\nsecureClientPort=-1\ndataDir=/tmp/zkx/s1/data/version-2\ntickTime=500\nserverId=1\ninitLimit=10\nsyncLimit=5\npeerType=0\nmembership: \nserver.1=127.0.77.1:2888:3888:participant;127.0.77.1:2181\nserver.2=127.0.77.2:2888:3888:participant;127.0.77.2:2181\nserver.3=127.0.77.3:2888:3888:observer;127.0.77.3:2181\nversion=100000000";

    #[test]
    fn parses_a_conf_reply_from_zookeeper_3_8() {
        let conf = parse_conf(CONF_REPLY).unwrap();
        assert_eq!(conf.server_id, Some(ServerId(1)));
        assert_eq!(conf.config.version, Some(ConfigVersion(0x1_0000_0000)));
        assert_eq!(conf.config.voter_count(), 2);
        assert_eq!(conf.config.observers().count(), 1);
        assert_eq!(conf.properties["tickTime"], "500");
    }

    #[test]
    fn parses_srvr_of_a_leader_and_of_a_server_without_quorum() {
        let leader = "Zookeeper version: 3.8.0-x, built on 2024-12-29\nLatency min/avg/max: 0/0.0/0\nZxid: 0x100000003\nMode: leader\nNode count: 5\n";
        let r = parse_srvr(leader).unwrap();
        assert_eq!(r.mode, Some(ServerMode::Leader));
        assert_eq!(
            r.zxid,
            Some(Zxid {
                epoch: 1,
                counter: 3
            })
        );
        assert!(r.serving);
        let r = parse_srvr("This ZooKeeper instance is not currently serving requests\n").unwrap();
        assert!(!r.serving);
        assert_eq!(r.mode, None);
    }

    #[test]
    fn parses_mntr() {
        let m = parse_mntr("zk_server_state\tleader\nzk_synced_followers\t2\n").unwrap();
        assert_eq!(m["zk_server_state"], "leader");
        assert!(parse_mntr("no tab here").is_err());
    }

    #[test]
    fn a_bad_dynamic_line_is_named_by_number() {
        let err =
            DynamicConfig::parse("server.1=a:1:2:participant;a:3\nserver.x=b:1:2\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = DynamicConfig::parse("server.1=a:1:2:voter;a:3\n").unwrap_err();
        assert!(err.reason.contains("voter"), "{err}");
    }

    #[test]
    fn zxids_compare_as_pairs_and_subtract_within_an_epoch() {
        let a: Zxid = "0x200000001".parse().unwrap();
        let b: Zxid = "0x1000000ff".parse().unwrap();
        assert!(a > b);
        assert_eq!(a.lead_over(b), None);
        let c: Zxid = "0x200000005".parse().unwrap();
        assert_eq!(c.lead_over(a), Some(4));
    }

    #[test]
    fn a_members_lag_is_counted_within_the_leaders_epoch() {
        let z = |s: &str| s.parse::<Zxid>().unwrap();
        assert_eq!(z("0x200000001").lag_behind(z("0x200000005")), Some(4));
        assert_eq!(z("0x200000005").lag_behind(z("0x200000005")), Some(0));
        // A new leader's epoch without a write yet: a synced follower shows
        // the last zxid of the epoch before, and lags by nothing.
        assert_eq!(z("0x0").lag_behind(z("0x100000000")), Some(0));
        assert_eq!(z("0x1000000ff").lag_behind(z("0x200000000")), Some(0));
        // Writes in the leader's epoch the member has none of: not countable.
        assert_eq!(z("0x1000000ff").lag_behind(z("0x200000003")), None);
    }

    #[test]
    fn owned_keys_win_over_passthrough() {
        let mut pass = BTreeMap::new();
        pass.insert("maxClientCnxns".to_string(), "100".to_string());
        pass.insert("autopurge.snapRetainCount".to_string(), "9".to_string());
        let cfg = static_properties(500, 10, 5, &pass);
        assert_eq!(cfg["maxClientCnxns"], "100");
        assert_eq!(cfg["autopurge.snapRetainCount"], "9");
        assert_eq!(cfg["admin.enableServer"], "false");
        assert_eq!(cfg["reconfigEnabled"], "true");
        assert!(!cfg.contains_key("skipACL"));
        assert!(is_owned_key("server.7"));
        assert!(!is_owned_key("maxClientCnxns"));
    }

    fn arb_server() -> impl Strategy<Value = Server> {
        (
            1u64..300,
            (0u8..=255, 0u8..=255),
            1u16..,
            1u16..,
            any::<bool>(),
            1u16..,
        )
            .prop_map(|(id, (a, b), q, e, obs, c)| Server {
                id: ServerId(id),
                address: format!("127.0.{a}.{b}"),
                quorum_port: q,
                election_port: e,
                role: if obs {
                    MemberRole::Observer
                } else {
                    MemberRole::Participant
                },
                client_address: format!("127.0.{a}.{b}"),
                client_port: c,
            })
    }

    proptest! {
        #[test]
        fn dynamic_config_render_parse_round_trips(
            servers in proptest::collection::vec(arb_server(), 0..9),
            version in proptest::option::of(any::<u64>()),
        ) {
            let mut config = DynamicConfig::of(servers);
            config.version = version.map(ConfigVersion);
            prop_assert_eq!(DynamicConfig::parse(&config.render()).unwrap(), config);
        }

        #[test]
        fn zoo_cfg_render_parse_round_trips(
            pass in proptest::collection::btree_map("[a-z][a-zA-Z.]{0,12}", "[a-zA-Z0-9/_.]{1,12}", 0..6),
            tick in 100u32..60000,
        ) {
            let cfg = ZooCfg(static_properties(tick, 10, 5, &pass));
            prop_assert_eq!(ZooCfg::parse(&cfg.render()).unwrap(), cfg);
        }

        #[test]
        fn zxid_text_round_trips(v in any::<u64>()) {
            let z = Zxid::from_u64(v);
            prop_assert_eq!(z.to_string().parse::<Zxid>().unwrap(), z);
        }
    }
}
