//! The API over HTTPS with the cluster CA, when TLS is on: the controller's
//! certificate names the address it serves on, and a client may show a
//! certificate of the CA (agents show their node certificate; the CLI uses
//! the token alone). Each request carries its connection's [`Peer`], so the
//! agent routes can hold an agent to its own instance.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::debug;

use zkop_runtime::pki::{ClusterCa, inspect_der, key_and_request};

/// How long the API's own certificate is valid (a new one each start).
const API_CERT_LIFETIME: Duration = Duration::from_secs(398 * 24 * 3600);

/// Who is on the other end of a request's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The address it connects from.
    pub address: IpAddr,
    /// The common name of the node certificate it showed (its instance
    /// id), if it showed one. A client's certificate (no address in it)
    /// does not count: a client named like an instance is still no node.
    pub node: Option<String>,
    /// Whether the connection is TLS (the API over HTTPS).
    pub over_tls: bool,
}

/// The API's TLS: a fresh key and a certificate from `ca` for `addresses`;
/// client certificates of `ca` asked for, not required.
pub fn server_config(
    ca: &ClusterCa,
    addresses: &[IpAddr],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let req = key_and_request("zkop-controller").map_err(|e| e.to_string())?;
    let cert = ca
        .sign_node(
            &req.csr_pem,
            "zkop-controller",
            addresses,
            API_CERT_LIFETIME,
        )
        .map_err(|e| e.to_string())?;
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the API certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(req.key_pem.as_bytes())
        .map_err(|e| format!("the API key: {e}"))?;
    let roots = zkop_zk::endpoint::root_store(ca.cert_pem())?;
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("the API certificate and key: {e}"))?;
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, from) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = stop.changed() => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(acceptor, tcp, from, router).await {
                debug!(peer = %from, error = %e, "API connection ended");
            }
        });
    }
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    from: SocketAddr,
    router: Router,
) -> Result<(), String> {
    let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let node = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|c| inspect_der(c).ok())
        .filter(|info| !info.addresses.is_empty())
        .and_then(|info| info.subject.strip_prefix("CN=").map(str::to_string));
    let peer = Peer {
        address: from.ip(),
        node,
        over_tls: true,
    };
    let service = router.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(peer.clone());
        req
    });
    Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
        .await
        .map_err(|e| e.to_string())
}
