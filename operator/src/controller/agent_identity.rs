//! Which agent is asking. The bearer token says only "one of this cluster's
//! agents" (every member holds it), so each agent also shows its own key
//! (`X-Zkop-Agent-Key`, made on its instance at its first start). The
//! controller binds an instance to the key its agent showed at first
//! contact, and only from that instance's own address as the fleet knows
//! it; from then on a request for that instance with another key is
//! refused, on HTTP and HTTPS alike. With TLS on, the node certificate must
//! name the instance as well.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::Shared;
use crate::api_tls::Peer;

/// The header an agent shows its own key in.
pub const AGENT_KEY_HEADER: &str = "x-zkop-agent-key";

/// Why an agent's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentRefused {
    /// The fleet does not list the instance (yet): it is looked at again.
    #[error("instance {0} is not in the fleet (yet): the fleet is looked at again")]
    UnknownInstance(String),
    /// The caller is not that instance's agent.
    #[error("{0}")]
    Forbidden(String),
}

/// A key's digest: the controller keeps no agent's key itself.
fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.trim().as_bytes()).into()
}

impl Shared {
    /// Whether this request speaks for `instance`'s agent: it shows the key
    /// bound to the instance (binding it at first contact, from the
    /// instance's own address only) and, with TLS on, that instance's node
    /// certificate (or, before it has one, asks for its first from its own
    /// address). Every doubt refuses: an unknown address, no key, no peer.
    pub fn authorize_agent(
        &self,
        instance: &str,
        peer: Option<&Peer>,
        key: Option<&str>,
        asking_certificate: bool,
    ) -> Result<(), AgentRefused> {
        let forbidden = |why: String| Err(AgentRefused::Forbidden(why));
        let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
            return forbidden(format!(
                "an agent shows its own key ({AGENT_KEY_HEADER}): this request for instance {instance} showed none"
            ));
        };
        if !self.instance_listed(instance) {
            self.ask_for_fleet_look();
            return Err(AgentRefused::UnknownInstance(instance.to_string()));
        }
        let own = self
            .instance_address(instance)
            .and_then(|a| a.parse::<IpAddr>().ok());
        let from = peer.map(|p| p.address);
        let shown = digest(key);
        let bound = self.lock().agent_keys.get(instance).copied();
        match bound {
            Some(bound) if crate::api::constant_time_eq(&bound, &shown) => {}
            // First contact, or a new key (the agent's data directory was
            // made anew): only from the instance's own address.
            _ => match (own, from) {
                (Some(own), Some(from)) if own == from => {
                    self.lock().agent_keys.insert(instance.to_string(), shown);
                    if bound.is_some() {
                        self.event(
                            "agent_key_changed",
                            format!("instance {instance}'s agent shows a new key, from its own address {own}"),
                        );
                    }
                }
                (None, _) => {
                    return forbidden(format!(
                        "instance {instance}'s address is not known yet: its agent's first contact waits until the fleet names it"
                    ));
                }
                (Some(own), from) => {
                    let what = match bound {
                        Some(_) => {
                            "this request shows another key than the one its agent registered, and"
                        }
                        None => "its agent registers from its own address only, and",
                    };
                    return forbidden(format!(
                        "instance {instance}: {what} came from {}, not {own}",
                        from.map_or("an unknown address".into(), |a| a.to_string())
                    ));
                }
            },
        }
        self.authorize_node_certificate(instance, peer, own, asking_certificate)
            .map_err(AgentRefused::Forbidden)
    }

    /// Binds `key` to `instance` as its agent's first contact would (tests
    /// that play an agent already known).
    #[cfg(test)]
    pub(crate) fn bind_agent_key(&self, instance: &str, key: &str) {
        self.lock()
            .agent_keys
            .insert(instance.to_string(), digest(key));
    }

    /// With TLS on, an agent speaks only for its own instance: the node
    /// certificate it shows names it. Before it has one it may ask for its
    /// first certificate, and only from its instance's own address.
    fn authorize_node_certificate(
        &self,
        instance: &str,
        peer: Option<&Peer>,
        own: Option<IpAddr>,
        asking_certificate: bool,
    ) -> Result<(), String> {
        let (Some(signer), Some(peer)) = (self.signer.get(), peer.filter(|p| p.over_tls)) else {
            // TLS off, or an API on plain HTTP (TLS switched on live, the
            // API still on HTTP until a restart): the key is the identity.
            return Ok(());
        };
        match &peer.node {
            Some(cn) if cn == instance => Ok(()),
            Some(cn) => Err(format!(
                "this connection's node certificate is instance {cn}'s: an agent speaks only for its own instance, not {instance}"
            )),
            None if asking_certificate => {
                if own == Some(peer.address) || signer.shared_source.contains(&peer.address) {
                    Ok(())
                } else {
                    Err(format!(
                        "instance {instance} asks for its certificate from its own address ({}); this request came from {}",
                        own.map_or("unknown".into(), |a| a.to_string()),
                        peer.address
                    ))
                }
            }
            None => Err(format!(
                "with TLS on, an agent shows its node certificate: this connection showed none for instance {instance}"
            )),
        }
    }
}
