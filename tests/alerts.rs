//! The shipped Prometheus alert rules (`monitoring/zkop-alerts.yml`) pass
//! `promtool check rules`, and their unit tests (one case per alert, and a
//! healthy cluster on which none fires) pass `promtool test rules`. The
//! Grafana dashboard (`monitoring/zkop-dashboard.json`) draws every panel
//! from scrapes of a real cluster. That every metric the rules and the
//! dashboard use is one zkop renders is checked beside the metrics
//! (`controller::status_view`'s tests).

use std::process::Command;

use zkop_tests::common::repo_root;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo_root().join("monitoring"))
        .output()
        .expect("promtool (Debian's prometheus package; scripts/install-deps installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_each_fires_when_it_should_and_only_then() {
    let checked = promtool(&["check", "rules", "zkop-alerts.yml"]);
    assert!(checked.contains("SUCCESS: 14 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "zkop-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_dashboard_draws_every_panel_from_a_real_clusters_scrapes() {
    let root = repo_root().join("monitoring");
    let text = std::fs::read_to_string(root.join("zkop-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let out = tempfile::tempdir().unwrap();
    let svg = out.path().join("dashboard.svg");
    let ran = Command::new("python3")
        .arg(root.join("render-dashboard.py"))
        .arg(root.join("zkop-dashboard.json"))
        .arg(root.join("example-scrapes"))
        .arg(&svg)
        .args(["--cluster", "orders"])
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "{title}: no query"
        );
        assert!(drawn.contains(title), "{title} not drawn");
    }
    // The scrapes are of a five-voter cluster spread over three zones.
    for stat in ["Running", ">5<", ">2<"] {
        assert!(drawn.contains(stat), "{stat} not shown");
    }
}
