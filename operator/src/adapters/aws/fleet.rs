//! An EC2 Auto Scaling group as the fleet. Its instances, their lifecycle state
//! and zone come from the group; a member's address is the one its agent
//! advertises, never one read from EC2. Scaling in is the controller's: members
//! are protected from scale-in, and the controller terminates an instance itself
//! (lowering the desired capacity) once its member has left the config.

use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::LifecycleState;

use crate::adapters::{Fleet, FleetError, FleetView};
use crate::model::{Instance, InstanceState};

/// An Auto Scaling group.
#[derive(Debug, Clone)]
pub struct AsgFleet {
    client: Client,
    group: String,
}

fn op(what: &str, e: impl std::fmt::Display) -> FleetError {
    FleetError::Operation(format!("Auto Scaling {what}: {e}"))
}

/// Maps the group's lifecycle states onto the fleet's three.
pub fn instance_state(s: Option<&LifecycleState>) -> InstanceState {
    use LifecycleState as L;
    match s {
        // Still the same instance with its disk: standby, detaching and root
        // volume replacement keep it a member.
        Some(
            L::InService
            | L::Standby
            | L::EnteringStandby
            | L::Detaching
            | L::Detached
            | L::ReplacingRootVolume
            | L::ReplacingRootVolumeProceed
            | L::ReplacingRootVolumeWait
            | L::RootVolumeReplaced,
        ) => InstanceState::Running,
        Some(
            L::Pending
            | L::PendingWait
            | L::PendingProceed
            | L::WarmedPending
            | L::WarmedPendingWait
            | L::WarmedPendingProceed
            | L::WarmedPendingRetained
            | L::WarmedRunning
            | L::WarmedStopped
            | L::WarmedHibernated,
        ) => InstanceState::Pending,
        // Terminating, terminated, quarantined, unknown: not a place for a member.
        _ => InstanceState::Terminated,
    }
}

impl AsgFleet {
    /// The group named `group`.
    pub fn new(config: &aws_config::SdkConfig, group: &str) -> Self {
        Self {
            client: Client::new(config),
            group: group.to_string(),
        }
    }
}

impl Fleet for AsgFleet {
    async fn observe(&self) -> Result<FleetView, FleetError> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.group)
            .send()
            .await
            .map_err(|e| op("DescribeAutoScalingGroups", super::describe(&e)))?;
        let group = out.auto_scaling_groups().first().ok_or_else(|| {
            op(
                "DescribeAutoScalingGroups",
                format!("no group named {}", self.group),
            )
        })?;
        let instances = group
            .instances()
            .iter()
            .filter_map(|i| {
                Some(Instance {
                    id: i.instance_id()?.to_string(),
                    state: instance_state(i.lifecycle_state()),
                    zone: i.availability_zone().map(str::to_string),
                })
            })
            .collect();
        Ok(FleetView {
            instances,
            desired_capacity: group.desired_capacity().unwrap_or(0).max(0) as u32,
        })
    }

    async fn set_desired_capacity(&self, capacity: u32) -> Result<(), FleetError> {
        self.client
            .set_desired_capacity()
            .auto_scaling_group_name(&self.group)
            .desired_capacity(capacity as i32)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| op("SetDesiredCapacity", super::describe(&e)))?;
        Ok(())
    }

    async fn terminate(&self, instance: &str) -> Result<(), FleetError> {
        self.client
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance)
            .should_decrement_desired_capacity(true)
            .send()
            .await
            .map_err(|e| op("TerminateInstanceInAutoScalingGroup", super::describe(&e)))?;
        Ok(())
    }
}
