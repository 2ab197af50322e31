//! The cluster's secrets at the agent's start: files, or the SSM
//! SecureString; with SSM and an HTTPS controller, the CA certificate the
//! controller publishes beside them.

use anyhow::Context;

use zkop_spec::wire::ClusterSecrets;

use crate::{Args, read_secret};

/// Reads the cluster's secrets from an SSM SecureString parameter; and,
/// when the controller is reached over HTTPS, the CA certificate the
/// controller publishes beside them, to verify it with.
async fn ssm_secrets(name: &str, https: bool) -> anyhow::Result<(ClusterSecrets, Option<String>)> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_ssm::Client::new(&config);
    let secrets = zkop_runtime::secrets::from_ssm(&client, name).await?;
    if !https {
        return Ok((secrets, None));
    }
    let ca = zkop_runtime::pki_ssm::ssm_ca_certificate(&client, name)
        .await?
        .with_context(|| {
            format!(
                "the controller is reached over HTTPS, but SSM has no CA certificate at {}",
                zkop_runtime::pki_ssm::certificate_parameter(name)
            )
        })?;
    Ok((secrets, Some(ca)))
}

/// The API token and the super-user password, from SSM or files; with SSM
/// and an HTTPS controller, the CA certificate published beside them too
/// (kept in the data directory as `--controller-ca`).
pub(crate) async fn read(args: &mut Args) -> anyhow::Result<(String, String)> {
    let https = args.controllers.iter().any(|u| u.starts_with("https://"));
    let secrets = match (
        &args.secrets_ssm_parameter,
        &args.token_file,
        &args.super_password_file,
    ) {
        (Some(name), _, _) => {
            let (s, ca) = ssm_secrets(name, https && args.controller_ca.is_none()).await?;
            if let Some(ca) = ca {
                let path = args.data_dir.join("controller-ca.pem");
                std::fs::create_dir_all(&args.data_dir)
                    .with_context(|| format!("creating {}", args.data_dir.display()))?;
                zkop_runtime::files::write_atomic(&path, ca.as_bytes(), 0o644)
                    .with_context(|| format!("writing {}", path.display()))?;
                args.controller_ca = Some(path);
            }
            (s.api_token, s.super_password)
        }
        (None, Some(t), Some(p)) => (read_secret(t)?, read_secret(p)?),
        _ => {
            anyhow::bail!("give --token-file and --super-password-file, or --secrets-ssm-parameter")
        }
    };
    Ok(secrets)
}
