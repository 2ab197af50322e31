"""Creates what `zkop run` expects in a (moto) AWS endpoint for a spec: a VPC
with three subnets in three zones, a launch template, the Auto Scaling group
(desired = spec.replicas, new instances protected from scale-in), the DynamoDB
table, the id log group and the secrets parameter (random, never printed).
Reads AWS_ENDPOINT_URL like every AWS SDK."""

import json
import secrets
import sys

import boto3
import yaml

spec = yaml.safe_load(open(sys.argv[1]))["spec"]
aws = spec["fleet"]["aws"]
region = aws["region"]
group = aws["autoScalingGroupName"]
ec2 = boto3.client("ec2", region_name=region)
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnets = [
    ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{zone}")["Subnet"]["SubnetId"]
    for i, zone in enumerate("abc", start=1)
]
image = ec2.describe_images()["Images"][0]["ImageId"]
ec2.create_launch_template(
    LaunchTemplateName=group,
    LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"},
)
boto3.client("autoscaling", region_name=region).create_auto_scaling_group(
    AutoScalingGroupName=group,
    LaunchTemplate={"LaunchTemplateName": group, "Version": "1"},
    MinSize=0,
    MaxSize=20,
    DesiredCapacity=spec["replicas"],
    VPCZoneIdentifier=",".join(subnets),
    NewInstancesProtectedFromScaleIn=True,
)
boto3.client("dynamodb", region_name=region).create_table(
    TableName=spec["state"]["dynamodb"]["table"],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    BillingMode="PAY_PER_REQUEST",
)
boto3.client("logs", region_name=region).create_log_group(logGroupName=spec["ids"]["cloudwatchLogs"]["logGroup"])
if "secrets" in spec:
    value = json.dumps({"apiToken": secrets.token_hex(24), "superPassword": secrets.token_hex(24)})
    boto3.client("ssm", region_name=region).put_parameter(
        Name=spec["secrets"]["ssmParameter"], Type="SecureString", Value=value
    )
print(f"created group {group} over {len(subnets)} subnets, table and log group")
