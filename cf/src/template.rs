//! The stack: parameters, conditions, resources and outputs.
//!
//! IAM: every action is named (no wildcards). A few read-only ones have no
//! resource-level permissions in IAM and take `"*"` ([`UNSCOPED_ACTIONS`]).
//! Everything
//! else is scoped to this stack's group, log group, table, parameter, or to
//! instances tagged with the group's name.

use std::collections::BTreeMap;

use crate::expr::Expr;
use crate::iam::{controller_policy, ec2_role, member_policy};
use crate::model::*;
pub use crate::parts::UNSCOPED_ACTIONS;
use crate::parts::{CREATE_ROLES, TLS_ON, tags};

/// ZooKeeper's client, quorum and election ports (the spec's defaults).
pub const CLIENT_PORT: i64 = 2181;
/// The TLS client port (`spec.zookeeper.secureClientPort`'s default).
pub const SECURE_CLIENT_PORT: i64 = 2281;
/// The quorum port.
pub const QUORUM_PORT: i64 = 2888;
/// The leader-election port.
pub const ELECTION_PORT: i64 = 3888;

/// The termination hook's name (the controller completes it).
pub const TERMINATION_HOOK: &str = "zkop-termination";

const HAS_KEY: &str = "HasKeyName";
const HAS_SSH: &str = "HasSshSource";
const CONTROLLER: &str = "CreateControllerHost";
const CONTROLLER_SSH: &str = "ControllerHostWithSsh";

