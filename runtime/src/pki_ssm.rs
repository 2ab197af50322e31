//! The cluster CA on AWS, kept beside the cluster's secrets in SSM: its key
//! (with its certificate) in a SecureString only controllers read, written
//! once (`Overwrite=false`, so that controllers racing to make it agree on
//! the first one written), and its certificate in a String parameter agents
//! read to verify the controller before their first call.

use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ssm::types::ParameterType;
use serde::{Deserialize, Serialize};

use crate::pki::ClusterCa;

/// The SecureString holding the CA's certificate and key: controllers only.
pub fn key_parameter(secrets_parameter: &str) -> String {
    format!("{secrets_parameter}.ca")
}

/// The String holding the CA's certificate: agents read it.
pub fn certificate_parameter(secrets_parameter: &str) -> String {
    format!("{secrets_parameter}.ca-certificate")
}

/// Why the CA could not be read or made in SSM.
pub type SsmCaError = crate::secrets::SsmSecretsError;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredCa {
    certificate: String,
    key: String,
}

/// Reads a parameter's value; `None` when there is no such parameter.
async fn get(
    client: &aws_sdk_ssm::Client,
    name: &str,
    decrypt: bool,
) -> Result<Option<String>, SsmCaError> {
    match client
        .get_parameter()
        .name(name)
        .with_decryption(decrypt)
        .send()
        .await
    {
        Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(str::to_string)),
        Err(e) if e.code() == Some("ParameterNotFound") => Ok(None),
        Err(e) => Err(SsmCaError::Call {
            name: name.to_string(),
            reason: DisplayErrorContext(e).to_string(),
        }),
    }
}

/// The cluster CA kept under `secrets_parameter`, made and stored if there
/// is none yet; its certificate is published for the agents.
pub async fn ensure_ssm_ca(
    client: &aws_sdk_ssm::Client,
    secrets_parameter: &str,
    cluster: &str,
) -> Result<ClusterCa, SsmCaError> {
    let name = key_parameter(secrets_parameter);
    let bad = |reason: String| SsmCaError::Value {
        name: name.clone(),
        reason,
    };
    let stored = match get(client, &name, true).await? {
        Some(v) => v,
        None => {
            let ca = ClusterCa::generate(cluster).map_err(|e| bad(e.to_string()))?;
            let value = serde_json::to_string(&StoredCa {
                certificate: ca.cert_pem().to_string(),
                key: ca.key_pem(),
            })
            .map_err(|e| bad(e.to_string()))?;
            let put = client
                .put_parameter()
                .name(&name)
                .r#type(ParameterType::SecureString)
                .value(value)
                .overwrite(false)
                .description("zkop: the cluster CA's certificate and key")
                .send()
                .await;
            match put {
                Ok(_) => {}
                // Another controller wrote one first: its CA is the cluster's.
                Err(e) if e.code() == Some("ParameterAlreadyExists") => {}
                Err(e) => {
                    return Err(SsmCaError::Call {
                        name,
                        reason: DisplayErrorContext(e).to_string(),
                    });
                }
            }
            get(client, &name, true)
                .await?
                .ok_or_else(|| bad("written, yet not found".into()))?
        }
    };
    let stored: StoredCa = serde_json::from_str(&stored)
        .map_err(|e| bad(format!("not a zkop CA ({e}); delete it to have one made")))?;
    let ca =
        ClusterCa::from_pem(&stored.certificate, &stored.key).map_err(|e| bad(e.to_string()))?;
    publish_certificate(client, secrets_parameter, ca.cert_pem()).await?;
    Ok(ca)
}

/// Keeps the agents' copy of the CA certificate equal to `pem`.
async fn publish_certificate(
    client: &aws_sdk_ssm::Client,
    secrets_parameter: &str,
    pem: &str,
) -> Result<(), SsmCaError> {
    let name = certificate_parameter(secrets_parameter);
    if get(client, &name, false).await?.as_deref() == Some(pem) {
        return Ok(());
    }
    client
        .put_parameter()
        .name(&name)
        .r#type(ParameterType::String)
        .value(pem)
        .overwrite(true)
        .description("zkop: the cluster CA's certificate, for the agents")
        .send()
        .await
        .map_err(|e| SsmCaError::Call {
            name,
            reason: DisplayErrorContext(e).to_string(),
        })?;
    Ok(())
}

/// The CA certificate the agents verify the controller with, if the
/// controller published one.
pub async fn ssm_ca_certificate(
    client: &aws_sdk_ssm::Client,
    secrets_parameter: &str,
) -> Result<Option<String>, SsmCaError> {
    get(client, &certificate_parameter(secrets_parameter), false).await
}
