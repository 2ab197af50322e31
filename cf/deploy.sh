#!/usr/bin/env bash
# Deploys zkop's CloudFormation stack (cf/zookeeper.template.json) with the
# AWS CLI, creating the cluster's secrets parameter first when it is absent.
# Run `cf/deploy.sh --help` for the parameters.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="$here/zookeeper.template.json"

usage() {
  cat <<'USAGE'
Usage: cf/deploy.sh --stack-name NAME --cluster NAME --vpc-id VPC \
         --subnets SUBNET_A,SUBNET_B,SUBNET_C --ami AMI [options]

Deploys (creates or updates) the zkop stack from cf/zookeeper.template.json.
Creates the SSM SecureString parameter holding the controller's API token and
ZooKeeper's super-user password when it does not exist (random values, never
printed); an existing one is kept.

Required:
  --stack-name NAME        the CloudFormation stack
  --cluster NAME           the zkop cluster (metadata.name): names the Auto
                           Scaling group, the table zkop-NAME and the log
                           group /zkop/NAME/ids
  --vpc-id VPC             the VPC
  --subnets A,B,C          three private subnets, one per availability zone
  --ami AMI                the AMI packer/build.sh baked

Options:
  --environment NAME       environment tag (default: prod)
  --key-name KEY           EC2 key pair for SSH (default: none)
  --ssh-source-sg SG       security group allowed SSH (default: none)
  --num-hosts N            instances at creation (default: 3)
  --max-hosts N            the group's maximum size (default: 9)
  --instance-type TYPE     (default: t3.medium)
  --data-volume-gb N       ZooKeeper data volume per member (default: 20)
  --controller-host BOOL   true: run the controller on its own instance
                           (default); false: give --controller-url
  --controller-url URL     where agents reach your own controller
  --instance-profile NAME  use this instance profile instead of creating roles
  --secrets-parameter NAME (default: /zkop/CLUSTER/secrets)
  --region REGION          (default: the AWS CLI's)
  --parameter KEY=VALUE    any other template parameter, repeatable: e.g.
                           BackupKmsKeyArn, BackupObjectLockDays,
                           RestoreSourceBucket, RestoreSourcePrefix,
                           RestoreSourceKmsKeyArn (see docs/deploy.md)
  -h, --help               this text

The AWS CLI's usual configuration applies (profiles, AWS_REGION,
AWS_ENDPOINT_URL for a test endpoint).
USAGE
}

die() { echo "deploy.sh: $*" >&2; exit 2; }

stack="" cluster="" vpc="" subnets="" ami=""
environment="prod" key_name="" ssh_sg="" num_hosts="3" max_hosts="9"
instance_type="t3.medium" data_gb="20" controller_host="true" controller_url=""
profile="" secrets="" region_args=() extra_params=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --parameter)
      [ $# -ge 2 ] || die "$1 needs KEY=VALUE"
      [[ "$2" == ?*=* ]] || die "--parameter $2: expected KEY=VALUE"
      extra_params+=("$2")
      shift 2 ;;
    --stack-name|--cluster|--vpc-id|--subnets|--ami|--environment|--key-name|--ssh-source-sg|--num-hosts|--max-hosts|--instance-type|--data-volume-gb|--controller-host|--controller-url|--instance-profile|--secrets-parameter|--region)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --stack-name) stack="$2" ;;
        --cluster) cluster="$2" ;;
        --vpc-id) vpc="$2" ;;
        --subnets) subnets="$2" ;;
        --ami) ami="$2" ;;
        --environment) environment="$2" ;;
        --key-name) key_name="$2" ;;
        --ssh-source-sg) ssh_sg="$2" ;;
        --num-hosts) num_hosts="$2" ;;
        --max-hosts) max_hosts="$2" ;;
        --instance-type) instance_type="$2" ;;
        --data-volume-gb) data_gb="$2" ;;
        --controller-host) controller_host="$2" ;;
        --controller-url) controller_url="$2" ;;
        --instance-profile) profile="$2" ;;
        --secrets-parameter) secrets="$2" ;;
        --region) region_args=(--region "$2") ;;
      esac
      shift 2 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[ -n "$stack" ] || die "missing --stack-name (the CloudFormation stack to create or update)"
[ -n "$cluster" ] || die "missing --cluster (the zkop cluster name, metadata.name)"
[ -n "$vpc" ] || die "missing --vpc-id (the VPC to deploy into)"
[ -n "$subnets" ] || die "missing --subnets (three private subnets: A,B,C)"
[ -n "$ami" ] || die "missing --ami (the AMI packer/build.sh baked)"
IFS=, read -r subnet_a subnet_b subnet_c extra <<<"$subnets"
[ -n "${subnet_c:-}" ] && [ -z "${extra:-}" ] || die "--subnets: give exactly three subnets, comma-separated (got: $subnets)"
case "$controller_host" in
  true) ;;
  false) [ -n "$controller_url" ] || die "missing --controller-url (needed with --controller-host false)" ;;
  *) die "--controller-host: true or false (got: $controller_host)" ;;
esac
secrets="${secrets:-/zkop/$cluster/secrets}"
command -v aws >/dev/null 2>&1 || die "the AWS CLI (aws) is not installed: pip install awscli"
[ -f "$template" ] || die "$template is missing (zkop cf render > $template)"

# The secrets parameter: created once, never printed, never overwritten.
if err="$(aws "${region_args[@]}" ssm get-parameter --name "$secrets" --query Parameter.Name --output text 2>&1 >/dev/null)"; then
  echo "deploy.sh: keeping the existing secrets parameter $secrets" >&2
elif grep -q ParameterNotFound <<<"$err"; then
  tmp="$(umask 077 && mktemp)"
  trap 'rm -f "$tmp"' EXIT
  python3 - "$tmp" <<'PY'
import json, secrets, sys
with open(sys.argv[1], "w") as f:
    json.dump({"apiToken": secrets.token_urlsafe(32), "superPassword": secrets.token_urlsafe(32)}, f)
PY
  aws "${region_args[@]}" ssm put-parameter --name "$secrets" --type SecureString \
    --description "zkop cluster $cluster: API token and ZooKeeper super-user password" \
    --value "file://$tmp" >/dev/null
  rm -f "$tmp"
  echo "deploy.sh: created the secrets parameter $secrets" >&2
else
  die "cannot read the secrets parameter $secrets: $err"
fi

aws "${region_args[@]}" cloudformation deploy \
  --template-file "$template" \
  --stack-name "$stack" \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides \
    "EnvironmentName=$environment" "ClusterName=$cluster" "KeyName=$key_name" \
    "VpcId=$vpc" "SubnetA=$subnet_a" "SubnetB=$subnet_b" "SubnetC=$subnet_c" \
    "SshSourceSecurityGroup=$ssh_sg" "NumHosts=$num_hosts" "MaxHosts=$max_hosts" \
    "AmiId=$ami" "InstanceType=$instance_type" "DataVolumeGb=$data_gb" \
    "ControllerHost=$controller_host" "ControllerUrl=$controller_url" \
    "ExistingInstanceProfile=$profile" "SecretsParameterName=$secrets" \
    ${extra_params[@]+"${extra_params[@]}"}

aws "${region_args[@]}" cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
