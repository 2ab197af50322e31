//! An EC2 Auto Scaling group as the fleet. Its instances, their lifecycle state
//! and zone come from the group; a member's address is the one its agent
//! advertises, never one read from EC2. Scaling in is the controller's: members
//! are protected from scale-in, and the controller terminates an instance itself
//! (lowering the desired capacity) once its member has left the config.

use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::LifecycleState;

use crate::adapters::{Fleet, FleetError, FleetView};
use crate::model::{Instance, InstanceState};
use zkop_spec::zk::ServerId;

/// An Auto Scaling group.
#[derive(Debug, Clone)]
pub struct AsgFleet {
    client: Client,
    ec2: aws_sdk_ec2::Client,
    group: String,
}

/// The tag naming an instance's cluster.
pub const CLUSTER_TAG: &str = "zkop:cluster";
/// The tag naming an instance's ZooKeeper server id.
pub const SERVER_ID_TAG: &str = "zkop:server-id";

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
        // A termination lifecycle hook holds it: still alive until completed.
        Some(L::TerminatingWait) => InstanceState::Terminating,
        // Terminating, terminated, quarantined, unknown: not a place for a member.
        _ => InstanceState::Terminated,
    }
}

impl AsgFleet {
    /// The group named `group`.
    pub fn new(config: &aws_config::SdkConfig, group: &str) -> Self {
        Self {
            client: Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
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

    async fn fence(&self, instance: &str) -> Result<(), FleetError> {
        self.client
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .map_err(|e| op("TerminateInstanceInAutoScalingGroup", super::describe(&e)))?;
        Ok(())
    }

    async fn complete_termination(&self, instance: &str) -> Result<(), FleetError> {
        let hooks = self
            .client
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(&self.group)
            .send()
            .await
            .map_err(|e| op("DescribeLifecycleHooks", super::describe(&e)))?;
        for hook in hooks.lifecycle_hooks() {
            if hook.lifecycle_transition() != Some("autoscaling:EC2_INSTANCE_TERMINATING") {
                continue;
            }
            let Some(name) = hook.lifecycle_hook_name() else {
                continue;
            };
            self.client
                .complete_lifecycle_action()
                .auto_scaling_group_name(&self.group)
                .lifecycle_hook_name(name)
                .instance_id(instance)
                .lifecycle_action_result("CONTINUE")
                .send()
                .await
                .map_err(|e| op("CompleteLifecycleAction", super::describe(&e)))?;
        }
        Ok(())
    }

    async fn adopt(&self, instance: &str, cluster: &str, id: ServerId) -> Result<(), FleetError> {
        use aws_sdk_ec2::types::Tag;
        self.client
            .set_instance_protection()
            .auto_scaling_group_name(&self.group)
            .instance_ids(instance)
            .protected_from_scale_in(true)
            .send()
            .await
            .map_err(|e| op("SetInstanceProtection", super::describe(&e)))?;
        self.ec2
            .create_tags()
            .resources(instance)
            .tags(Tag::builder().key(CLUSTER_TAG).value(cluster).build())
            .tags(
                Tag::builder()
                    .key(SERVER_ID_TAG)
                    .value(id.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                FleetError::Operation(format!("EC2 CreateTags: {}", super::describe(&e)))
            })?;
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
