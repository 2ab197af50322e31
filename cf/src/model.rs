//! The template and the resource types zkop's stack uses, as typed structs
//! that serialize to CloudFormation's JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::expr::Expr;

/// A whole template.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Template {
    /// Always `2010-09-09`.
    #[serde(rename = "AWSTemplateFormatVersion")]
    pub format_version: String,
    /// What the stack is.
    pub description: String,
    /// Inputs, by name.
    pub parameters: BTreeMap<String, Parameter>,
    /// Named conditions.
    pub conditions: BTreeMap<String, Expr>,
    /// Resources, by logical id.
    pub resources: BTreeMap<String, Resource>,
    /// Outputs, by name.
    pub outputs: BTreeMap<String, Output>,
}

/// A template parameter.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// Its CloudFormation type (`String`, `AWS::EC2::VPC::Id`, ...).
    #[serde(rename = "Type")]
    pub kind: String,
    /// What it is for.
    pub description: String,
    /// Its default; none means required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The values it may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
    /// A regular expression it must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    /// Lower bound of a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_value: Option<u32>,
    /// Upper bound of a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_value: Option<u32>,
}

impl Parameter {
    /// A parameter of `kind` without default.
    pub fn required(kind: &str, description: &str) -> Parameter {
        Parameter {
            kind: kind.to_string(),
            description: description.to_string(),
            default: None,
            allowed_values: None,
            allowed_pattern: None,
            min_value: None,
            max_value: None,
        }
    }

    /// The same with a default.
    pub fn default(mut self, v: &str) -> Parameter {
        self.default = Some(v.to_string());
        self
    }

    /// The same limited to `values`.
    pub fn one_of(mut self, values: &[&str]) -> Parameter {
        self.allowed_values = Some(values.iter().map(|v| v.to_string()).collect());
        self
    }

    /// The same limited to `pattern`.
    pub fn pattern(mut self, pattern: &str) -> Parameter {
        self.allowed_pattern = Some(pattern.to_string());
        self
    }

    /// The same limited to `min..=max`.
    pub fn range(mut self, min: u32, max: u32) -> Parameter {
        self.min_value = Some(min);
        self.max_value = Some(max);
        self
    }
}

/// A template output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    /// What it is.
    pub description: String,
    /// Its value.
    pub value: Expr,
    /// Only when this condition holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// A resource: its type and properties, and its attributes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    /// Type and properties.
    #[serde(flatten)]
    pub kind: Kind,
    /// Only when this condition holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// `Retain` for resources holding state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<String>,
    /// The same on replacement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_replace_policy: Option<String>,
}

impl Resource {
    /// A resource of this kind, always created.
    pub fn new(kind: Kind) -> Resource {
        Resource {
            kind,
            condition: None,
            deletion_policy: None,
            update_replace_policy: None,
        }
    }

    /// Created only when `condition` holds.
    pub fn when(mut self, condition: &str) -> Resource {
        self.condition = Some(condition.to_string());
        self
    }

    /// Kept when the stack is deleted or the resource replaced: it holds state.
    pub fn retained(mut self) -> Resource {
        self.deletion_policy = Some("Retain".into());
        self.update_replace_policy = Some("Retain".into());
        self
    }
}

/// The resource types the stack uses.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "Type", content = "Properties")]
pub enum Kind {
    /// `AWS::EC2::SecurityGroup`.
    #[serde(rename = "AWS::EC2::SecurityGroup")]
    SecurityGroup(SecurityGroup),
    /// `AWS::EC2::SecurityGroupIngress`.
    #[serde(rename = "AWS::EC2::SecurityGroupIngress")]
    SecurityGroupIngress(Ingress),
    /// `AWS::EC2::LaunchTemplate`.
    #[serde(rename = "AWS::EC2::LaunchTemplate")]
    LaunchTemplate(LaunchTemplate),
    /// `AWS::EC2::Instance`.
    #[serde(rename = "AWS::EC2::Instance")]
    Instance(Instance),
    /// `AWS::AutoScaling::AutoScalingGroup`.
    #[serde(rename = "AWS::AutoScaling::AutoScalingGroup")]
    AutoScalingGroup(Box<AutoScalingGroup>),
    /// `AWS::Logs::LogGroup`.
    #[serde(rename = "AWS::Logs::LogGroup")]
    LogGroup(LogGroup),
    /// `AWS::DynamoDB::Table`.
    #[serde(rename = "AWS::DynamoDB::Table")]
    Table(Table),
    /// `AWS::IAM::Role`.
    #[serde(rename = "AWS::IAM::Role")]
    Role(Role),
    /// `AWS::IAM::InstanceProfile`.
    #[serde(rename = "AWS::IAM::InstanceProfile")]
    InstanceProfile(InstanceProfile),
    /// `AWS::S3::Bucket`.
    #[serde(rename = "AWS::S3::Bucket")]
    Bucket(Bucket),
}

