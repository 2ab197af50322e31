//! Where a ZooKeeper server answers clients, and whether over TLS: the
//! secure client port takes the cluster CA and a certificate of the cluster's
//! (ZooKeeper asks for one, `ssl.clientAuth=need` by default).

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A client identity for a secure client port, PEM as ZooKeeper's tools take it.
#[derive(Clone)]
pub struct ClientTls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// The CA to trust, and this client's certificate chain and PKCS#8 key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let config = client_config(ca_pem, Some((cert_pem, key_pem)))?;
        Ok(Self {
            ca_pem: ca_pem.to_string(),
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            config: Arc::new(config),
        })
    }

    /// The same identity for `zookeeper-client`.
    pub fn options(&self) -> Result<zookeeper_client::TlsOptions, String> {
        zookeeper_client::TlsOptions::new()
            .with_pem_ca(&self.ca_pem)
            .and_then(|o| o.with_pem_identity(&self.cert_pem, &self.key_pem))
            .map_err(|e| format!("TLS options: {e}"))
    }
}

/// Makes aws-lc-rs the process's TLS provider (once; later calls do
/// nothing). reqwest, built without a provider of its own, asks for the
/// process default whenever it builds a client, even a plaintext one.
pub fn install_crypto_provider() {
    // An error means a provider is installed already: that is all we need.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The certificates of `ca_pem` as a trust store (at least one).
pub fn root_store(ca_pem: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("CA certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CA certificate in the CA PEM".into());
    }
    Ok(roots)
}

/// A TLS client configuration trusting only `ca_pem`, showing `identity`
/// (certificate chain and PKCS#8 key PEM) when asked: for ZooKeeper's secure
/// port, and for the controller's API over HTTPS.
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder().with_root_certificates(root_store(ca_pem)?);
    let Some((cert_pem, key_pem)) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the certificate PEM".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("certificate and key: {e}"))
}

/// A server's client endpoint, `host:port`, plaintext or TLS.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub host_port: String,
    /// The identity to connect with when the port is a secure one.
    pub tls: Option<ClientTls>,
}

impl Endpoint {
    /// A plaintext client port.
    pub fn plain(host_port: impl Into<String>) -> Self {
        Self {
            host_port: host_port.into(),
            tls: None,
        }
    }

    /// The host part, which the server's certificate must name.
    pub fn host(&self) -> &str {
        self.host_port
            .rsplit_once(':')
            .map_or(self.host_port.as_str(), |(h, _)| h)
    }

    /// The connect string `zookeeper-client` takes for this one server.
    pub(crate) fn connect_string(&self) -> String {
        match self.tls {
            Some(_) => format!("tcp+tls://{}", self.host_port),
            None => self.host_port.clone(),
        }
    }

    /// A `zookeeper-client` connector for this endpoint.
    pub(crate) fn connector(&self) -> Result<zookeeper_client::Connector, String> {
        let mut connector = zookeeper_client::Client::connector();
        if let Some(tls) = &self.tls {
            connector = connector.with_tls(tls.options()?);
        }
        Ok(connector)
    }

    /// A client session on this one server (TLS when the port is secure).
    pub async fn session(
        &self,
        timeout: std::time::Duration,
    ) -> Result<zookeeper_client::Client, String> {
        self.connector()?
            .with_session_timeout(timeout)
            .with_connection_timeout(timeout)
            .connect(&self.connect_string())
            .await
            .map_err(|e| format!("connect to {self}: {e}"))
    }

    /// A TLS connection when the port is secure.
    pub(crate) async fn tls_stream(
        &self,
        tcp: tokio::net::TcpStream,
        tls: &ClientTls,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let name = ServerName::try_from(self.host().to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        tokio_rustls::TlsConnector::from(tls.config.clone())
            .connect(name, tcp)
            .await
    }
}

impl From<&str> for Endpoint {
    fn from(host_port: &str) -> Self {
        Self::plain(host_port)
    }
}

impl From<&String> for Endpoint {
    fn from(host_port: &String) -> Self {
        Self::plain(host_port.as_str())
    }
}

impl From<String> for Endpoint {
    fn from(host_port: String) -> Self {
        Self::plain(host_port)
    }
}

impl From<&Endpoint> for Endpoint {
    fn from(endpoint: &Endpoint) -> Self {
        endpoint.clone()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host_port)?;
        if self.tls.is_some() {
            f.write_str(" (TLS)")?;
        }
        Ok(())
    }
}
