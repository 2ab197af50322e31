//! Instances in their own network namespaces (`zkop local up --netns PREFIX`):
//! each instance gets namespace `PREFIX-<id>` with one veth pair to the bridge
//! `PREFIX-br` of the namespace zkop runs in (the hub, `PREFIX-hub`), so members
//! talk from their own addresses and a link can be cut to partition one. On
//! shared loopback every member connects from 127.0.0.1 and no firewall can
//! tell them apart. Nothing here touches the root namespace: zkop runs inside
//! the hub (`ip netns exec PREFIX-hub zkop local up ...`), and the namespaces
//! it adds are named in the hub's mount namespace only, so they vanish with it.

use std::net::Ipv4Addr;
use std::process::Command;

/// Where instances' namespaces hang: the bridge and the network they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    prefix: String,
    network_len: u8,
}

/// The longest prefix: a link name (prefix + `v` + instance number) must fit
/// Linux's 15 characters.
const PREFIX_MAX: usize = 8;

impl Namespaces {
    /// Instances on the bridge `PREFIX-br`, with addresses of a `/len` network.
    /// Refuses a prefix that is not 1 to 8 lowercase letters and digits.
    pub fn new(prefix: &str, network: (Ipv4Addr, u8)) -> Result<Self, String> {
        let ok = (1..=PREFIX_MAX).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(format!(
                "--netns {prefix}: expected 1 to {PREFIX_MAX} lowercase letters and digits"
            ));
        }
        Ok(Self {
            prefix: prefix.to_string(),
            network_len: network.1,
        })
    }

    /// The bridge instances attach to (in the hub).
    pub fn bridge(&self) -> String {
        bridge(&self.prefix)
    }

    /// Instance `id`'s namespace.
    pub fn namespace(&self, id: &str) -> String {
        format!("{}-{id}", self.prefix)
    }

    /// The hub's end of instance `id`'s veth pair: set it down to cut the instance off.
    pub fn hub_link(&self, id: &str) -> String {
        hub_link(&self.prefix, id)
    }

    /// Checks that the bridge exists where zkop runs, saying how to get there.
    pub fn check_hub(&self) -> Result<(), String> {
        ip(&["link", "show", &self.bridge()]).map_err(|e| {
            format!(
                "--netns {p}: no bridge {b} here ({e}); run zkop inside the hub namespace that \
                 holds it: `ip netns exec {p}-hub zkop local up ...`",
                p = self.prefix,
                b = self.bridge()
            )
        })
    }

    /// Makes instance `id`'s namespace (replacing a leftover), with `address` on
    /// its `eth0` and the other end of the pair on the bridge.
    pub fn attach(&self, id: &str, address: &str) -> std::io::Result<()> {
        let ns = self.namespace(id);
        let link = self.hub_link(id);
        if link.len() > 15 {
            return Err(std::io::Error::other(format!(
                "instance id {id}: link name {link} is longer than 15 characters"
            )));
        }
        self.detach(id);
        let cidr = format!("{address}/{}", self.network_len);
        let steps: [&[&str]; 6] = [
            &["netns", "add", &ns],
            &[
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
            &["link", "set", &link, "master", &self.bridge(), "up"],
            &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"],
            &["-n", &ns, "link", "set", "eth0", "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
        ];
        for args in steps {
            ip(args).map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    /// Removes instance `id`'s namespace; its veth pair goes with it once its
    /// processes are gone. Nothing to do when there is none.
    pub fn detach(&self, id: &str) {
        let _ = ip(&["netns", "del", &self.namespace(id)]);
    }

    /// `program` run inside instance `id`'s namespace.
    pub fn command(&self, id: &str, program: &std::path::Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(IP);
        cmd.args(["netns", "exec", &self.namespace(id)])
            .arg(program);
        cmd
    }
}

/// The bridge of the namespaces named `prefix`.
pub fn bridge(prefix: &str) -> String {
    format!("{prefix}-br")
}

/// The hub's end of instance `id`'s veth pair.
pub fn hub_link(prefix: &str, id: &str) -> String {
    format!("{prefix}v{}", id.trim_start_matches("i-"))
}

/// iproute2, where Debian puts it.
const IP: &str = "/usr/sbin/ip";

/// Runs `ip ARGS`, returning its error output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new(IP)
        .args(args)
        .output()
        .map_err(|e| format!("{IP}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_must_make_short_link_names() {
        let net = (Ipv4Addr::new(10, 0, 0, 0), 24);
        assert!(Namespaces::new("zk01", net).is_ok());
        for bad in ["", "toolongprefix", "Up", "a-b"] {
            let e = Namespaces::new(bad, net).unwrap_err();
            assert!(e.contains("--netns"), "{e}");
        }
        let ns = Namespaces::new("zk01", net).unwrap();
        assert_eq!(ns.hub_link("i-0007"), "zk01v0007");
        assert_eq!(ns.namespace("i-0007"), "zk01-i-0007");
        assert_eq!(ns.bridge(), "zk01-br");
    }
}
