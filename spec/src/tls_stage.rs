//! Turning TLS on or off in a running ensemble: ZooKeeper's documented
//! order (port unification first), one stage at a time, each a rolling
//! restart or one reconfig, so that a majority serves throughout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ValidatedCluster;
use crate::tls::TlsPolicy;

/// How far TLS is on in an ensemble's servers; stages in order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::AsRefStr,
    strum::EnumIter,
)]
#[serde(rename_all = "camelCase")]
#[strum(serialize_all = "camelCase")]
pub enum TlsStage {
    /// No TLS anywhere.
    Plaintext,
    /// Quorum certificates in place; peers still speak plaintext, and each
    /// quorum port accepts TLS too (`portUnification`).
    QuorumPortUnification,
    /// Peers connect over TLS; plaintext is still accepted from those that
    /// have not restarted yet.
    QuorumTlsUnified,
    /// Peers speak TLS only.
    QuorumTls,
    /// The secure client port beside the plaintext one; clients are told the
    /// secure one. The last stage with `plaintextClientPort: true`.
    SecurePortBeside,
    /// The config's lines have lost their plaintext client part (a
    /// non-incremental reconfig); servers still listen until restarted.
    ClientPartsDropped,
    /// Restarted without the plaintext client port: TLS only.
    SecureOnly,
}

impl TlsStage {
    /// The stage the spec asks for.
    pub fn target(spec: &ValidatedCluster) -> TlsStage {
        match &spec.tls {
            None => TlsStage::Plaintext,
            Some(t) if t.plaintext_client_port => TlsStage::SecurePortBeside,
            Some(_) => TlsStage::SecureOnly,
        }
    }

