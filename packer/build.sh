#!/usr/bin/env bash
# Bakes the zkop AMI: builds the release binaries, then runs Packer on
# packer/zookeeper.pkr.hcl, which provisions with packer/playbook.yml.
# Run `packer/build.sh --help` for the parameters.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

usage() {
  cat <<'USAGE'
Usage: packer/build.sh --base-ami AMI --region REGION [options]

Builds zkop and zkop-agent (cargo build --release), then bakes an AMI with
Packer (amazon-ebs) and Ansible: Java, ZooKeeper, the binaries, systemd units
for the agent and the controller, limits, log rotation, and a data directory
on its own volume. Prints the AMI id Packer reports.

Required:
  --base-ami AMI           the Debian 12 AMI to start from
  --region REGION          where to build (the AMI lands there)

Options:
  --instance-profile NAME  instance profile for the build instance
  --subnet-id SUBNET       subnet for the build instance (default VPC otherwise)
  --instance-type TYPE     build instance type (default: t3.medium)
  --ssh-username USER      the base AMI's login user (default: admin)
  --bin-dir DIR            use the zkop binaries in DIR instead of building them
  -h, --help               this text

Needs packer (with its amazon and ansible plugins: `packer init` is run),
ansible-playbook, and AWS credentials in the usual places.
USAGE
}

die() { echo "build.sh: $*" >&2; exit 2; }

base_ami="" region="" profile="" subnet="" instance_type="t3.medium" ssh_user="admin" bin_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --base-ami|--region|--instance-profile|--subnet-id|--instance-type|--ssh-username|--bin-dir)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --base-ami) base_ami="$2" ;;
        --region) region="$2" ;;
        --instance-profile) profile="$2" ;;
        --subnet-id) subnet="$2" ;;
        --instance-type) instance_type="$2" ;;
        --ssh-username) ssh_user="$2" ;;
        --bin-dir) bin_dir="$2" ;;
      esac
      shift 2 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[ -n "$base_ami" ] || die "missing --base-ami (the Debian 12 AMI to start from)"
[ -n "$region" ] || die "missing --region (the region to build the AMI in)"
command -v packer >/dev/null 2>&1 || die "packer is not installed (https://developer.hashicorp.com/packer/install)"
command -v ansible-playbook >/dev/null 2>&1 || die "ansible-playbook is not installed: pip install ansible-core"

if [ -z "$bin_dir" ]; then
  (cd "$root" && cargo build --release -p zkop -p zkop-agent)
  bin_dir="$root/target/release"
fi
for b in zkop zkop-agent; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing (build it, or give --bin-dir)"
done

packer init "$here/zookeeper.pkr.hcl"
packer build \
  -var "base_ami=$base_ami" \
  -var "region=$region" \
  -var "instance_profile=$profile" \
  -var "subnet_id=$subnet" \
  -var "instance_type=$instance_type" \
  -var "ssh_username=$ssh_user" \
  -var "zkop_bin_dir=$bin_dir" \
  "$here/zookeeper.pkr.hcl"
