//! The shipped Prometheus alert rules (`monitoring/zkop-alerts.yml`) pass
//! `promtool check rules`, and their unit tests (one case per alert, and a
//! healthy cluster on which none fires) pass `promtool test rules`. That
//! every metric they use is one zkop renders is checked beside the metrics
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
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "zkop-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}
