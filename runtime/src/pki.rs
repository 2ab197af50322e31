//! The cluster's certificate authority and what it signs: a node's
//! certificate for its instance's own addresses, from the node's signing
//! request (the key never leaves the node), and a client's certificate for a
//! name (ZooKeeper's x509 provider makes `CN=NAME` its ACL identity).
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM, which ZooKeeper's PEM key store
//! takes (a PKCS#1 key it does not, see ARCHITECTURE's TLS facts).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

/// How long the CA itself is valid.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Clock skew a new certificate tolerates: it is valid from this long ago
/// (so its validity is its lifetime plus this).
pub const BACKDATE: Duration = Duration::from_secs(300);

/// Why a certificate could not be made, read or signed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A PEM or a request that does not parse, or a signature that fails.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being read or made.
        what: &'static str,
        /// The library's words.
        reason: String,
    },
    /// Reading or writing the CA's files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn invalid(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |e| PkiError::Invalid {
        what,
        reason: e.to_string(),
    }
}

/// The cluster's CA: its certificate and signing key.
pub struct ClusterCa {
    cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A fresh key and a signing request for it, made where the key stays.
pub struct KeyAndRequest {
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The signing request, PEM.
    pub csr_pem: String,
}

/// Makes a key and a signing request naming `common_name` (the signer
/// decides what the certificate finally names).
pub fn key_and_request(common_name: &str) -> Result<KeyAndRequest, PkiError> {
    let key = KeyPair::generate().map_err(invalid("a new key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(invalid("a signing request"))?;
    Ok(KeyAndRequest {
        key_pem: key.serialize_pem(),
        csr_pem: csr,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    let mut serial = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut serial);
    // Positive, as DER integers for serials must be.
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

impl ClusterCa {
    /// A new CA for `cluster`.
    pub fn generate(cluster: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(invalid("the CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("zkop {cluster} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_LIFETIME);
        let cert = params
            .self_signed(&key)
            .map_err(invalid("the CA certificate"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// The CA from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(invalid("the CA key"))?;
        // Parse once now, so that a bad file is found at start, not at the first signing.
        Issuer::from_ca_cert_pem(cert_pem, &key).map_err(invalid("the CA certificate"))?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key,
        })
    }

    /// The CA certificate, PEM: what everyone trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, PKCS#8 PEM: the one secret of the cluster's PKI.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn sign(
        &self,
        csr_pem: &str,
        common_name: &str,
        sans: Vec<SanType>,
        usages: Vec<ExtendedKeyUsagePurpose>,
        lifetime: Duration,
    ) -> Result<String, PkiError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(invalid("the signing request"))?;
        // Only the key is taken from the request: the names are the CA's to give.
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, lifetime);
        csr.params = params;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(invalid("the CA certificate"))?;
        let cert = csr.signed_by(&issuer).map_err(invalid("signing"))?;
        Ok(cert.pem())
    }

    /// Signs a node's request for exactly `addresses` (the instance's own:
    /// hostname verification on the quorum checks the address a peer
    /// connects from), named `CN=<instance>`.
    pub fn sign_node(
        &self,
        csr_pem: &str,
        instance: &str,
        addresses: &[IpAddr],
        lifetime: Duration,
    ) -> Result<String, PkiError> {
        self.sign(
            csr_pem,
            instance,
            addresses.iter().map(|a| SanType::IpAddress(*a)).collect(),
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            lifetime,
        )
    }

    /// Signs a client's request as `CN=<name>`, with no address: it can
    /// authenticate as a client and never pass a peer's hostname check.
    pub fn sign_client(
        &self,
        csr_pem: &str,
        name: &str,
        lifetime: Duration,
    ) -> Result<String, PkiError> {
        self.sign(
            csr_pem,
            name,
            Vec::new(),
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            lifetime,
        )
    }
}

/// What a certificate says, as far as zkop cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Its subject, e.g. `CN=i-0001`.
    pub subject: String,
    /// The IP addresses it names.
    pub addresses: Vec<IpAddr>,
    /// When it was issued, ms since the epoch.
    pub not_before_ms: u64,
    /// When it expires, ms since the epoch.
    pub not_after_ms: u64,
}

fn bad_certificate(reason: String) -> PkiError {
    PkiError::Invalid {
        what: "a certificate",
        reason,
    }
}

/// Reads the first certificate of `pem`.
pub fn inspect(pem: &str) -> Result<CertificateInfo, PkiError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| bad_certificate(e.to_string()))?;
    inspect_der(&block.contents)
}

/// Reads a DER certificate.
pub fn inspect_der(der: &[u8]) -> Result<CertificateInfo, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| bad_certificate(e.to_string()))?;
    let mut addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::IPAddress(bytes) = n {
                match bytes.len() {
                    4 => addresses.push(IpAddr::from(
                        <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
                    )),
                    16 => addresses.push(IpAddr::from(
                        <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
                    )),
                    _ => {}
                }
            }
        }
    }
    let ms = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0) * 1000;
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        addresses,
        not_before_ms: ms(cert.validity().not_before),
        not_after_ms: ms(cert.validity().not_after),
    })
}

/// The local CA in `dir` (`ca.pem`, and `ca-key.pem` 0600), made on first use.
pub fn ensure_local_ca(dir: &Path, cluster: &str) -> Result<ClusterCa, PkiError> {
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca-key.pem");
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| PkiError::Io { path, source }
    };
    if key_path.exists() {
        let cert = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        return ClusterCa::from_pem(&cert, &key);
    }
    let ca = ClusterCa::generate(cluster)?;
    // The key first: a CA certificate without its key would be a dead end.
    crate::files::write_atomic(&key_path, ca.key_pem().as_bytes(), 0o600).map_err(io(&key_path))?;
    crate::files::write_atomic(&cert_path, ca.cert_pem().as_bytes(), 0o644)
        .map_err(io(&cert_path))?;
    Ok(ca)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn a_node_certificate_names_only_the_addresses_the_ca_gives() {
        let ca = ClusterCa::generate("prod").unwrap();
        let req = key_and_request("whatever-the-node-asks").unwrap();
        assert!(req.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let addr: IpAddr = "10.0.0.7".parse().unwrap();
        let cert = ca.sign_node(&req.csr_pem, "i-0007", &[addr], DAY).unwrap();
        let info = inspect(&cert).unwrap();
        assert_eq!(info.subject, "CN=i-0007");
        assert_eq!(info.addresses, vec![addr]);
        let lifetime = info.not_after_ms - info.not_before_ms;
        assert_eq!(lifetime, (DAY + BACKDATE).as_millis() as u64);
    }

    #[test]
    fn a_client_certificate_has_no_address() {
        let ca = ClusterCa::generate("prod").unwrap();
        let req = key_and_request("alice").unwrap();
        let cert = ca.sign_client(&req.csr_pem, "alice", DAY).unwrap();
        let info = inspect(&cert).unwrap();
        assert_eq!(info.subject, "CN=alice");
        assert!(info.addresses.is_empty());
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let ca = ClusterCa::generate("prod").unwrap();
        let req = key_and_request("alice").unwrap();
        let garbled = req.csr_pem.replacen('A', "B", 3);
        assert!(ca.sign_client(&garbled, "alice", DAY).is_err());
    }

    #[test]
    fn the_local_ca_is_made_once_and_its_key_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_local_ca(dir.path(), "prod").unwrap();
        let b = ensure_local_ca(dir.path(), "prod").unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem());
        let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
