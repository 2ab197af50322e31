//! Fleet and ledger hygiene that is always safe: capacity, adoption,
//! termination of what left, lifecycle hooks, forgetting the gone.

use super::{Ctx, Step};
use crate::model::InstanceState;

impl Ctx<'_> {
    /// Fleet and ledger hygiene that is always safe.
    pub(super) fn housekeeping(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.obs.roll_requested || self.serves_old_certificate().is_some() {
            steps.push(Step::BeginRoll);
        }
        for instance in &self.obs.replace_requested {
            steps.push(Step::ReplaceInstance {
                instance: instance.clone(),
            });
        }
        let config = self.p.config.as_ref();
        for m in self.p.members.values() {
            let listed = m.role_in(config).is_some();
            let up = self.obs.instance_up(&m.instance);
            if self.obs.instance_gone(&m.instance) && !listed {
                steps.push(Step::ForgetMember { id: m.id });
            } else if !listed && !m.retiring && self.p.voters_down.contains(&m.id) {
                // Its vote went to a standby: its instance makes room for a new one.
                steps.push(Step::RetireMember { id: m.id });
            } else if up && !listed && m.retiring {
                steps.push(Step::TerminateInstance {
                    instance: m.instance.clone(),
                });
            } else if up && !m.retiring && !m.adopted {
                steps.push(Step::AdoptInstance { id: m.id });
            }
        }
        // Instances a termination hook holds: let them go once no member of
        // theirs is in the config.
        for i in self
            .obs
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Terminating)
        {
            let listed = self
                .p
                .members
                .values()
                .any(|m| m.instance == i.id && m.role_in(config).is_some());
            if !listed {
                steps.push(Step::CompleteLifecycleAction {
                    instance: i.id.clone(),
                });
            }
        }
        // A dead voter whose instance is still up (its server hung, its
        // agent alive) holds that instance until it leaves the config: one
        // more instance is needed for its replacement, or it never comes.
        let replicas = self.replicas() + self.held_by_dead();
        let up: Vec<&str> = self
            .obs
            .instances
            .iter()
            .filter(|i| self.obs.instance_up(&i.id))
            .map(|i| i.id.as_str())
            .collect();
        if self.spec.externally_scaled() {
            // The group's own policies size it.
        } else if self.obs.desired_capacity < replicas {
            steps.push(Step::SetDesiredCapacity { capacity: replicas });
        } else if self.obs.desired_capacity > replicas.max(up.len() as u32) {
            steps.push(Step::SetDesiredCapacity {
                capacity: replicas.max(up.len() as u32),
            });
        }
        // Spare instances that hold no member, beyond what the spec wants.
        let holding = up
            .iter()
            .filter(|i| self.record_of_instance(i).is_some_and(|m| !m.retiring))
            .count();
        let mut spare = (up.len() as u32).saturating_sub(replicas.max(holding as u32));
        for i in up.iter().rev() {
            if spare == 0 {
                break;
            }
            if self.record_of_instance(i).is_none() {
                steps.push(Step::TerminateInstance {
                    instance: i.to_string().into(),
                });
                spare -= 1;
            }
        }
        steps
    }

    /// An up instance with a report and no member, to claim an id for.
    pub(super) fn claim_candidate(&self) -> Option<Step> {
        self.obs
            .instances
            .iter()
            .filter(|i| self.obs.instance_up(&i.id) && self.record_of_instance(&i.id).is_none())
            .find_map(|i| {
                let r = self.fresh_report(&i.id)?;
                // EC2 reuses private IPs: an address a member or the config
                // still holds is never handed out again. And an agent may
                // claim only its own instance's address, when the fleet knows it.
                let own = i.private_ip.as_ref().is_none_or(|ip| *ip == r.address);
                (own && !self.address_taken(&r.address)).then(|| Step::ClaimId {
                    instance: i.id.clone(),
                    address: r.address.clone(),
                })
            })
    }

    /// Whether a member record or the config holds `address`.
    pub(super) fn address_taken(&self, address: &str) -> bool {
        let held = |s: &zkop_spec::zk::Server| s.address == address || s.client_address == address;
        self.p.members.values().any(|m| held(&m.server))
            || self
                .p
                .config
                .iter()
                .flat_map(|c| c.servers.values())
                .any(held)
    }
}
