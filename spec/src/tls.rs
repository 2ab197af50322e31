//! `spec.tls`: TLS on the quorum and the secure client port, with
//! certificates from the cluster's own CA; and the `zoo.cfg` keys it sets.
//!
//! The key store and trust store paths are the agent's to add (like
//! `dataDir`): [`NODE_KEY_STORE`] and [`TRUST_STORE`] under its TLS directory.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Problems, check_duration};

/// `spec.tls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSpec {
    /// Quorum TLS and the secure client port (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Whether clients must show a certificate of the cluster's CA:
    /// `need` (default), `want` or `none`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Keep the plaintext client port open beside the secure one (default
    /// false: with TLS on, clients connect over TLS only).
    #[serde(default)]
    pub plaintext_client_port: bool,
    /// How long a node or client certificate is valid (default `30d`, 1m to
    /// 825d). Node certificates are renewed when a third of it is left.
    #[serde(default = "default_lifetime")]
    pub certificate_lifetime: String,
}

fn default_lifetime() -> String {
    "30d".into()
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            client_auth: ClientAuth::default(),
            plaintext_client_port: false,
            certificate_lifetime: default_lifetime(),
        }
    }
}

/// ZooKeeper's `ssl.clientAuth`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, strum::AsRefStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ClientAuth {
    /// A client certificate is required.
    #[default]
    Need,
    /// A client certificate is checked when shown.
    Want,
    /// No client certificate is asked for.
    None,
}

/// TLS, validated (present only when enabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    /// `ssl.clientAuth`.
    pub client_auth: ClientAuth,
    /// Whether the plaintext client port stays open.
    pub plaintext_client_port: bool,
    /// How long certificates are valid.
    pub certificate_lifetime: Duration,
}

impl TlsPolicy {
    /// When a certificate issued for `lifetime` is due for renewal: once a
    /// third of its lifetime is left.
    pub fn renew_before_expiry(&self) -> Duration {
        self.certificate_lifetime / 3
    }
}

/// The key store (certificate, then PKCS#8 key) in the agent's TLS directory.
pub const NODE_KEY_STORE: &str = "node.pem";
/// The trust store (the cluster CA's certificate) in the agent's TLS directory.
pub const TRUST_STORE: &str = "ca.pem";

/// `zoo.cfg` keys of TLS that are the agent's to fill in: the stores' paths
/// and the address the secure port binds.
pub const AGENT_KEYS: &[&str] = &[
    "ssl.keyStore.location",
    "ssl.trustStore.location",
    "ssl.quorum.keyStore.location",
    "ssl.quorum.trustStore.location",
];

/// The keys of [`static_properties`] the quorum's TLS needs, set from the
/// first stage of a live switch-on (`sslQuorum` and `portUnification` are
/// the stage's own).
pub const QUORUM_KEYS: &[&str] = &[
    "sslQuorumReloadCertFiles",
    "fips-mode",
    "ssl.quorum.hostnameVerification",
    "ssl.quorum.allowReverseDnsLookup",
    "ssl.quorum.keyStore.type",
    "ssl.quorum.trustStore.type",
];

/// `zoo.cfg` keys of TLS that zkop sets: refused in `serverProperties`.
pub const OWNED_KEYS: &[&str] = &[
    "serverCnxnFactory",
    "sslQuorum",
    "sslQuorumReloadCertFiles",
    "portUnification",
    "ssl.keyStore.location",
    "ssl.keyStore.type",
    "ssl.trustStore.location",
    "ssl.trustStore.type",
    "ssl.quorum.keyStore.location",
    "ssl.quorum.keyStore.type",
    "ssl.quorum.trustStore.location",
    "ssl.quorum.trustStore.type",
    "ssl.clientAuth",
    "ssl.quorum.hostnameVerification",
    "ssl.quorum.allowReverseDnsLookup",
    "ssl.allowReverseDnsLookup",
    "fips-mode",
    "authProvider.x509",
];

/// The TLS keys of `zoo.cfg` for `policy`, the secure client port given.
pub fn static_properties(policy: &TlsPolicy, secure_client_port: u16) -> BTreeMap<String, String> {
    let mut cfg = BTreeMap::new();
    let netty = "org.apache.zookeeper.server.NettyServerCnxnFactory";
    let x509 = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";
    for (k, v) in [
        ("serverCnxnFactory", netty),
        ("sslQuorum", "true"),
        // No reload of renewed quorum certificates: a renewal rolls every
        // member anyway (the client port needs it), and a member restarted
        // beside a reload was seen not to rejoin; the roll is the one path.
        ("sslQuorumReloadCertFiles", "false"),
        // Checks a peer's certificate against the address it connects from,
        // so a client's certificate (no address) never joins the quorum.
        ("ssl.quorum.hostnameVerification", "true"),
        // Only the certificate's own addresses count, never a reverse DNS
        // lookup of the peer's (CVE-2026-24281; 3.8.6 and 3.9.5 on: older
        // releases take the key as an unused system property).
        ("ssl.quorum.allowReverseDnsLookup", "false"),
        ("ssl.allowReverseDnsLookup", "false"),
        // ZooKeeper 3.9 runs in FIPS mode by default, which drops its own
        // trust manager and with it the check above: any certificate of the
        // CA, a client's too, would join the quorum. 3.8 defaults to off.
        ("fips-mode", "false"),
        ("ssl.keyStore.type", "PEM"),
        ("ssl.trustStore.type", "PEM"),
        ("ssl.quorum.keyStore.type", "PEM"),
        ("ssl.quorum.trustStore.type", "PEM"),
        ("ssl.clientAuth", policy.client_auth.as_ref()),
        // Client certificates become ACL identities (`x509:CN=NAME`).
        ("authProvider.x509", x509),
    ] {
        cfg.insert(k.to_string(), v.to_string());
    }
    cfg.insert("secureClientPort".into(), secure_client_port.to_string());
    cfg
}

