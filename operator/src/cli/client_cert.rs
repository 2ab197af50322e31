//! `zkop client-cert NAME --out DIR`: a client certificate from the cluster
//! CA. The key is made here and stays here; only a signing request goes to
//! the controller. ZooKeeper's x509 provider makes the certificate's
//! subject, `CN=NAME`, the client's ACL identity (`x509:CN=NAME`).

use std::path::{Path, PathBuf};

use zkop_runtime::files::write_atomic;
use zkop_runtime::pki::key_and_request;
use zkop_spec::tls::{ClientCertificateRequest, SignedCertificate, client_name_ok};

use super::client::{ApiFile, StatusError, post_json};

/// Why no certificate was written.
#[derive(Debug, thiserror::Error)]
pub enum ClientCertError {
    /// The name cannot be a certificate's common name.
    #[error("NAME `{0}`: use 1 to 64 letters, digits, `-`, `_`, `.` or `@`")]
    BadName(String),
    /// A file would be overwritten (a key another client may use).
    #[error("{0} exists: choose another --out, or remove it first")]
    Exists(PathBuf),
    /// The key or request could not be made.
    #[error("{0}")]
    Key(String),
    /// The controller refused or did not answer.
    #[error(transparent)]
    Controller(#[from] StatusError),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The files written: `ca.pem`, `cert.pem`, `key.pem` (0600).
pub const FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

/// Makes a key in `out`, has the controller at `url` sign it as `CN=name`,
/// and writes the three files; returns the signed certificate.
pub async fn issue(
    api: &ApiFile,
    name: &str,
    out: &Path,
) -> Result<SignedCertificate, ClientCertError> {
    if !client_name_ok(name) {
        return Err(ClientCertError::BadName(name.to_string()));
    }
    if let Some(existing) = FILES.iter().map(|f| out.join(f)).find(|p| p.exists()) {
        return Err(ClientCertError::Exists(existing));
    }
    let req = key_and_request(name).map_err(|e| ClientCertError::Key(e.to_string()))?;
    let signed: SignedCertificate = post_json(
        api,
        "/v1/client-certificates",
        &ClientCertificateRequest {
            name: name.to_string(),
            csr: req.csr_pem,
        },
    )
    .await?;
    for (file, text, mode) in [
        ("key.pem", &req.key_pem, 0o600),
        ("cert.pem", &signed.certificate, 0o644),
        ("ca.pem", &signed.ca, 0o644),
    ] {
        let path = out.join(file);
        write_atomic(&path, text.as_bytes(), mode)
            .map_err(|source| ClientCertError::Write { path, source })?;
    }
    Ok(signed)
}
