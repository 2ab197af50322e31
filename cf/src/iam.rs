//! IAM: the two roles' policies. Every action is named (no wildcards); a few
//! read-only ones have no resource-level permissions in IAM and take `"*"`
//! ([`UNSCOPED_ACTIONS`](crate::parts::UNSCOPED_ACTIONS)); everything else
//! is scoped to this stack's group, log group, table, parameter, or to
//! instances tagged with the group's name.

use crate::expr::Expr;
use crate::model::*;
use crate::parts::{CREATE_ROLES, UNSCOPED_ACTIONS, statement};

pub(crate) fn document(statement: Vec<Statement>) -> PolicyDocument {
    PolicyDocument {
        version: "2012-10-17".into(),
        statement,
    }
}

pub(crate) fn ec2_role(policies: Vec<Policy>) -> Resource {
    Resource::new(Kind::Role(Role {
        assume_role_policy_document: document(vec![Statement {
            sid: "Ec2AssumesIt".into(),
            effect: "Allow".into(),
            principal: Some(Expr::obj([("Service", Expr::s("ec2.amazonaws.com"))])),
            action: vec!["sts:AssumeRole".into()],
            resource: None,
            condition: None,
        }]),
        policies,
    }))
    .when(CREATE_ROLES)
}

pub(crate) fn secrets_arn() -> Expr {
    secrets_arn_with("")
}

/// The parameter beside the secrets named with `suffix` (the CA's: `.ca`,
/// `.ca-certificate`).
fn secrets_arn_with(suffix: &str) -> Expr {
    Expr::sub(format!(
        "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{SecretsParameterName}}{suffix}"
    ))
}

/// What agents call: read the secrets parameter at start, and ship and
/// restore backups under the cluster's prefix (no delete).
pub(crate) fn member_policy() -> Policy {
    // The secrets, and the CA's certificate (to verify the controller with);
    // never the CA's key.
    let mut statements = vec![statement(
        "ReadTheClusterSecrets",
        &["ssm:GetParameter"],
        vec![secrets_arn(), secrets_arn_with(".ca-certificate")],
    )];
    statements.extend(crate::backup::member_statements());
    Policy {
        policy_name: "zkop-agent".into(),
        policy_document: document(statements),
    }
}

/// What the controller calls, each scoped as tightly as IAM allows.
pub(crate) fn controller_policy() -> Policy {
    let group_arn = Expr::sub(
        "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/${ClusterName}",
    );
    let log_group_arn = Expr::sub(
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/zkop/${ClusterName}/ids:*",
    );
    let table_arn = Expr::sub(
        "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/zkop-${ClusterName}",
    );
    let mut tag_members = statement(
        "TagTheGroupsInstances",
        &["ec2:CreateTags"],
        vec![Expr::sub(
            "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*",
        )],
    );
    tag_members.condition = Some(Expr::obj([(
        "StringEquals",
        Expr::obj([(
            "aws:ResourceTag/aws:autoscaling:groupName",
            Expr::r("ClusterName"),
        )]),
    )]));
    Policy {
        policy_name: "zkop-controller".into(),
        policy_document: document(
            vec![
                statement(
                    "DescribeGroupsAndInstances",
                    UNSCOPED_ACTIONS,
                    vec![Expr::s("*")],
                ),
                statement(
                    "SizeAndReplaceTheGroup",
                    &[
                        "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup",
                        "autoscaling:SetInstanceProtection",
                        "autoscaling:CompleteLifecycleAction",
                    ],
                    vec![group_arn],
                ),
                tag_members,
                statement(
                    "IdLeases",
                    &[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DeleteLogStream",
                        "logs:DescribeLogStreams",
                        "logs:GetLogEvents",
                    ],
                    vec![log_group_arn],
                ),
                statement(
                    "StateAndLeaderLease",
                    &["dynamodb:GetItem", "dynamodb:PutItem"],
                    vec![table_arn],
                ),
                statement(
                    "ReadTheClusterSecrets",
                    &["ssm:GetParameter"],
                    vec![secrets_arn()],
                ),
                // Made once (no overwrite of the key) and published.
                statement(
                    "KeepTheClusterCa",
                    &["ssm:GetParameter", "ssm:PutParameter"],
                    vec![secrets_arn_with(".ca"), secrets_arn_with(".ca-certificate")],
                ),
            ]
            .into_iter()
            .chain(crate::backup::controller_statements())
            .chain(crate::clients::controller_statements())
            .collect(),
        ),
    }
}
