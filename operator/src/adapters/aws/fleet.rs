//! An EC2 Auto Scaling group as the fleet. Its instances, their lifecycle state
//! and zone come from the group; a member's address is the one its agent
//! advertises, and it must be the instance's private IP read from EC2 (the
//! planner claims no id for an agent advertising another). Scaling in is the controller's: members
//! are protected from scale-in, and the controller terminates an instance itself
//! (lowering the desired capacity) once its member has left the config.
//!
//! Which launch template version an instance came from is read from the tags
//! EC2 puts on every instance launched from a template
//! (`aws:ec2launchtemplate:id`, `aws:ec2launchtemplate:version`): the group's
//! own per-instance field may name `$Latest` rather than a number. An
//! instance's version and private IP never change, so EC2 is asked once per
//! instance. An instance the group stops listing is gone only when EC2
//! says it is terminated: a detached instance still runs its member. The AWS sandbox's instances run on loopback addresses moto does
//! not know: there (only), `ZKOP_SANDBOX_ADDRESSES` names the simulator's
//! instance-to-address file, which stands in for the private IPs, and
//! `ZKOP_SANDBOX_ZONES` its instance-to-zone file (each a path list: one
//! file per simulator).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use zkop_spec::InstanceId;

use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::{AutoScalingGroup, LifecycleState};
use tracing::warn;

use crate::adapters::{Fleet, FleetError, FleetView};
use crate::model::{Instance, InstanceState};
use zkop_spec::zk::ServerId;

/// An Auto Scaling group.
#[derive(Debug, Clone)]
pub struct AsgFleet {
    client: Client,
    ec2: aws_sdk_ec2::Client,
    group: String,
    ssm: aws_sdk_ssm::Client,
    route53: aws_sdk_route53::Client,
    /// Each instance's launch template version (`lt-0abc:3`) and private IP,
    /// once known.
    launched_from: Arc<Mutex<BTreeMap<String, Learned>>>,
    /// Every instance the group has listed and EC2 has not called gone.
    seen: Arc<Mutex<BTreeSet<String>>>,
}

/// What EC2 says of an instance that never changes.
#[derive(Debug, Clone, Default)]
struct Learned {
    template: Option<String>,
    private_ip: Option<String>,
}

/// The test-only variable naming the AWS sandbox's address file.
pub const SANDBOX_ADDRESSES: &str = "ZKOP_SANDBOX_ADDRESSES";
/// The test-only variable naming the AWS sandbox's zone file: moto puts
/// every instance in its first subnet's zone, so the simulator (with
/// `--zones`) spreads them over the zones it was given, as a group would.
pub const SANDBOX_ZONES: &str = "ZKOP_SANDBOX_ZONES";

/// The maps in the files `var` lists (a path list, as `PATH`: a controller
/// group runs one simulator per cluster), merged; none when it is unset.
/// A file not written yet, or unreadable, adds nothing.
fn sandbox_maps(var: &str) -> Option<BTreeMap<String, String>> {
    let paths = std::env::var_os(var)?;
    let mut map = BTreeMap::new();
    for path in std::env::split_paths(&paths) {
        let one: Option<BTreeMap<String, String>> = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        map.extend(one.unwrap_or_default());
    }
    Some(map)
}

/// The sandbox's instance-to-zone map, when `ZKOP_SANDBOX_ZONES` names the
/// files the simulator wrote.
fn sandbox_zones() -> Option<BTreeMap<String, String>> {
    sandbox_maps(SANDBOX_ZONES).filter(|m| !m.is_empty())
}

/// The sandbox's instance-to-address map, when `ZKOP_SANDBOX_ADDRESSES` is set.
/// Before the simulator has written it, no instance has an address yet: never
/// EC2's (moto's) private IP, which no sandbox agent runs on, or a node
/// certificate would be signed for it.
fn sandbox_addresses() -> Option<BTreeMap<String, String>> {
    sandbox_maps(SANDBOX_ADDRESSES)
}

/// The tag EC2 puts on an instance launched from a template: its id.
const TEMPLATE_ID_TAG: &str = "aws:ec2launchtemplate:id";
/// The tag EC2 puts on an instance launched from a template: its version.
const TEMPLATE_VERSION_TAG: &str = "aws:ec2launchtemplate:version";

