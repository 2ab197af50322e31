//! The checked-in template is what the code renders, and its IAM policies
//! grant only named actions on this stack's resources.

use std::path::PathBuf;

use serde_json::Value;
use zkop_cf::template::UNSCOPED_ACTIONS;
use zkop_cf::{Format, render};

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zookeeper.template.json")
}

fn rendered() -> Value {
    serde_json::from_str(&render(Format::Json).unwrap()).unwrap()
}

#[test]
fn the_checked_in_template_is_the_rendered_one() {
    let text = render(Format::Json).unwrap();
    if std::env::var_os("ZKOP_UPDATE_TEMPLATE").is_some() {
        std::fs::write(checked_in(), &text).unwrap();
    }
    let stored = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        stored == text,
        "cf/zookeeper.template.json is stale: run `ZKOP_UPDATE_TEMPLATE=1 cargo test -p zkop-cf --test template`"
    );
}

#[test]
fn yaml_and_json_render_the_same_template() {
    let yaml: Value = serde_yaml::from_str(&render(Format::Yaml).unwrap()).unwrap();
    assert_eq!(yaml, rendered());
}

/// Every statement of every role's inline policies.
fn statements(t: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        for p in r["Properties"]["Policies"].as_array().unwrap() {
            for s in p["PolicyDocument"]["Statement"].as_array().unwrap() {
                out.push((format!("{id}/{}", s["Sid"]), s.clone()));
            }
        }
    }
    out
}

#[test]
fn no_policy_grants_a_wildcard_action() {
    let t = rendered();
    let all = statements(&t);
    assert!(all.len() >= 6, "{all:?}");
    for (sid, s) in &all {
        for a in s["Action"].as_array().unwrap() {
            let a = a.as_str().unwrap();
            assert!(!a.contains('*'), "{sid}: wildcard action {a}");
            assert!(
                a.split_once(':')
                    .is_some_and(|(svc, name)| !svc.is_empty() && !name.is_empty()),
                "{sid}: {a}"
            );
        }
    }
}

#[test]
fn a_bare_star_resource_only_for_actions_iam_cannot_scope() {
    let t = rendered();
    for (sid, s) in statements(&t) {
        let resources = s["Resource"].as_array().unwrap();
        let bare = resources.iter().any(|r| r == "*");
        if !bare {
            // Scoped: every ARN names this stack's cluster, parameter or
            // bucket, or is a key or restore source the stack was given.
            for r in resources {
                let given = &r["Fn::If"][1];
                if given["Ref"] == "BackupKmsKeyArn"
                    || given["Ref"] == "RestoreSourceKmsKeyArn"
                    || given["Fn::Sub"].as_str().is_some_and(|s| {
                        s.contains("${RestoreSourceBucket}") || s.contains("${ClientsHostedZoneId}")
                    })
                {
                    continue;
                }
                let sub = r["Fn::Sub"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{sid}: {r}"));
                assert!(
                    sub.contains("${ClusterName}")
                        || sub.contains("${SecretsParameterName}")
                        || sub.contains("${BackupBucket}")
                        || s["Condition"]["StringEquals"]["aws:ResourceTag/aws:autoscaling:groupName"]
                            == serde_json::json!({"Ref": "ClusterName"}),
                    "{sid}: {sub} is not scoped to this stack"
                );
            }
            continue;
        }
        assert_eq!(resources.len(), 1, "{sid}");
        for a in s["Action"].as_array().unwrap() {
            assert!(
                UNSCOPED_ACTIONS.contains(&a.as_str().unwrap()),
                "{sid}: {a} on \"*\" but IAM can scope it"
            );
        }
    }
}

#[test]
fn the_docs_list_the_unscoped_actions() {
    let docs = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy.md"),
    )
    .unwrap();
    for a in UNSCOPED_ACTIONS {
        assert!(docs.contains(a), "docs/deploy.md does not name {a}");
    }
}

