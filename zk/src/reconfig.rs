//! Runs a reconfig order against the local server as ZooKeeper's super user.

use std::time::Duration;

use base64::Engine;
use sha1::{Digest, Sha1};

use zkop_spec::wire::ReconfigOrder;
use zkop_spec::zk::DynamicConfig;
use zookeeper_client::{Client, EnsembleUpdate};

/// Connects, syncs, checks the config version and runs the incremental reconfig,
/// conditional on the config znode's `mzxid`. Returns the new config.
pub async fn run(
    endpoint: &str,
    password: &str,
    order: &ReconfigOrder,
) -> Result<DynamicConfig, String> {
    let auth = format!("super:{password}");
    let client = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .with_auth("digest", auth.as_bytes())
        .connect(endpoint)
        .await
        .map_err(|e| format!("connect to {endpoint}: {e}"))?;
    // A follower's view can be stale: sync before reading the config.
    client
        .sync("/zookeeper/config")
        .await
        .map_err(|e| format!("sync: {e}"))?;
    let (data, stat) = client
        .get_config()
        .await
        .map_err(|e| format!("get config: {e}"))?;
    let current = DynamicConfig::parse(&String::from_utf8_lossy(&data))
        .map_err(|e| format!("config znode: {e}"))?;
    if current.version != Some(order.from_version) {
        return Err(format!(
            "BadVersion: the config is at version {}, the order was for {}",
            current
                .version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into()),
            order.from_version
        ));
    }
    let joining: Vec<String> = order.joining.iter().map(|s| s.line()).collect();
    let leaving: Vec<String> = order.leaving.iter().map(|id| id.to_string()).collect();
    let joining: Vec<&str> = joining.iter().map(String::as_str).collect();
    let leaving: Vec<&str> = leaving.iter().map(String::as_str).collect();
    let update = EnsembleUpdate::Incremental {
        joinings: joining.iter().copied(),
        leavings: leaving.iter().copied(),
    };
    let (data, _) = client
        .update_ensemble(update, Some(stat.mzxid))
        .await
        .map_err(|e| match e {
            zookeeper_client::Error::UnexpectedErrorCode(-13) => "NewConfigNoQuorum".to_string(),
            zookeeper_client::Error::UnexpectedErrorCode(-14) => "ReconfigInProgress".to_string(),
            other => format!("reconfig: {other}"),
        })?;
    DynamicConfig::parse(&String::from_utf8_lossy(&data))
        .map_err(|e| format!("reconfig reply: {e}"))
}

/// The value ZooKeeper's `superDigest` takes: `super:base64(sha1("super:<password>"))`.
pub fn super_digest(password: &str) -> String {
    let hash = Sha1::digest(format!("super:{password}").as_bytes());
    format!(
        "super:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn super_digest_matches_zookeepers_digest_authentication_provider() {
        // base64(sha1("super:secret")), as ZooKeeper's DigestAuthenticationProvider computes it
        // (checked with Python's hashlib).
        assert_eq!(
            super::super_digest("secret"),
            "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
        );
    }
}
