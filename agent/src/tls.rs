//! The node's TLS material: its key, made here and never sent; its
//! certificate, signed by the controller for this instance's address; the
//! cluster CA. `tls/node.pem` (the certificate, then the PKCS#8 key, as
//! ZooKeeper's PEM key store takes them) is replaced by rename, so that a
//! server starting (or a crash) never meets half a file.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::info;
use zkop_runtime::files::write_atomic;
use zkop_runtime::pki::{BACKDATE, inspect, key_and_request};
use zkop_spec::tls::{NODE_KEY_STORE, TRUST_STORE};
use zkop_zk::ClientTls;

use crate::controller::ControllerClient;

/// The certificate in force.
struct Current {
    store_pem: String,
    not_before_ms: u64,
    not_after_ms: u64,
    addresses: Vec<IpAddr>,
    client: ClientTls,
}

/// The node's certificate, key and CA under `tls/`.
pub struct NodeTls {
    dir: PathBuf,
    current: Option<Current>,
}

impl NodeTls {
    /// The material in `dir`, read if there is any.
    pub fn open(dir: PathBuf) -> Self {
        let mut tls = Self { dir, current: None };
        // Missing or unreadable files just mean a new certificate is due.
        tls.current = tls.load().ok();
        tls
    }

    fn load(&self) -> Result<Current, String> {
        let read = |name: &str| {
            let path = self.dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let store = read(NODE_KEY_STORE)?;
        let ca = read(TRUST_STORE)?;
        let info = inspect(&store).map_err(|e| e.to_string())?;
        // The store holds the certificate and then the key; each parser takes its own part.
        let client = ClientTls::from_pem(&ca, &store, &store)?;
        Ok(Current {
            store_pem: store,
            not_before_ms: info.not_before_ms,
            not_after_ms: info.not_after_ms,
            addresses: info.addresses,
            client,
        })
    }

    /// Whether a new certificate is due at `now_ms`: none yet, one not for
    /// `address`, or one with less than `1/part` of its lifetime left (a third
    /// while running; half before a start, so that the roll a renewal causes
    /// renews every member whose turn comes soon, not one roll each).
    pub fn due(&self, address: &str, now_ms: u64, part: u64) -> bool {
        let Some(c) = &self.current else { return true };
        let ours = self.names(address);
        // The lifetime it was issued for: its validity less the backdating.
        let backdate = u64::try_from(BACKDATE.as_millis()).unwrap_or(0);
        let lifetime = c
            .not_after_ms
            .saturating_sub(c.not_before_ms)
            .saturating_sub(backdate);
        !ours || now_ms.saturating_add(lifetime / part.max(1)) >= c.not_after_ms
    }

    /// A new key and its certificate from the controller, written in place.
    pub async fn renew(
        &mut self,
        controller: &mut ControllerClient,
        instance: &str,
    ) -> Result<u64, String> {
        let req = key_and_request(instance).map_err(|e| e.to_string())?;
        let signed = controller
            .sign(instance, req.csr_pem)
            .await
            .map_err(|e| format!("certificate from the controller: {e}"))?;
        let io = |name: &str| {
            let path = self.dir.join(name);
            move |e: std::io::Error| format!("{}: {e}", path.display())
        };
        // The CA first: a new certificate must never be read against an old CA.
        write_atomic(&self.dir.join(TRUST_STORE), signed.ca.as_bytes(), 0o644)
            .map_err(io(TRUST_STORE))?;
        let store = format!("{}{}", signed.certificate, req.key_pem);
        write_atomic(&self.dir.join(NODE_KEY_STORE), store.as_bytes(), 0o600)
            .map_err(io(NODE_KEY_STORE))?;
        self.current = Some(self.load()?);
        Ok(signed.not_after_ms)
    }

    /// The key store's PEM (the certificate, then its key): the identity the
    /// agent shows the controller too.
    pub fn store_pem(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.store_pem.as_str())
    }

    /// Whether the certificate in force names `address`: a server must not
    /// start with one that does not, since its peers and its own agent
    /// check the certificate against the address it serves on.
    pub fn names(&self, address: &str) -> bool {
        self.current.as_ref().is_some_and(|c| {
            address
                .parse::<IpAddr>()
                .is_ok_and(|a| c.addresses.contains(&a))
        })
    }

    /// The identity to talk to the own server's secure port with.
    pub fn client(&self) -> Option<&ClientTls> {
        self.current.as_ref().map(|c| &c.client)
    }

    /// When the certificate in force expires (ms since the Unix epoch).
    pub fn not_after_ms(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.not_after_ms)
    }
}

impl crate::Agent {
    /// Shows the node certificate to the controller from now on.
    pub(super) fn show_identity(&mut self) {
        if let Some(store) = self.tls.store_pem().map(str::to_string)
            && let Err(e) = self.controller.set_identity(&store, &store)
        {
            self.error(e.to_string());
        }
    }

    /// Gets a certificate when one is due (none yet, or `1/part` of its
    /// lifetime left), trying again at most every 2 s.
    pub(super) async fn keep_certificate(&mut self, part: u64) {
        if !self.tls.due(&self.address, crate::backup::now_ms(), part)
            || self
                .certificate_tried
                .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        self.certificate_tried = Some(Instant::now());
        match self.tls.renew(&mut self.controller, &self.instance).await {
            Ok(not_after_ms) => {
                info!(instance = %self.instance, address = %self.address, not_after_ms, "new node certificate");
                self.show_identity();
            }
            Err(e) => self.error(format!("cannot get a node certificate: {e}")),
        }
    }
}