/// Every action a role's policies grant.
fn role_actions(t: &Value, role: &str) -> Vec<String> {
    t["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn instances_require_imdsv2_and_agents_get_no_aws_power_but_their_secrets_and_backups() {
    let t = rendered();
    for lt in ["MemberLaunchTemplate", "ControllerLaunchTemplate"] {
        let m = &t["Resources"][lt]["Properties"]["LaunchTemplateData"]["MetadataOptions"];
        assert_eq!(m["HttpTokens"], "required", "{lt}");
    }
    assert_eq!(
        role_actions(&t, "MemberRole"),
        vec![
            "ssm:GetParameter",
            "s3:PutObject",
            "s3:GetObject",
            "s3:ListBucket",
            "kms:GenerateDataKey",
            "kms:Decrypt",
            "s3:GetObject",
            "s3:ListBucket",
            "kms:Decrypt"
        ]
    );
}

#[test]
fn the_backup_bucket_is_private_versioned_and_encrypted_and_only_the_controller_deletes() {
    let t = rendered();
    let b = &t["Resources"]["BackupBucket"];
    assert_eq!(b["DeletionPolicy"], "Retain");
    let p = &b["Properties"];
    assert_eq!(p["VersioningConfiguration"]["Status"], "Enabled");
    for k in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(p["PublicAccessBlockConfiguration"][k], true, "{k}");
    }
    let sse = &p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        ["Fn::If"];
    assert_eq!(sse[1]["SSEAlgorithm"], "aws:kms");
    assert_eq!(sse[2]["SSEAlgorithm"], "AES256");
    let rule = &p["LifecycleConfiguration"]["Rules"][0];
    assert_eq!(rule["Prefix"]["Fn::Sub"], "${ClusterName}/");
    assert!(rule["NoncurrentVersionExpiration"].is_object());
    assert!(p["ObjectLockConfiguration"]["Fn::If"].is_array());
    // Members create and read; nothing but the controller deletes, and only
    // under the cluster's prefix.
    assert!(
        !role_actions(&t, "MemberRole")
            .iter()
            .any(|a| a.contains("Delete"))
    );
    assert!(role_actions(&t, "ControllerRole").contains(&"s3:DeleteObject".to_string()));
    for (sid, s) in statements(&t) {
        if s["Action"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("s3:"))
        {
            let text = s["Resource"].to_string() + &s["Condition"].to_string();
            assert!(
                text.contains("${ClusterName}/"),
                "{sid} is not limited to the cluster's prefix: {s}"
            );
            // A restore source is read under its own prefix, never written.
            if sid.contains("RestoreSource") {
                assert!(text.contains("${RestoreSourcePrefix}"), "{sid}: {s}");
                assert!(
                    s["Action"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|a| a == "s3:GetObject" || a == "s3:ListBucket"),
                    "{sid}: {s}"
                );
            }
        }
    }
}

#[test]
fn the_group_has_a_termination_hook_and_the_stack_names_what_the_spec_needs() {
    let t = rendered();
    let hooks = &t["Resources"]["MemberGroup"]["Properties"]["LifecycleHookSpecificationList"];
    assert_eq!(
        hooks[0]["LifecycleTransition"],
        "autoscaling:EC2_INSTANCE_TERMINATING"
    );
    assert_eq!(
        t["Resources"]["MemberGroup"]["Properties"]["NewInstancesProtectedFromScaleIn"],
        true
    );
    for o in [
        "GroupName",
        "TableName",
        "LogGroupName",
        "ControllerAddress",
    ] {
        assert!(t["Outputs"][o].is_object(), "no output {o}");
    }
}

#[test]
fn the_controller_hosts_spec_is_a_valid_zkop_spec() {
    let t = rendered();
    let script =
        t["Resources"]["ControllerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
            ["Fn::Base64"]["Fn::Sub"][0]
            .as_str()
            .unwrap()
            .replace(
                "${ClientsRoute53Lines}",
                "    route53:\n      hostedZoneId: Z0123ABC\n      name: zk.prod.internal\n",
            );
    let spec = script
        .split("<<'SPEC'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nSPEC\n").next())
        .unwrap();
    let spec = spec
        .replace("${ClusterName}", "prod-zk")
        .replace("${NumHosts}", "3")
        .replace("${AWS::Region}", "eu-west-1")
        .replace("${SecretsParameterName}", "/zkop/prod-zk/secrets")
        .replace("${Tls}", "true")
        .replace("${BackupBucket}", "prod-zk-backups-1a2b3c")
        .replace(
            "${BackupKeyLine}",
            "      kmsKeyId: arn:aws:kms:eu-west-1:123456789012:key/k\n",
        );
    let cluster = zkop_spec::parse_spec(&spec).unwrap_or_else(|e| panic!("{e}\n{spec}"));
    assert_eq!(cluster.name, "prod-zk");
    // With the Tls parameter true, TLS is on (the CA kept beside the secrets).
    assert!(cluster.tls.is_some());
    assert_eq!(
        cluster.backup.map(|b| b.target.to_string()),
        Some("s3://prod-zk-backups-1a2b3c/prod-zk/".to_string())
    );
    // The controller publishes to the parameter and zone its role may write.
    assert_eq!(
        cluster.clients.ssm_parameter.as_deref(),
        Some("/zkop/prod-zk/connect-string")
    );
    assert_eq!(
        cluster.clients.route53.map(|r| r.hosted_zone_id),
        Some("Z0123ABC".to_string())
    );
}
