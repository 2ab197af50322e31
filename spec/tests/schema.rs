//! The checked-in JSON Schema is current, and every example validates against it
//! and against zkop's own rules.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn checked_in_schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zookeeper-cluster.schema.json")
}

fn rendered_schema() -> String {
    let mut s = serde_json::to_string_pretty(&zkop_spec::json_schema()).unwrap();
    s.push('\n');
    s
}

#[test]
fn checked_in_schema_is_current() {
    let path = checked_in_schema_path();
    if std::env::var_os("ZKOP_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, rendered_schema()).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == rendered_schema(),
        "{} is stale: run `ZKOP_UPDATE_SCHEMA=1 cargo test -p zkop-spec --test schema` (or `zkop schema > {}`)",
        path.display(),
        path.display()
    );
}

#[test]
fn every_example_validates_against_the_schema_and_the_rules() {
    let schema: serde_json::Value = serde_json::from_str(&rendered_schema()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        if let Err(e) = zkop_spec::parse_spec(&text) {
            panic!("{}: {e}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 2, "expected the examples, found {seen}");
}

#[test]
fn the_schema_refuses_an_unknown_field() {
    let schema = zkop_spec::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc = serde_json::json!({
        "apiVersion": "zkop/v1alpha1", "kind": "ZookeeperCluster",
        "metadata": {"name": "x"}, "spec": {"replicas": 3, "replica": 3}
    });
    assert!(!validator.is_valid(&doc));
}
