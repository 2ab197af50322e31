//! Which spec fields may change while a cluster runs. Replicas, voter bounds,
//! ZooKeeper settings that roll, healing and roll-out policies apply live;
//! the ports (every member's address in the config), where the fleet, ids,
//! state and secrets live cannot: a controller that took such an edit would
//! keep running the old values while its spec said otherwise.

use crate::ValidatedCluster;
use crate::cluster::Fleet;
use crate::tls_stage::TlsStage;

/// The field paths `new` changes that cannot change while `running` runs;
/// empty when every change can apply live.
pub fn fixed_fields_changed(
    running: &ValidatedCluster,
    new: &ValidatedCluster,
) -> Vec<&'static str> {
    let (a, b) = (&running.zookeeper, &new.zookeeper);
    let mut changed = Vec::new();
    for (path, differs) in [
        ("spec.zookeeper.clientPort", a.client_port != b.client_port),
        ("spec.zookeeper.quorumPort", a.quorum_port != b.quorum_port),
        (
            "spec.zookeeper.secureClientPort",
            a.secure_client_port != b.secure_client_port,
        ),
        // Turning TLS on, or off while the plaintext port is still open, is
        // a staged roll-out (tls_stage); opening the plaintext port again on
        // a secure-only ensemble is not built.
        (
            "spec.tls.enabled (off, on a secure-only ensemble: its plaintext client port cannot be reopened live yet)",
            secure_only(running) && new.tls.is_none(),
        ),
        (
            "spec.tls.plaintextClientPort (on, on a secure-only ensemble: not built live yet)",
            secure_only(running) && new.tls.as_ref().is_some_and(|t| t.plaintext_client_port),
        ),
        (
            "spec.zookeeper.electionPort",
            a.election_port != b.election_port,
        ),
        ("spec.ids", running.ids != new.ids),
        ("spec.state", running.state != new.state),
        (
            "spec.secrets",
            running.secrets_parameter != new.secrets_parameter,
        ),
    ] {
        if differs {
            changed.push(path);
        }
    }
    match (&running.fleet, &new.fleet) {
        (Fleet::Local(x), Fleet::Local(y)) => {
            // The local fleet places instances by the zones it started with.
            if x.zones != y.zones {
                changed.push("spec.fleet.local.zones");
            }
            // Instances keep the addresses they were given.
            if x.network != y.network {
                changed.push("spec.fleet.local.network");
            }
        }
        (Fleet::Aws(x), Fleet::Aws(y)) => {
            if x.region != y.region {
                changed.push("spec.fleet.aws.region");
            }
            if x.auto_scaling_group_name != y.auto_scaling_group_name {
                changed.push("spec.fleet.aws.autoScalingGroupName");
            }
            // The API's listener is bound at start.
            if x.api_port != y.api_port {
                changed.push("spec.fleet.aws.apiPort");
            }
        }
        _ => changed.push("spec.fleet"),
    }
    changed
}

/// Whether `spec` runs TLS with no plaintext client port.
fn secure_only(spec: &ValidatedCluster) -> bool {
    TlsStage::target(spec) == TlsStage::SecureOnly
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> ValidatedCluster {
        let text = format!(
            "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  fleet:\n    local: {{}}\n{extra}"
        );
        crate::parse_spec(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn ports_cannot_change_live_but_settings_that_roll_can() {
        let running = spec("");
        let ports = spec("  zookeeper:\n    clientPort: 2182\n    electionPort: 3889\n");
        assert_eq!(
            fixed_fields_changed(&running, &ports),
            ["spec.zookeeper.clientPort", "spec.zookeeper.electionPort"]
        );
        let rolls = spec("  zookeeper:\n    tickTime: 400\n");
        assert!(fixed_fields_changed(&running, &rolls).is_empty());
    }

    #[test]
    fn tls_turns_on_live_and_off_while_the_plaintext_port_is_open() {
        let plain = spec("");
        let on = spec("  tls:\n    enabled: true\n");
        let beside = spec("  tls:\n    enabled: true\n    plaintextClientPort: true\n");
        assert!(fixed_fields_changed(&plain, &on).is_empty());
        assert!(fixed_fields_changed(&beside, &on).is_empty());
        assert!(fixed_fields_changed(&beside, &plain).is_empty());
        let off = fixed_fields_changed(&on, &plain);
        assert_eq!(off.len(), 1);
        assert!(off[0].starts_with("spec.tls.enabled"), "{off:?}");
        let reopen = fixed_fields_changed(&on, &beside);
        assert!(
            reopen[0].starts_with("spec.tls.plaintextClientPort"),
            "{reopen:?}"
        );
        let port = spec("  tls:\n    enabled: true\n  zookeeper:\n    secureClientPort: 2282\n");
        assert_eq!(
            fixed_fields_changed(&on, &port),
            ["spec.zookeeper.secureClientPort"]
        );
    }
}