    /// The next stage from this one toward `target`: one up or one down.
    pub fn toward(self, target: TlsStage) -> Option<TlsStage> {
        use strum::IntoEnumIterator;
        let all: Vec<TlsStage> = TlsStage::iter().collect();
        let at = all.iter().position(|s| *s == self)?;
        match self.cmp(&target) {
            std::cmp::Ordering::Less => all.get(at + 1).copied(),
            std::cmp::Ordering::Greater => at.checked_sub(1).and_then(|i| all.get(i).copied()),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// Whether the servers run with quorum TLS keys (and so need a node certificate).
    pub fn quorum_keys(self) -> bool {
        self >= TlsStage::QuorumPortUnification
    }

    /// The static `zoo.cfg` keys of TLS at this stage.
    pub fn static_properties(
        self,
        policy: &TlsPolicy,
        secure_client_port: u16,
    ) -> BTreeMap<String, String> {
        if self >= TlsStage::SecurePortBeside {
            return crate::tls::static_properties(policy, secure_client_port);
        }
        if self == TlsStage::Plaintext {
            return BTreeMap::new();
        }
        let mut cfg = crate::tls::static_properties(policy, secure_client_port);
        cfg.retain(|k, _| crate::tls::QUORUM_KEYS.contains(&k.as_str()));
        let quorum_tls = self >= TlsStage::QuorumTlsUnified;
        cfg.insert("sslQuorum".into(), quorum_tls.to_string());
        if self <= TlsStage::QuorumTlsUnified {
            cfg.insert("portUnification".into(), "true".into());
        }
        cfg
    }

    /// The client port in the config's server lines: 0 (no client part)
    /// once the client parts were dropped.
    pub fn config_client_port(self, spec: &ValidatedCluster) -> u16 {
        match self >= TlsStage::ClientPartsDropped {
            true => 0,
            false => spec.zookeeper.client_port,
        }
    }

    /// The port clients are told: the secure one once it is open.
    pub fn clients_port(self, spec: &ValidatedCluster) -> u16 {
        let z = &spec.zookeeper;
        match self >= TlsStage::SecurePortBeside {
            true => z.secure_client_port,
            false => z.client_port,
        }
    }

    /// What this stage takes, in words.
    pub fn describe(self) -> &'static str {
        match self {
            TlsStage::Plaintext => "no TLS",
            TlsStage::QuorumPortUnification => {
                "quorum certificates in place, quorum ports accepting TLS and plaintext"
            }
            TlsStage::QuorumTlsUnified => "peers connecting over TLS, plaintext still accepted",
            TlsStage::QuorumTls => "peers speaking TLS only",
            TlsStage::SecurePortBeside => "the secure client port beside the plaintext one",
            TlsStage::ClientPartsDropped => "the config's plaintext client parts dropped",
            TlsStage::SecureOnly => "servers restarted without the plaintext client port",
        }
    }
}

impl ValidatedCluster {
    /// The static `zoo.cfg` keys every server gets at TLS stage `stage`.
    pub fn static_properties_at(&self, stage: TlsStage) -> BTreeMap<String, String> {
        let z = &self.zookeeper;
        let mut cfg = crate::zk::static_properties(
            z.tick_time,
            z.init_limit,
            z.sync_limit,
            &z.server_properties,
        );
        cfg.extend(stage.static_properties(&self.tls_settings, z.secure_client_port));
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::TlsStage::*;
    use super::*;

    fn spec(tls: &str) -> ValidatedCluster {
        let text = format!(
            "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n{tls}"
        );
        crate::parse_spec(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn stages_walk_one_at_a_time_in_zookeepers_order() {
        let on = spec("  tls:\n    enabled: true\n");
        let target = TlsStage::target(&on);
        let mut walk = vec![Plaintext];
        while let Some(next) = walk.last().and_then(|s| s.toward(target)) {
            walk.push(next);
        }
        assert_eq!(
            walk,
            [
                Plaintext,
                QuorumPortUnification,
                QuorumTlsUnified,
                QuorumTls,
                SecurePortBeside,
                ClientPartsDropped,
                SecureOnly
            ]
        );
        let beside = spec("  tls:\n    enabled: true\n    plaintextClientPort: true\n");
        assert_eq!(TlsStage::target(&beside), SecurePortBeside);
        assert_eq!(SecurePortBeside.toward(Plaintext), Some(QuorumTls));
        assert_eq!(Plaintext.toward(Plaintext), None);
    }

    #[test]
    fn each_stage_sets_the_keys_zookeeper_documents() {
        let on = spec("  tls:\n    enabled: true\n    clientAuth: want\n");
        let at = |s: TlsStage| on.static_properties_at(s);
        assert!(!at(Plaintext).contains_key("sslQuorum"));
        let first = at(QuorumPortUnification);
        assert_eq!(first["sslQuorum"], "false");
        assert_eq!(first["portUnification"], "true");
        assert_eq!(first["ssl.quorum.hostnameVerification"], "true");
        assert!(!first.contains_key("secureClientPort"));
        assert_eq!(at(QuorumTlsUnified)["sslQuorum"], "true");
        assert!(at(QuorumTlsUnified).contains_key("portUnification"));
        assert!(!at(QuorumTls).contains_key("portUnification"));
        assert_eq!(at(QuorumTls)["sslQuorum"], "true");
        let beside = at(SecurePortBeside);
        assert_eq!(beside["secureClientPort"], "2281");
        assert_eq!(beside["ssl.clientAuth"], "want");
        assert_eq!(at(SecureOnly), on.static_properties());
        assert_eq!(QuorumTls.clients_port(&on), 2181);
        assert_eq!(SecurePortBeside.clients_port(&on), 2281);
        assert_eq!(SecurePortBeside.config_client_port(&on), 2181);
        assert_eq!(ClientPartsDropped.config_client_port(&on), 0);
        // Switching TLS off walks back through the same keys, the policy kept.
        let off = spec("  tls:\n    enabled: false\n    clientAuth: want\n");
        assert_eq!(
            off.static_properties_at(SecurePortBeside)["ssl.clientAuth"],
            "want"
        );
    }
}
