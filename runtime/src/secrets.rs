//! The cluster's secrets: the API token and ZooKeeper's super-user password,
//! kept in private files (0600) or read from an SSM SecureString parameter.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::RngCore;

use zkop_spec::wire::ClusterSecrets;

/// Reads the secret at `path`, creating a random one (0600) if there is none.
pub fn ensure_secret(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is empty; delete it to have a new secret made",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{secret}\n").as_bytes())?;
    f.sync_all()?;
    Ok(secret)
}

/// Why an SSM parameter of the cluster's (its secrets, its CA) could not
/// be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SsmSecretsError {
    /// The call failed.
    #[error("SSM parameter {name}: {reason}")]
    Call {
        /// The parameter.
        name: String,
        /// The SDK's words.
        reason: String,
    },
    /// The parameter has no value, or not the secrets' JSON.
    #[error("SSM parameter {name}: {reason}")]
    Value {
        /// The parameter.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the cluster's secrets from an SSM SecureString parameter through
/// `client` (built by the caller, which may count its calls).
pub async fn from_ssm(
    client: &aws_sdk_ssm::Client,
    name: &str,
) -> Result<ClusterSecrets, SsmSecretsError> {
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| SsmSecretsError::Call {
            name: name.to_string(),
            reason: aws_sdk_ssm::error::DisplayErrorContext(e).to_string(),
        })?;
    let value = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| SsmSecretsError::Value {
            name: name.to_string(),
            reason: "no value".into(),
        })?;
    ClusterSecrets::parse(value).map_err(|e| SsmSecretsError::Value {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

/// Writes a secret to `path` (0600), replacing what was there.
pub fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    crate::files::write_atomic(path, format!("{secret}\n").as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_is_made_once_private_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let a = ensure_secret(&path).unwrap();
        assert_eq!(a.len(), 48);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(ensure_secret(&path).unwrap(), a);
    }
}
