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
            // Scoped: every ARN names this stack's cluster or parameter.
            for r in resources {
                let sub = r["Fn::Sub"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{sid}: {r}"));
                assert!(
                    sub.contains("${ClusterName}")
                        || sub.contains("${SecretsParameterName}")
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

#[test]
fn instances_require_imdsv2_and_agents_get_no_aws_power_but_their_secrets() {
    let t = rendered();
    for lt in ["MemberLaunchTemplate", "ControllerLaunchTemplate"] {
        let m = &t["Resources"][lt]["Properties"]["LaunchTemplateData"]["MetadataOptions"];
        assert_eq!(m["HttpTokens"], "required", "{lt}");
    }
    let member = &t["Resources"]["MemberRole"]["Properties"]["Policies"];
    let actions: Vec<&Value> = member
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
        .flat_map(|s| s["Action"].as_array().unwrap())
        .collect();
    assert_eq!(actions, vec!["ssm:GetParameter"]);
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
            ["Fn::Base64"]["Fn::Sub"]
            .as_str()
            .unwrap();
    let spec = script
        .split("<<'SPEC'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nSPEC\n").next())
        .unwrap();
    let spec = spec
        .replace("${ClusterName}", "prod-zk")
        .replace("${NumHosts}", "3")
        .replace("${AWS::Region}", "eu-west-1")
        .replace("${SecretsParameterName}", "/zkop/prod-zk/secrets");
    let cluster = zkop_spec::parse_spec(&spec).unwrap_or_else(|e| panic!("{e}\n{spec}"));
    assert_eq!(cluster.name, "prod-zk");
}