fn params() -> BTreeMap<String, Parameter> {
    let p = Parameter::required;
    [
        ("EnvironmentName", p("String", "Environment this stack belongs to (tags every resource), e.g. prod").default("prod").pattern("^[A-Za-z0-9-]{1,32}$")),
        ("ClusterName", p("String", "The zkop cluster (metadata.name): names the group, the table zkop-<name> and the log group /zkop/<name>/ids").pattern("^[a-z0-9][a-z0-9-]{0,40}$")),
        ("KeyName", p("String", "EC2 key pair for SSH; empty for none").default("")),
        ("VpcId", p("AWS::EC2::VPC::Id", "The VPC")),
        ("SubnetA", p("AWS::EC2::Subnet::Id", "Private subnet in the first availability zone")),
        ("SubnetB", p("AWS::EC2::Subnet::Id", "Private subnet in the second availability zone")),
        ("SubnetC", p("AWS::EC2::Subnet::Id", "Private subnet in the third availability zone")),
        ("SshSourceSecurityGroup", p("String", "Security group allowed SSH to the instances; empty for none").default("")),
        ("NumHosts", p("Number", "Instances at creation (the spec's replicas; the controller sizes the group afterwards)").default("3").range(1, 9)),
        ("MaxHosts", p("Number", "The group's maximum size").default("9").range(1, 99)),
        ("AmiId", p("AWS::EC2::Image::Id", "The AMI packer/build.sh baked")),
        ("InstanceType", p("String", "Instance type of the members and the controller host").default("t3.medium")),
        ("DataVolumeGb", p("Number", "Size of each member's ZooKeeper data volume, GiB").default("20").range(8, 16384)),
        ("ControllerHost", p("String", "Run the controller (zkop run) on an instance of its own").default("true").one_of(&["true", "false"])),
        ("ControllerUrl", p("String", "With ControllerHost false: the URL agents reach your controller at").default("")),
        ("ApiPort", p("Number", "The controller API's port").default("7000").range(1024, 65535)),
        ("ExistingInstanceProfile", p("String", "An instance profile to use instead of creating the two roles; empty to create them").default("")),
        ("SecretsParameterName", p("String", "The SSM SecureString parameter holding the API token and super-user password (cf/deploy.sh creates it)").pattern("^/[A-Za-z0-9/_.-]+$")),
        ("Tls", p("String", "TLS for the quorum, the clients, the agents and the API (spec.tls.enabled); the controller keeps the cluster CA in SSM beside the secrets").default("false").one_of(&["true", "false"])),
    ]
    .into_iter()
    .chain(crate::backup::params())
    .chain(crate::clients::params())
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn conditions() -> BTreeMap<String, Expr> {
    let empty = |name: &str| Expr::Equals(Box::new(Expr::r(name)), Box::new(Expr::s("")));
    let not = |e: Expr| Expr::Not(Box::new(e));
    [
        (CREATE_ROLES, empty("ExistingInstanceProfile")),
        (HAS_KEY, not(empty("KeyName"))),
        (HAS_SSH, not(empty("SshSourceSecurityGroup"))),
        (
            CONTROLLER,
            Expr::Equals(
                Box::new(Expr::r("ControllerHost")),
                Box::new(Expr::s("true")),
            ),
        ),
        (
            TLS_ON,
            Expr::Equals(Box::new(Expr::r("Tls")), Box::new(Expr::s("true"))),
        ),
        (
            CONTROLLER_SSH,
            Expr::And(vec![
                Expr::Condition(HAS_SSH.into()),
                Expr::Condition(CONTROLLER.into()),
            ]),
        ),
    ]
    .into_iter()
    .chain(crate::backup::conditions())
    .chain(crate::clients::conditions())
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn group(description: &str, name: &str, ingress: Vec<Expr>) -> Resource {
    Resource::new(Kind::SecurityGroup(SecurityGroup {
        group_description: description.into(),
        vpc_id: Expr::r("VpcId"),
        security_group_ingress: ingress,
        tags: tags(name),
    }))
}

fn ingress(group: &str, description: &str, port: Expr, source: Expr) -> Resource {
    Resource::new(Kind::SecurityGroupIngress(Ingress {
        group_id: Expr::att(group, "GroupId"),
        description: description.into(),
        ip_protocol: "tcp".into(),
        from_port: port.clone(),
        to_port: port,
        source_security_group_id: source,
    }))
}

fn profile_name(created: &str) -> Expr {
    Expr::when(
        CREATE_ROLES,
        Expr::r(created),
        Expr::r("ExistingInstanceProfile"),
    )
}

fn imds_v2() -> MetadataOptions {
    MetadataOptions {
        http_endpoint: "enabled".into(),
        http_tokens: "required".into(),
        http_put_response_hop_limit: 1,
    }
}

fn launch_template(
    name: &str,
    profile: &str,
    security_group: &str,
    data_volume: bool,
    user_data: Expr,
) -> Resource {
    let volumes = if data_volume {
        vec![Expr::obj([
            ("DeviceName", Expr::s("/dev/xvdf")),
            (
                "Ebs",
                Expr::obj([
                    ("VolumeSize", Expr::r("DataVolumeGb")),
                    ("VolumeType", Expr::s("gp3")),
                    ("Encrypted", Expr::Bool(true)),
                    ("DeleteOnTermination", Expr::Bool(true)),
                ]),
            ),
        ])]
    } else {
        Vec::new()
    };
    let tag_list = |t: Vec<Tag>| {
        Expr::List(
            t.into_iter()
                .map(|t| Expr::obj([("Key", Expr::Str(t.key)), ("Value", t.value)]))
                .collect(),
        )
    };
    Resource::new(Kind::LaunchTemplate(LaunchTemplate {
        launch_template_name: Expr::sub(format!("${{ClusterName}}-{name}")),
        launch_template_data: LaunchTemplateData {
            image_id: Expr::r("AmiId"),
            instance_type: Expr::r("InstanceType"),
            key_name: Expr::when(HAS_KEY, Expr::r("KeyName"), Expr::no_value()),
            iam_instance_profile: Expr::obj([("Name", profile_name(profile))]),
            security_group_ids: vec![Expr::att(security_group, "GroupId")],
            metadata_options: imds_v2(),
            block_device_mappings: volumes,
            tag_specifications: ["instance", "volume"]
                .into_iter()
                .map(|kind| {
                    Expr::obj([
                        ("ResourceType", Expr::s(kind)),
                        ("Tags", tag_list(tags(name))),
                    ])
                })
                .collect(),
            user_data: Expr::Base64(Box::new(user_data)),
        },
    }))
}

fn template_ref(resource: &str) -> Expr {
    Expr::obj([
        ("LaunchTemplateId", Expr::r(resource)),
        ("Version", Expr::att(resource, "LatestVersionNumber")),
    ])
}

fn resources() -> BTreeMap<String, Resource> {
    let mut r = BTreeMap::new();
    let mut add = |id: &str, res: Resource| {
        r.insert(id.to_string(), res);
    };
    security_groups(&mut add);
    storage_and_roles(&mut add);
    hosts(&mut add);
    r
}

/// Security groups and their rules.
fn security_groups(add: &mut impl FnMut(&str, Resource)) {
    // Security groups. Clients and admins join the two empty groups; members
    // reach each other on the quorum and election ports; agents listen on
    // nothing of their own.
    add(
        "ClientSecurityGroup",
        group(
            "ZooKeeper clients: members accept the client port from this group",
            "clients",
            vec![],
        ),
    );
    add(
        "AdminSecurityGroup",
        group(
            "zkop admins: the controller API accepts this group",
            "admins",
            vec![],
        ),
    );
    add(
        "MemberSecurityGroup",
        group("ZooKeeper members", "members", vec![]),
    );
    let member_rules = [
        (
            "MemberClientIngress",
            "ZooKeeper clients",
            CLIENT_PORT,
            "ClientSecurityGroup",
        ),
        (
            "MemberSecureClientIngress",
            "ZooKeeper clients over TLS",
            SECURE_CLIENT_PORT,
            "ClientSecurityGroup",
        ),
        (
            "MemberQuorumIngress",
            "quorum among members",
            QUORUM_PORT,
            "MemberSecurityGroup",
        ),
        (
            "MemberElectionIngress",
            "leader election among members",
            ELECTION_PORT,
            "MemberSecurityGroup",
        ),
    ];
    for (id, what, port, source) in member_rules {
        add(
            id,
            ingress(
                "MemberSecurityGroup",
                what,
                Expr::Int(port),
                Expr::att(source, "GroupId"),
            ),
        );
    }
    controller_and_ssh_rules(add);
}

/// The controller's group, its ingress from members and admins, and SSH
/// when asked for.
fn controller_and_ssh_rules(add: &mut impl FnMut(&str, Resource)) {
    add(
        "ControllerSecurityGroup",
        group("zkop controller", "controller", vec![]).when(CONTROLLER),
    );
    add(
        "ControllerAgentIngress",
        ingress(
            "ControllerSecurityGroup",
            "agents reach the controller API",
            Expr::r("ApiPort"),
            Expr::att("MemberSecurityGroup", "GroupId"),
        )
        .when(CONTROLLER),
    );
    add(
        "ControllerAdminIngress",
        ingress(
            "ControllerSecurityGroup",
            "admins reach the controller API",
            Expr::r("ApiPort"),
            Expr::att("AdminSecurityGroup", "GroupId"),
        )
        .when(CONTROLLER),
    );
    // SSH, when asked for (separate rules: moto cannot take `AWS::NoValue`
    // inside an inline rule list).
    let ssh = || Expr::r("SshSourceSecurityGroup");
    add(
        "MemberSshIngress",
        ingress(
            "MemberSecurityGroup",
            "SSH from the given group",
            Expr::Int(22),
            ssh(),
        )
        .when(HAS_SSH),
    );
    add(
        "ControllerSshIngress",
        ingress(
            "ControllerSecurityGroup",
            "SSH from the given group",
            Expr::Int(22),
            ssh(),
        )
        .when(CONTROLLER_SSH),
    );
}

/// The id leases' log group, the state table, and the two roles.
fn storage_and_roles(add: &mut impl FnMut(&str, Resource)) {
    // State: id leases and the controller's table outlive the stack.
    add(
        "IdLeaseLogGroup",
        Resource::new(Kind::LogGroup(LogGroup {
            log_group_name: Expr::sub("/zkop/${ClusterName}/ids"),
        }))
        .retained(),
    );
    add(
        "StateTable",
        Resource::new(Kind::Table(Table {
            table_name: Expr::sub("zkop-${ClusterName}"),
            billing_mode: "PAY_PER_REQUEST".into(),
            attribute_definitions: vec![Expr::obj([
                ("AttributeName", Expr::s("pk")),
                ("AttributeType", Expr::s("S")),
            ])],
            key_schema: vec![Expr::obj([
                ("AttributeName", Expr::s("pk")),
                ("KeyType", Expr::s("HASH")),
            ])],
            point_in_time_recovery_specification: Expr::obj([(
                "PointInTimeRecoveryEnabled",
                Expr::Bool(true),
            )]),
        }))
        .retained(),
    );
    add("BackupBucket", crate::backup::bucket());
    // Roles.
    add("MemberRole", ec2_role(vec![member_policy()]));
    add(
        "MemberInstanceProfile",
        Resource::new(Kind::InstanceProfile(InstanceProfile {
            roles: vec![Expr::r("MemberRole")],
        }))
        .when(CREATE_ROLES),
    );
    add("ControllerRole", ec2_role(vec![controller_policy()]));
    add(
        "ControllerInstanceProfile",
        Resource::new(Kind::InstanceProfile(InstanceProfile {
            roles: vec![Expr::r("ControllerRole")],
        }))
        .when(CREATE_ROLES),
    );
}

/// The controller host and the members' launch template and group.
fn hosts(add: &mut impl FnMut(&str, Resource)) {
    // The controller host.
    add(
        "ControllerLaunchTemplate",
        launch_template(
            "controller",
            "ControllerInstanceProfile",
            "ControllerSecurityGroup",
            false,
            crate::user_data::controller(),
        )
        .when(CONTROLLER),
    );
    add(
        "ControllerInstance",
        Resource::new(Kind::Instance(Instance {
            launch_template: template_ref("ControllerLaunchTemplate"),
            image_id: Expr::r("AmiId"),
            instance_type: Expr::r("InstanceType"),
            subnet_id: Expr::r("SubnetA"),
            tags: tags("controller"),
        }))
        .when(CONTROLLER),
    );
    // The members.
    let controller_url = Expr::when(
        CONTROLLER,
        Expr::when(
            TLS_ON,
            Expr::sub("https://${ControllerInstance.PrivateIp}:${ApiPort}"),
            Expr::sub("http://${ControllerInstance.PrivateIp}:${ApiPort}"),
        ),
        Expr::r("ControllerUrl"),
    );
    add(
        "MemberLaunchTemplate",
        launch_template(
            "member",
            "MemberInstanceProfile",
            "MemberSecurityGroup",
            true,
            Expr::SubWith(
                crate::user_data::MEMBER.into(),
                [("ControllerUrl".to_string(), controller_url)].into(),
            ),
        ),
    );
    add(
        "MemberGroup",
        Resource::new(Kind::AutoScalingGroup(Box::new(AutoScalingGroup {
            auto_scaling_group_name: Expr::r("ClusterName"),
            launch_template: template_ref("MemberLaunchTemplate"),
            min_size: Expr::s("0"),
            max_size: Expr::r("MaxHosts"),
            desired_capacity: Expr::r("NumHosts"),
            vpc_zone_identifier: vec![Expr::r("SubnetA"), Expr::r("SubnetB"), Expr::r("SubnetC")],
            new_instances_protected_from_scale_in: true,
            health_check_type: "EC2".into(),
            health_check_grace_period: 300,
            lifecycle_hook_specification_list: vec![LifecycleHook {
                lifecycle_hook_name: TERMINATION_HOOK.into(),
                lifecycle_transition: "autoscaling:EC2_INSTANCE_TERMINATING".into(),
                heartbeat_timeout: 900,
                default_result: "CONTINUE".into(),
            }],
            tags: vec![
                GroupTag {
                    key: "Name".into(),
                    value: Expr::sub("${ClusterName}-member"),
                    propagate_at_launch: true,
                },
                GroupTag {
                    key: "Environment".into(),
                    value: Expr::r("EnvironmentName"),
                    propagate_at_launch: true,
                },
            ],
        }))),
    );
}

fn outputs() -> BTreeMap<String, Output> {
    let out = |d: &str, v: Expr| Output {
        description: d.into(),
        value: v,
        condition: None,
    };
    let mut o: BTreeMap<String, Output> = [
        (
            "BackupBucketName",
            out(
                "The backup bucket (spec.backup.s3.bucket; objects under <ClusterName>/)",
                Expr::r("BackupBucket"),
            ),
        ),
        (
            "GroupName",
            out(
                "The Auto Scaling group (fleet.aws.autoScalingGroupName)",
                Expr::r("MemberGroup"),
            ),
        ),
        (
            "TableName",
            out(
                "The state table (state.dynamodb.table)",
                Expr::r("StateTable"),
            ),
        ),
        (
            "LogGroupName",
            out(
                "The id-lease log group (ids.cloudwatchLogs.logGroup)",
                Expr::r("IdLeaseLogGroup"),
            ),
        ),
        (
            "ClientSecurityGroupId",
            out(
                "Give this group to ZooKeeper clients",
                Expr::att("ClientSecurityGroup", "GroupId"),
            ),
        ),
        (
            "AdminSecurityGroupId",
            out(
                "Give this group to whoever runs zkop status",
                Expr::att("AdminSecurityGroup", "GroupId"),
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    o.insert(
        "ControllerAddress".into(),
        Output {
            description: "The controller API's URL".into(),
            value: Expr::when(
                TLS_ON,
                Expr::sub("https://${ControllerInstance.PrivateIp}:${ApiPort}"),
                Expr::sub("http://${ControllerInstance.PrivateIp}:${ApiPort}"),
            ),
            condition: Some(CONTROLLER.into()),
        },
    );
    o
}

/// The whole template.
pub fn template() -> Template {
    Template {
        format_version: "2010-09-09".into(),
        description: "zkop: a self-managing ZooKeeper ensemble on an Auto Scaling group (generated by `zkop cf render`; do not edit)".into(),
        parameters: params(),
        conditions: conditions(),
        resources: resources(),
        outputs: outputs(),
    }
}
