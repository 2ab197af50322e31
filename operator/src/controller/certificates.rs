//! The cluster CA at work: a node's certificate for its own instance's
//! addresses only, a client's certificate for a name. The CA is the
//! controller's; node keys stay on their nodes (only requests come here).

use std::net::IpAddr;

use zkop_runtime::pki::{ClusterCa, inspect};
use zkop_spec::tls::{SignedCertificate, client_name_ok};

use super::Shared;

/// The CA and what it adds to every node certificate.
pub struct Signer {
    /// The cluster CA.
    pub ca: ClusterCa,
    /// Addresses every member connects from besides its own: on shared
    /// loopback each connection leaves from 127.0.0.1, and ZooKeeper checks
    /// a peer's certificate against the address it connects from.
    pub shared_source: Vec<IpAddr>,
}

/// Why a certificate was not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignRefused {
    /// TLS is off, so there is nothing to sign for.
    #[error("TLS is off for this cluster (spec.tls.enabled)")]
    TlsOff,
    /// The instance is not in the fleet, or its address is not known yet.
    #[error("{0}")]
    UnknownInstance(String),
    /// The request or the name is not acceptable.
    #[error("{0}")]
    BadRequest(String),
}

impl Shared {
    /// Installs the CA (once, at start).
    pub fn set_signer(&self, signer: Signer) {
        // A second call keeps the first CA: there is one per cluster.
        let _ = self.signer.set(signer);
    }

    /// The CA certificate, when TLS is on.
    pub fn ca_pem(&self) -> Option<String> {
        self.signer.get().map(|s| s.ca.cert_pem().to_string())
    }

    fn signer_for_tls(&self) -> Result<(&Signer, std::time::Duration), SignRefused> {
        let lifetime = self
            .spec()
            .tls
            .map(|t| t.certificate_lifetime)
            .ok_or(SignRefused::TlsOff)?;
        let signer = self.signer.get().ok_or(SignRefused::TlsOff)?;
        Ok((signer, lifetime))
    }

    /// Signs `instance`'s request for the address the fleet gave it.
    pub fn sign_node(&self, instance: &str, csr: &str) -> Result<SignedCertificate, SignRefused> {
        let (signer, lifetime) = self.signer_for_tls()?;
        let address = self.instance_address(instance).ok_or_else(|| {
            SignRefused::UnknownInstance(format!(
                "instance {instance} is not in the fleet, or its address is not known yet"
            ))
        })?;
        let address: IpAddr = address.parse().map_err(|_| {
            SignRefused::UnknownInstance(format!(
                "instance {instance}'s address `{address}` is not an IP address"
            ))
        })?;
        let mut addresses = vec![address];
        addresses.extend(signer.shared_source.iter().filter(|a| **a != address));
        let certificate = signer
            .ca
            .sign_node(csr, instance, &addresses, lifetime)
            .map_err(|e| SignRefused::BadRequest(e.to_string()))?;
        let signed = signed(signer, certificate)?;
        self.event(
            "certificate_issued",
            format!(
                "node certificate for {instance} ({}), valid for {}s",
                addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                lifetime.as_secs()
            ),
        );
        Ok(signed)
    }

    /// Signs a client's request as `CN=<name>`.
    pub fn sign_client(&self, name: &str, csr: &str) -> Result<SignedCertificate, SignRefused> {
        let (signer, lifetime) = self.signer_for_tls()?;
        if !client_name_ok(name) {
            return Err(SignRefused::BadRequest(format!(
                "name `{name}`: use 1 to 64 letters, digits, `-`, `_`, `.` or `@`"
            )));
        }
        let certificate = signer
            .ca
            .sign_client(csr, name, lifetime)
            .map_err(|e| SignRefused::BadRequest(e.to_string()))?;
        let signed = signed(signer, certificate)?;
        self.event(
            "certificate_issued",
            format!(
                "client certificate for CN={name}, valid for {}s",
                lifetime.as_secs()
            ),
        );
        Ok(signed)
    }
}

fn signed(signer: &Signer, certificate: String) -> Result<SignedCertificate, SignRefused> {
    let info = inspect(&certificate).map_err(|e| SignRefused::BadRequest(e.to_string()))?;
    Ok(SignedCertificate {
        certificate,
        ca: signer.ca.cert_pem().to_string(),
        not_after_ms: info.not_after_ms,
    })
}