/// The tag naming an instance's cluster.
pub const CLUSTER_TAG: &str = "zkop:cluster";
/// The tag naming an instance's ZooKeeper server id.
pub const SERVER_ID_TAG: &str = "zkop:server-id";

pub(super) fn op(what: &str, e: impl std::fmt::Display) -> FleetError {
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
        // Only EC2's word makes it gone.
        Some(L::Terminated | L::WarmedTerminated) => InstanceState::Terminated,
        // Terminating past its hook, quarantined, unknown: no place for a
        // member, but the VM may still run.
        _ => InstanceState::ShuttingDown,
    }
}

impl AsgFleet {
    /// The group named `group`.
    pub fn new(config: &aws_config::SdkConfig, group: &str) -> Self {
        Self {
            client: super::calls::autoscaling(config),
            ec2: super::calls::ec2(config),
            ssm: super::calls::ssm(config),
            route53: super::calls::route53(config),
            group: group.to_string(),
            launched_from: Arc::default(),
            seen: Arc::default(),
        }
    }

    /// The launch template version the group launches from (`lt-0abc:4`):
    /// `$Latest` and `$Default` are resolved to their numbers. `None` for a
    /// group on a launch configuration.
    async fn launches_from(&self, group: &AutoScalingGroup) -> Result<Option<String>, FleetError> {
        let spec = group.launch_template().or_else(|| {
            group
                .mixed_instances_policy()
                .and_then(|m| m.launch_template())
                .and_then(|l| l.launch_template_specification())
        });
        let Some(spec) = spec else {
            return Ok(None);
        };
        let version = spec.version().unwrap_or("$Default");
        if let (Some(id), Ok(n)) = (spec.launch_template_id(), version.parse::<u64>()) {
            return Ok(Some(format!("{id}:{n}")));
        }
        let mut ask = self.ec2.describe_launch_templates();
        ask = match (spec.launch_template_id(), spec.launch_template_name()) {
            (Some(id), _) => ask.launch_template_ids(id),
            (None, Some(name)) => ask.launch_template_names(name),
            (None, None) => return Ok(None),
        };
        let out = ask.send().await.map_err(|e| {
            FleetError::Operation(format!(
                "EC2 DescribeLaunchTemplates: {}",
                super::describe(&e)
            ))
        })?;
        let Some(t) = out.launch_templates().first() else {
            return Ok(None);
        };
        let number = match version {
            "$Latest" => t.latest_version_number(),
            "$Default" => t.default_version_number(),
            n => n.parse().ok(),
        };
        Ok(t.launch_template_id()
            .zip(number)
            .map(|(id, n)| format!("{id}:{n}")))
    }

