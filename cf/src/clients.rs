//! Where clients find the ensemble: the controller keeps the SSM String
//! parameter `/zkop/<ClusterName>/connect-string` equal to the connect
//! string and, when a hosted zone is given, Route53 A records for the
//! cluster and each member. IAM lets the controller write exactly that
//! parameter and that zone's records.

use crate::expr::Expr;
use crate::model::*;
use crate::parts::statement;

/// A hosted zone was given.
pub(crate) const HAS_ZONE: &str = "HasClientsHostedZone";

/// The parameters.
pub(crate) fn params() -> Vec<(&'static str, Parameter)> {
    let p = Parameter::required;
    vec![
        ("ClientsHostedZoneId", p("String", "A Route53 hosted zone (Z...) for the cluster's records (one A record per member and one for the cluster); empty for none").default("").pattern("^[A-Za-z0-9]*$")),
        ("ClientsRecordName", p("String", "The cluster's record name in that zone, e.g. zk.prod.internal").default("")),
    ]
}

/// The conditions.
pub(crate) fn conditions() -> Vec<(&'static str, Expr)> {
    vec![(
        HAS_ZONE,
        Expr::Not(Box::new(Expr::Equals(
            Box::new(Expr::r("ClientsHostedZoneId")),
            Box::new(Expr::s("")),
        ))),
    )]
}

/// What the controller may do to publish: write its connect-string
/// parameter, and read and change the zone's records (a zone that cannot
/// exist without one: a statement cannot be left out by a condition).
pub(crate) fn controller_statements() -> Vec<Statement> {
    vec![
        statement(
            "PublishTheConnectString",
            &["ssm:PutParameter"],
            vec![Expr::sub(
                "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/zkop/${ClusterName}/connect-string",
            )],
        ),
        statement(
            "PublishTheMembersRecords",
            &[
                "route53:ListResourceRecordSets",
                "route53:ChangeResourceRecordSets",
            ],
            vec![Expr::when(
                HAS_ZONE,
                Expr::sub("arn:${AWS::Partition}:route53:::hostedzone/${ClientsHostedZoneId}"),
                Expr::sub("arn:${AWS::Partition}:route53:::hostedzone/NONE"),
            )],
        ),
    ]
}
