//! The infrastructure code from a user's side: `zkop cf render` is the
//! checked-in template, and the two scripts refuse missing parameters by name
//! (before anything reaches AWS).

use zkop_tests::common;

use std::process::Command;

use common::{repo_root, zkop_bin};

#[test]
fn zkop_cf_render_prints_the_checked_in_template() {
    let out = Command::new(zkop_bin())
        .args(["cf", "render"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = std::fs::read(repo_root().join("cf/zookeeper.template.json")).unwrap();
    assert!(
        out.stdout == stored,
        "zkop cf render differs from cf/zookeeper.template.json"
    );
    let yaml = Command::new(zkop_bin())
        .args(["cf", "render", "--format", "yaml"])
        .output()
        .unwrap();
    let yaml: serde_json::Value = serde_yaml::from_slice(&yaml.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(yaml, json);
}

/// Runs `script` with `args`; returns its exit code and stderr.
fn run(script: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(repo_root().join(script))
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each required flag left out in turn: exit 2, naming it.
fn each_missing_is_named(script: &str, required: &[(&str, &str)]) {
    for (i, (missing, _)) in required.iter().enumerate() {
        let mut args = Vec::new();
        for (j, (flag, value)) in required.iter().enumerate() {
            if i != j {
                args.push(*flag);
                args.push(*value);
            }
        }
        let (code, stderr) = run(script, &args);
        assert_eq!(code, Some(2), "{script} without {missing}: {stderr}");
        assert!(
            stderr.contains(&format!("missing {missing}")),
            "{script} without {missing}: {stderr}"
        );
    }
}

#[test]
fn deploy_sh_names_each_missing_parameter() {
    each_missing_is_named(
        "cf/deploy.sh",
        &[
            ("--stack-name", "zk"),
            ("--cluster", "prod-zk"),
            ("--vpc-id", "vpc-1"),
            ("--subnets", "subnet-a,subnet-b,subnet-c"),
            ("--ami", "ami-1"),
        ],
    );
    let (code, stderr) = run(
        "cf/deploy.sh",
        &[
            "--stack-name",
            "zk",
            "--cluster",
            "prod-zk",
            "--vpc-id",
            "vpc-1",
            "--subnets",
            "subnet-a,subnet-b",
            "--ami",
            "ami-1",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("exactly three subnets"), "{stderr}");
    let (code, stderr) = run("cf/deploy.sh", &["--parameter", "RestoreSourceBucket"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--parameter RestoreSourceBucket: expected KEY=VALUE"),
        "{stderr}"
    );
    let (code, stderr) = run("cf/deploy.sh", &["--help"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn build_sh_names_each_missing_parameter() {
    each_missing_is_named(
        "packer/build.sh",
        &[("--base-ami", "ami-1"), ("--region", "eu-west-1")],
    );
    let (code, stderr) = run("packer/build.sh", &["--help"]);
    assert_eq!(code, Some(0), "{stderr}");
}