    /// Fills in the launch template version and private IP of instances not
    /// seen before.
    /// Trouble is logged and retried next time: it only delays a replacement.
    async fn learn_launch_templates(&self, ids: &[String]) {
        let unknown: Vec<String> = {
            let known = self.launched_from.lock().unwrap_or_else(|e| e.into_inner());
            ids.iter()
                .filter(|id| !known.contains_key(*id))
                .cloned()
                .collect()
        };
        if unknown.is_empty() {
            return;
        }
        let out = match self
            .ec2
            .describe_instances()
            .set_instance_ids(Some(unknown.clone()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                warn!(error = %super::describe(&e), "EC2 DescribeInstances failed; launch template versions unknown for now");
                return;
            }
        };
        let mut known = self.launched_from.lock().unwrap_or_else(|e| e.into_inner());
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = i.instance_id() else { continue };
            let tag = |key: &str| {
                i.tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
            };
            let template = tag(TEMPLATE_ID_TAG)
                .zip(tag(TEMPLATE_VERSION_TAG))
                .map(|(t, v)| format!("{t}:{v}"));
            let private_ip = i.private_ip_address().map(str::to_string);
            known.insert(
                id.to_string(),
                Learned {
                    template,
                    private_ip,
                },
            );
        }
    }

    /// Instances the group listed before and lists no more (detached, or
    /// dropped from the listing once terminated). Only EC2's word makes one
    /// gone: terminated, or no longer known to EC2. One that still runs
    /// keeps its member and its id; when EC2 cannot be asked, the
    /// observation fails rather than call them gone.
    async fn unlisted(&self, listed: &[String]) -> Result<Vec<Instance>, FleetError> {
        use aws_sdk_ec2::types::{Filter, InstanceStateName as S};
        let missing: Vec<String> = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.extend(listed.iter().cloned());
            seen.iter()
                .filter(|id| !listed.contains(id))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        // A filter, not InstanceIds: an id EC2 no longer knows is no error.
        let out = self
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-id")
                    .set_values(Some(missing.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                FleetError::Operation(format!(
                    "EC2 DescribeInstances for instances the group no longer lists ({}): {}; they are not taken for gone",
                    missing.join(", "),
                    super::describe(&e)
                ))
            })?;
        let mut known = self.launched_from.lock().unwrap_or_else(|e| e.into_inner());
        let mut still = Vec::new();
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = i.instance_id() else { continue };
            let state = match i.state().and_then(|s| s.name()) {
                Some(S::Terminated) => continue,
                Some(S::Pending | S::Running) => InstanceState::Running,
                _ => InstanceState::ShuttingDown,
            };
            let learned = known.get(id).cloned().unwrap_or_default();
            still.push(Instance {
                id: id.into(),
                state,
                zone: i
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .map(str::to_string),
                launch_template: learned.template,
                private_ip: learned.private_ip,
            });
        }
        // Forget the gone: listed nowhere, or terminated.
        let keep = |id: &String| listed.contains(id) || still.iter().any(|i| i.id == id.as_str());
        known.retain(|id, _| keep(id));
        drop(known);
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id| keep(id));
        if !still.is_empty() {
            warn!(
                group = %self.group,
                instances = ?still.iter().map(|i| i.id.to_string()).collect::<Vec<_>>(),
                "instances detached from the group still run: their members and ids are kept"
            );
        }
        Ok(still)
    }
}

impl Fleet for AsgFleet {
    async fn publish(
        &self,
        clients: &zkop_spec::clients::ClientsPolicy,
        what: &crate::adapters::Published,
    ) -> Result<Vec<String>, FleetError> {
        super::publish::publish(&self.ssm, &self.route53, clients, what).await
    }

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
        let launch_template = self.launches_from(group).await?;
        let ids: Vec<String> = group
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        self.learn_launch_templates(&ids).await;
        let known = self
            .launched_from
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let sandbox = sandbox_addresses();
        let sandbox_zones = sandbox_zones();
        let unlisted = self.unlisted(&ids).await?;
        let mut instances: Vec<Instance> = group
            .instances()
            .iter()
            .filter_map(|i| {
                let id = i.instance_id()?.to_string();
                let zone = sandbox_zones
                    .as_ref()
                    .and_then(|z| z.get(&id).cloned())
                    .or_else(|| i.availability_zone().map(str::to_string));
                let learned = known.get(&id).cloned().unwrap_or_default();
                let private_ip = match &sandbox {
                    Some(map) => map.get(&id).cloned(),
                    None => learned.private_ip,
                };
                Some(Instance {
                    launch_template: learned.template,
                    private_ip,
                    id: id.into(),
                    state: instance_state(i.lifecycle_state()),
                    zone,
                })
            })
            .collect();
        instances.extend(unlisted.into_iter().map(|mut i| {
            if let Some(map) = &sandbox {
                i.private_ip = map.get(i.id.as_str()).cloned();
            }
            i
        }));
        Ok(FleetView {
            instances,
            desired_capacity: group.desired_capacity().unwrap_or(0).max(0) as u32,
            launch_template,
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

    async fn fence(&self, instance: &InstanceId) -> Result<(), FleetError> {
        self.client
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .map_err(|e| op("TerminateInstanceInAutoScalingGroup", super::describe(&e)))?;
        Ok(())
    }

    async fn complete_termination(&self, instance: &InstanceId) -> Result<(), FleetError> {
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

    async fn adopt(
        &self,
        instance: &InstanceId,
        cluster: &str,
        id: ServerId,
    ) -> Result<(), FleetError> {
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

    async fn terminate(&self, instance: &InstanceId) -> Result<(), FleetError> {
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