/// `POST /v1/agents/{instance}/certificate`: a node's signing request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertificateRequest {
    /// The PEM signing request (its names are ignored: the controller gives
    /// the instance's own addresses).
    pub csr: String,
}

/// `POST /v1/client-certificates`: a client's signing request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificateRequest {
    /// The certificate's common name: the client's x509 identity is `CN=<name>`.
    pub name: String,
    /// The PEM signing request.
    pub csr: String,
}

/// A signed certificate and the CA that signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedCertificate {
    /// The certificate, PEM.
    pub certificate: String,
    /// The cluster CA's certificate, PEM.
    pub ca: String,
    /// When the certificate expires, ms since the Unix epoch.
    pub not_after_ms: u64,
}

/// Whether `name` may be a client certificate's common name: 1 to 64 of
/// letters, digits, `-`, `_`, `.` and `@` (no `,` or `=`, which would make
/// the DN, and so the ACL identity, mean something else).
pub fn client_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// Validates `spec.tls`: its settings, whether or not TLS is on (`None`
/// when they are invalid).
pub(crate) fn check_tls(
    p: &mut Problems,
    tls: &TlsSpec,
    secrets_missing: bool,
) -> Option<TlsPolicy> {
    let lifetime = check_duration(
        p,
        "spec.tls.certificateLifetime",
        &tls.certificate_lifetime,
        (60, 825 * 24 * 3600),
        "825d",
    );
    if secrets_missing && tls.enabled {
        p.add(
            "spec.tls.enabled",
            "with fleet.aws, TLS needs spec.secrets.ssmParameter: the cluster CA's key is kept beside the secrets in SSM (docs/security.md)",
        );
    }
    Some(TlsPolicy {
        client_auth: tls.client_auth,
        plaintext_client_port: tls.plaintext_client_port,
        certificate_lifetime: lifetime?,
    })
}

#[cfg(test)]
mod tests {
    use crate::parse_spec;

    fn spec(tls: &str) -> String {
        format!(
            "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n{tls}"
        )
    }

    #[test]
    fn tls_is_off_unless_enabled_and_then_secure_only_with_client_certificates() {
        let off = parse_spec(&spec("")).unwrap();
        assert!(off.tls.is_none());
        assert!(!off.static_properties().contains_key("secureClientPort"));
        let on = parse_spec(&spec("  tls:\n    enabled: true\n")).unwrap();
        let cfg = on.static_properties();
        assert_eq!(cfg["secureClientPort"], "2281");
        assert_eq!(cfg["ssl.clientAuth"], "need");
        assert_eq!(cfg["sslQuorum"], "true");
        // ZooKeeper's own trust manager, which checks a peer's address.
        assert_eq!(cfg["fips-mode"], "false");
        assert_eq!(cfg["ssl.quorum.allowReverseDnsLookup"], "false");
        // No plaintext client part in the dynamic lines, the secure port in the connect string.
        let target = crate::tls_stage::TlsStage::target(&on);
        assert_eq!(target.config_client_port(&on), 0);
        assert_eq!(target.clients_port(&on), 2281);
    }

    #[test]
    fn a_bad_lifetime_and_a_clashing_secure_port_are_named() {
        let e = parse_spec(&spec(
            "  tls:\n    enabled: true\n    certificateLifetime: 5s\n  zookeeper:\n    secureClientPort: 2888\n",
        ))
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("spec.tls.certificateLifetime"), "{text}");
        assert!(
            text.contains("spec.zookeeper.secureClientPort: port 2888 is already used by spec.zookeeper.quorumPort"),
            "{text}"
        );
    }

    #[test]
    fn tls_keys_are_refused_in_server_properties() {
        let e = parse_spec(&spec(
            "  zookeeper:\n    serverProperties:\n      ssl.clientAuth: none\n",
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("spec.zookeeper.serverProperties.ssl.clientAuth"),
            "{e}"
        );
    }

    #[test]
    fn tls_on_aws_needs_the_secrets_parameter_beside_which_its_ca_is_kept() {
        let aws = include_str!("../../examples/aws.yaml")
            .replace("spec:\n", "spec:\n  tls:\n    enabled: true\n");
        assert!(parse_spec(&aws).unwrap().tls.is_some());
        let start = aws.find("  secrets:").unwrap();
        let without = aws.replace(
            &aws[start..start + "  secrets:\n    ssmParameter: /zkop/prod-zk/secrets\n".len()],
            "",
        );
        let e = parse_spec(&without).unwrap_err().to_string();
        assert!(
            e.contains("spec.tls.enabled: with fleet.aws, TLS needs spec.secrets.ssmParameter"),
            "{e}"
        );
    }
}
