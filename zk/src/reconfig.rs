//! Runs a reconfig order against the local server as ZooKeeper's super user.

use std::time::Duration;

use base64::Engine;
use sha1::{Digest, Sha1};

use zkop_spec::wire::ReconfigOrder;
use zkop_spec::zk::DynamicConfig;
use zookeeper_client::EnsembleUpdate;

use crate::endpoint::Endpoint;

/// Connects, syncs, checks the config version and runs the incremental reconfig,
/// conditional on the config znode's `mzxid`. Returns the new config.
pub async fn run(
    endpoint: impl Into<Endpoint>,
    password: &str,
    order: &ReconfigOrder,
) -> Result<DynamicConfig, String> {
    let endpoint: Endpoint = endpoint.into();
    let endpoint = &endpoint;
    let auth = format!("super:{password}");
    let client = endpoint
        .connector()?
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .with_auth("digest", auth.as_bytes())
        .connect(&endpoint.connect_string())
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
    // Secure-only servers have no client part, and ZooKeeper refuses to add
    // such a line incrementally ("each server should have 3 ports
    // specified"): name the whole membership instead.
    let whole: Vec<String> = current
        .apply(&order.joining, &order.leaving)
        .servers
        .values()
        .map(|s| s.line())
        .collect();
    let whole: Vec<&str> = whole.iter().map(String::as_str).collect();
    let update = if order.joining.iter().any(|s| !s.has_client_part()) {
        EnsembleUpdate::New {
            ensemble: whole.iter().copied(),
        }
    } else {
        EnsembleUpdate::Incremental {
            joinings: joining.iter().copied(),
            leavings: leaving.iter().copied(),
        }
    };
    let (data, _) = match client.update_ensemble(update, Some(stat.mzxid)).await {
        Ok(reply) => reply,
        Err(zookeeper_client::Error::UnexpectedErrorCode(-13)) => {
            return Err("NewConfigNoQuorum".to_string());
        }
        Err(zookeeper_client::Error::UnexpectedErrorCode(-14)) => {
            return Err("ReconfigInProgress".to_string());
        }
        // Removing the leader ends its leadership, and the servers drop their
        // clients for the election: the reply is lost, not the reconfig.
        Err(zookeeper_client::Error::ConnectionLoss) => {
            return outcome_after_connection_loss(endpoint, &auth, order, &current).await;
        }
        Err(other) => return Err(format!("reconfig: {other}")),
    };
    DynamicConfig::parse(&String::from_utf8_lossy(&data))
        .map_err(|e| format!("reconfig reply: {e}"))
}

/// How long to wait for the ensemble to answer again after a lost reply.
const OUTCOME_WAIT: Duration = Duration::from_secs(15);

/// Reads the config again until the ensemble serves: the reconfig happened if
/// the config moved past the order's version to the membership it asked for.
async fn outcome_after_connection_loss(
    endpoint: &Endpoint,
    auth: &str,
    order: &ReconfigOrder,
    before: &DynamicConfig,
) -> Result<DynamicConfig, String> {
    let wanted = before.apply(&order.joining, &order.leaving);
    let members =
        |c: &DynamicConfig| -> Vec<_> { c.servers.values().map(|s| (s.id, s.role)).collect() };
    let deadline = tokio::time::Instant::now() + OUTCOME_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(config) = read_config(endpoint, auth).await
            && config.version > Some(order.from_version)
        {
            return if members(&config) == members(&wanted) {
                Ok(config)
            } else {
                Err(format!(
                    "reconfig: the reply was lost and the config moved to version {} without this change",
                    config.version.map(|v| v.to_string()).unwrap_or_default()
                ))
            };
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!(
        "reconfig: connection to server has lost, and the config could not be read within {}s to tell whether it happened",
        OUTCOME_WAIT.as_secs()
    ))
}

/// The committed config as `endpoint` has it after a sync.
async fn read_config(endpoint: &Endpoint, auth: &str) -> Result<DynamicConfig, String> {
    let client = endpoint
        .connector()?
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(2))
        .with_auth("digest", auth.as_bytes())
        .connect(&endpoint.connect_string())
        .await
        .map_err(|e| e.to_string())?;
    client
        .sync("/zookeeper/config")
        .await
        .map_err(|e| e.to_string())?;
    let (data, _) = client.get_config().await.map_err(|e| e.to_string())?;
    DynamicConfig::parse(&String::from_utf8_lossy(&data)).map_err(|e| e.to_string())
}

/// The value ZooKeeper's `superDigest` takes: `super:base64(sha1("super:<password>"))`.
pub fn super_digest(password: &str) -> String {
    digest_id("super", password)
}

/// A `digest` ACL's id for `user` with `password`, as ZooKeeper's
/// DigestAuthenticationProvider computes it: `user:base64(sha1("user:password"))`.
pub fn digest_id(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
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
