//! The CLI's answers to good and bad input: `zkop validate`, `zkop schema`, and
//! `zkop local up` refusing an invalid spec before touching anything.

use zkop_tests::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{repo_root, zkop_bin};

fn corpus() -> Vec<(std::path::PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("invalid-specs");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` first line", path.display()))
            .to_string();
        out.push((path, expect));
    }
    assert!(out.len() >= 15, "the corpus shrank: {}", out.len());
    out
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn every_invalid_spec_exits_2_naming_the_field_and_changes_nothing() {
    let work = tempfile::tempdir().unwrap();
    // An existing state dir, as a previous run would leave it.
    let existing = work.path().join("existing");
    std::fs::create_dir_all(existing.join("ids")).unwrap();
    std::fs::write(existing.join("state.json"), r#"{"cluster":"bad","epoch":3,"everBootstrapped":true,"members":{},"config":null,"reconfig":null,"nextSeq":0,"reconfigNotBeforeMs":0}"#).unwrap();
    std::fs::write(existing.join("ids/1"), "i-0001").unwrap();
    let before = snapshot(&existing);
    let fresh = work.path().join("fresh");

    for (path, expect) in corpus() {
        let out = Command::new(zkop_bin())
            .arg("validate")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert!(
            stderr.contains(&expect),
            "{}: expected `{expect}` in:\n{stderr}",
            path.display()
        );

        for dir in [&existing, &fresh] {
            let out = Command::new(zkop_bin())
                .args(["local", "up"])
                .arg(&path)
                .arg("--state-dir")
                .arg(dir)
                .args(["--network", "127.0.43.0/24"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "local up {}: {stderr}",
                path.display()
            );
            assert!(
                stderr.contains(&expect),
                "local up {}: expected `{expect}` in:\n{stderr}",
                path.display()
            );
        }
        assert_eq!(
            snapshot(&existing),
            before,
            "{} changed the state dir",
            path.display()
        );
        assert!(!fresh.exists(), "{} created a state dir", path.display());
    }
}

#[test]
fn local_up_refuses_a_non_loopback_network_and_an_aws_spec() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("state");
    let out = Command::new(zkop_bin())
        .args(["local", "up"])
        .arg(repo_root().join("examples/local-3.yaml"))
        .arg("--state-dir")
        .arg(&dir)
        .args(["--network", "10.1.0.0/24"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.0/8"));
    let out = Command::new(zkop_bin())
        .args(["local", "up"])
        .arg(repo_root().join("examples/aws.yaml"))
        .arg("--state-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.fleet"));
    assert!(!dir.exists());
}

#[test]
fn validate_summarises_a_valid_spec_on_one_line() {
    let out = Command::new(zkop_bin())
        .arg("validate")
        .arg(repo_root().join("examples/local-3.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("local-3: 3 replicas, 3 voters"), "{stdout}");
}

#[test]
fn schema_prints_the_checked_in_schema() {
    let out = Command::new(zkop_bin()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checked_in: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("spec/zookeeper-cluster.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, checked_in);
}

#[test]
fn bench_without_zookeeper_says_which_jar_is_missing_and_starts_nothing() {
    let out = Command::new(zkop_bin())
        .args([
            "bench",
            "--zookeeper-classpath",
            "/nonexistent/zookeeper.jar:/opt/zookeeper/3.9.5/conf",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/zookeeper.jar does not exist"),
        "{stderr}"
    );
}

#[test]
fn every_example_spec_is_valid_and_the_directory_example_names_distinct_networks() {
    let mut specs = Vec::new();
    for dir in ["examples", "examples/many"] {
        for e in std::fs::read_dir(repo_root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                specs.push(p);
            }
        }
    }
    assert!(specs.len() >= 7, "{specs:?}");
    for p in &specs {
        let out = Command::new(zkop_bin())
            .arg("validate")
            .arg(p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let networks: std::collections::BTreeSet<String> = specs
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("many")))
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let spec = zkop_spec::parse_spec(&text).unwrap();
            match spec.fleet {
                zkop_spec::cluster::Fleet::Local(l) => l.network.unwrap(),
                zkop_spec::cluster::Fleet::Aws(_) => panic!("{}: not local", p.display()),
            }
        })
        .collect();
    assert_eq!(networks.len(), 2, "{networks:?}");
}
