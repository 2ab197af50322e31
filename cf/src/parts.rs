//! What the template's parts (IAM, backup, clients, user data) share: the
//! names of the conditions they test, the actions IAM cannot scope, resource
//! tags and a policy statement. The template composes the parts; the parts
//! take what they share from here, never from the template or each other's
//! composers, so no two of them import each other.

use crate::expr::Expr;
use crate::model::*;

/// Actions IAM cannot scope to a resource: they get `"*"` (also in docs/deploy.md).
pub const UNSCOPED_ACTIONS: &[&str] = &[
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeLifecycleHooks",
    "ec2:DescribeInstances",
    "ec2:DescribeLaunchTemplates",
];

/// The condition: the stack makes its roles (`CreateRoles`).
pub(crate) const CREATE_ROLES: &str = "CreateRoles";
/// The condition: TLS is on (`Tls=true`).
pub(crate) const TLS_ON: &str = "TlsOn";

/// A resource's tags: its name in the stack, and the environment.
pub(crate) fn tags(name: &str) -> Vec<Tag> {
    vec![
        Tag {
            key: "Name".into(),
            value: Expr::sub(format!("${{ClusterName}}-{name}")),
        },
        Tag {
            key: "Environment".into(),
            value: Expr::r("EnvironmentName"),
        },
    ]
}

/// An `Allow` statement of `actions` on `resources`.
pub(crate) fn statement(sid: &str, actions: &[&str], resources: Vec<Expr>) -> Statement {
    Statement {
        sid: sid.into(),
        effect: "Allow".into(),
        principal: None,
        action: actions.iter().map(|a| a.to_string()).collect(),
        resource: Some(resources),
        condition: None,
    }
}
