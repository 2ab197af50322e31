//! The instances' boot scripts: a member's starts its agent, the controller
//! host's writes the cluster spec (backups in the stack's bucket, the
//! connect string published to SSM and, with a zone, Route53) and starts
//! `zkop run`.

use crate::expr::Expr;

/// The agents' boot script: where the controller is, which parameter holds
/// the secrets; the AMI's `zkop-agent.service` does the rest.
pub(crate) const MEMBER: &str = r#"#!/bin/bash
set -euo pipefail
mkdir -p /etc/zkop
cat > /etc/zkop/agent.env <<ENV
ZKOP_CONTROLLER=${ControllerUrl}
ZKOP_SECRETS_PARAMETER=${SecretsParameterName}
AWS_REGION=${AWS::Region}
ENV
systemctl enable --now zkop-agent.service
"#;

/// The controller host's boot script: the cluster spec and the API address;
/// the AMI's `zkop-controller.service` runs `zkop run` on them.
const CONTROLLER: &str = r#"#!/bin/bash
set -euo pipefail
mkdir -p /etc/zkop
cat > /etc/zkop/cluster.yaml <<'SPEC'
apiVersion: zkop/v1alpha1
kind: ZookeeperCluster
metadata:
  name: ${ClusterName}
spec:
  replicas: ${NumHosts}
  fleet:
    aws:
      region: ${AWS::Region}
      autoScalingGroupName: ${ClusterName}
  ids:
    cloudwatchLogs:
      logGroup: /zkop/${ClusterName}/ids
  state:
    dynamodb:
      table: zkop-${ClusterName}
  secrets:
    ssmParameter: ${SecretsParameterName}
  tls:
    enabled: ${Tls}
  backup:
    s3:
      bucket: ${BackupBucket}
      prefix: ${ClusterName}/
${BackupKeyLine}  healing:
    onTotalLoss: restore
  clients:
    ssmParameter: /zkop/${ClusterName}/connect-string
${ClientsRoute53Lines}SPEC
TOKEN=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
ADDRESS=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/local-ipv4)
cat > /etc/zkop/controller.env <<ENV
ZKOP_API=0.0.0.0:${ApiPort}
ZKOP_ADVERTISE_URL=${ApiScheme}://$ADDRESS:${ApiPort}
AWS_REGION=${AWS::Region}
ENV
systemctl enable --now zkop-controller.service
"#;

/// The controller host's boot script, with the backup key's spec line
/// when a key was given and the Route53 lines when a zone was.
pub(crate) fn controller() -> Expr {
    Expr::SubWith(
        CONTROLLER.into(),
        [(
            "BackupKeyLine".to_string(),
            Expr::when(
                crate::backup::HAS_BACKUP_KEY,
                Expr::sub("      kmsKeyId: ${BackupKmsKeyArn}\n"),
                Expr::s(""),
            ),
        ),
        (
            "ApiScheme".to_string(),
            Expr::when(crate::parts::TLS_ON, Expr::s("https"), Expr::s("http")),
        ),
        (
            "ClientsRoute53Lines".to_string(),
            Expr::when(
                crate::clients::HAS_ZONE,
                Expr::sub("    route53:\n      hostedZoneId: ${ClientsHostedZoneId}\n      name: ${ClientsRecordName}\n"),
                Expr::s(""),
            ),
        )]
        .into(),
    )
}
