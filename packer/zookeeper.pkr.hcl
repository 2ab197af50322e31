# The zkop AMI: Debian with Java, ZooKeeper, zkop and zkop-agent, provisioned
# by playbook.yml. packer/build.sh fills in the variables; see docs/deploy.md.

packer {
  required_plugins {
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
    ansible = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/ansible"
    }
  }
}

variable "base_ami" {
  type        = string
  description = "The Debian 12 AMI to start from"
}

variable "region" {
  type        = string
  description = "The region to build in (the AMI lands there)"
}

variable "instance_profile" {
  type        = string
  default     = ""
  description = "Instance profile for the build instance (empty: none)"
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance (empty: the default VPC)"
}

variable "instance_type" {
  type        = string
  default     = "t3.medium"
  description = "Instance type of the build instance"
}

variable "ssh_username" {
  type        = string
  default     = "admin"
  description = "The base AMI's login user (Debian's is admin)"
}

variable "zkop_bin_dir" {
  type        = string
  description = "Directory holding the release zkop and zkop-agent binaries"
}

variable "ami_name_prefix" {
  type        = string
  default     = "zkop-zookeeper"
  description = "The AMI's name, before a timestamp"
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "zookeeper" {
  ami_name             = "${var.ami_name_prefix}-${local.timestamp}"
  region               = var.region
  source_ami           = var.base_ami
  instance_type        = var.instance_type
  ssh_username         = var.ssh_username
  iam_instance_profile = var.instance_profile
  subnet_id            = var.subnet_id
  imds_support         = "v2.0"

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tags = {
    Name             = "${var.ami_name_prefix}-${local.timestamp}"
    "zkop:base-ami"  = var.base_ami
  }
}

build {
  sources = ["source.amazon-ebs.zookeeper"]

  provisioner "ansible" {
    playbook_file   = "${path.root}/playbook.yml"
    use_proxy       = false
    extra_arguments = ["--extra-vars", "zkop_bin_dir=${var.zkop_bin_dir}"]
  }
}