/// `AWS::S3::Bucket` for backups.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Bucket {
    /// `{Status: Enabled}`.
    pub versioning_configuration: Expr,
    /// Default encryption.
    pub bucket_encryption: Expr,
    /// Every public access blocked.
    pub public_access_block_configuration: Expr,
    /// Object Lock, when asked for (`AWS::NoValue` otherwise).
    pub object_lock_enabled: Expr,
    /// Its default retention, when asked for.
    pub object_lock_configuration: Expr,
    /// Lifecycle rules.
    pub lifecycle_configuration: Expr,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// `AWS::EC2::SecurityGroup`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroup {
    /// What it guards.
    pub group_description: String,
    /// The VPC.
    pub vpc_id: Expr,
    /// Inline ingress rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_group_ingress: Vec<Expr>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// `AWS::EC2::SecurityGroupIngress`: one TCP port from a source group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ingress {
    /// The group the rule belongs to.
    pub group_id: Expr,
    /// What the rule is for.
    pub description: String,
    /// Always `tcp`.
    pub ip_protocol: String,
    /// The port.
    pub from_port: Expr,
    /// The same port.
    pub to_port: Expr,
    /// Where traffic may come from.
    pub source_security_group_id: Expr,
}

/// A tag.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Expr,
}

/// A group's tag, optionally passed to its instances.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupTag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Expr,
    /// Whether instances get it.
    pub propagate_at_launch: bool,
}

/// `AWS::EC2::LaunchTemplate`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LaunchTemplate {
    /// Its name.
    pub launch_template_name: Expr,
    /// What instances launch with.
    pub launch_template_data: LaunchTemplateData,
}

/// A launch template's data.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LaunchTemplateData {
    /// The AMI.
    pub image_id: Expr,
    /// The instance type.
    pub instance_type: Expr,
    /// The SSH key pair, if any.
    pub key_name: Expr,
    /// `{Name: profile}`.
    pub iam_instance_profile: Expr,
    /// The instances' security groups.
    pub security_group_ids: Vec<Expr>,
    /// IMDSv2 settings.
    pub metadata_options: MetadataOptions,
    /// Volumes: ZooKeeper's data on its own.
    pub block_device_mappings: Vec<Expr>,
    /// Tags given to what it launches.
    pub tag_specifications: Vec<Expr>,
    /// The boot script, base64.
    pub user_data: Expr,
}

/// The instance metadata service's settings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetadataOptions {
    /// `enabled`.
    pub http_endpoint: String,
    /// `required`: IMDSv2 only.
    pub http_tokens: String,
    /// 1: nothing behind the instance (a container) reaches it.
    pub http_put_response_hop_limit: u32,
}

/// `AWS::EC2::Instance`, launched from a launch template.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Instance {
    /// `{LaunchTemplateId, Version}`.
    pub launch_template: Expr,
    /// The AMI (as in the template; moto reads only this).
    pub image_id: Expr,
    /// The instance type (likewise).
    pub instance_type: Expr,
    /// Its subnet.
    pub subnet_id: Expr,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// `AWS::AutoScaling::AutoScalingGroup`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutoScalingGroup {
    /// Its name (the spec's `autoScalingGroupName`).
    pub auto_scaling_group_name: Expr,
    /// `{LaunchTemplateId, Version}`.
    pub launch_template: Expr,
    /// Lower bound.
    pub min_size: Expr,
    /// Upper bound.
    pub max_size: Expr,
    /// Instances at creation; the controller sets it afterwards.
    pub desired_capacity: Expr,
    /// The subnets.
    #[serde(rename = "VPCZoneIdentifier")]
    pub vpc_zone_identifier: Vec<Expr>,
    /// Scale-in never picks a member; the controller removes it first.
    pub new_instances_protected_from_scale_in: bool,
    /// `EC2`.
    pub health_check_type: String,
    /// Seconds before health checks count.
    pub health_check_grace_period: u32,
    /// The termination hook that lets the controller reconfigure first.
    pub lifecycle_hook_specification_list: Vec<LifecycleHook>,
    /// Tags.
    pub tags: Vec<GroupTag>,
}

/// A lifecycle hook of a group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleHook {
    /// Its name.
    pub lifecycle_hook_name: String,
    /// `autoscaling:EC2_INSTANCE_TERMINATING`.
    pub lifecycle_transition: String,
    /// Seconds an instance may wait.
    pub heartbeat_timeout: u32,
    /// What happens when nobody answers.
    pub default_result: String,
}

/// `AWS::Logs::LogGroup`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogGroup {
    /// Its name.
    pub log_group_name: Expr,
}

/// `AWS::DynamoDB::Table` with a string hash key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Table {
    /// Its name.
    pub table_name: Expr,
    /// `PAY_PER_REQUEST`.
    pub billing_mode: String,
    /// `[{AttributeName, AttributeType}]`.
    pub attribute_definitions: Vec<Expr>,
    /// `[{AttributeName, KeyType}]`.
    pub key_schema: Vec<Expr>,
    /// Point-in-time recovery.
    pub point_in_time_recovery_specification: Expr,
}

/// `AWS::IAM::Role` for EC2, with inline policies.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    /// Who may assume it.
    pub assume_role_policy_document: PolicyDocument,
    /// Its inline policies.
    pub policies: Vec<Policy>,
}

/// An inline policy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    /// Its name.
    pub policy_name: String,
    /// Its document.
    pub policy_document: PolicyDocument,
}

/// An IAM policy document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// `2012-10-17`.
    pub version: String,
    /// Its statements.
    pub statement: Vec<Statement>,
}

/// One statement: these actions on these resources, under a condition.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// Names it.
    pub sid: String,
    /// `Allow`.
    pub effect: String,
    /// Who (trust policies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Expr>,
    /// The actions.
    pub action: Vec<String>,
    /// The resources (absent in trust policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Vec<Expr>>,
    /// A condition block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Expr>,
}

/// `AWS::IAM::InstanceProfile`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfile {
    /// Its roles (one).
    pub roles: Vec<Expr>,
}
