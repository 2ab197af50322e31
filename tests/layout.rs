//! The house rules, checked on the source: file sizes, and who may depend on
//! whom (docs/design.md's map). These fail when a change breaks the layout.

use std::path::{Path, PathBuf};

use zkop_tests::common::repo_root;

/// Longest a non-test source file may be (its inline test module excluded).
const MAX_LINES: usize = 600;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                out.extend(rust_files(&p));
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Test code: the suites' package, a crate's `tests/`, a module's `tests/`
/// directory or `tests.rs`.
fn is_test_file(root: &Path, p: &Path) -> bool {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.starts_with("tests")
        || rel.components().any(|c| c.as_os_str() == "tests")
        || rel.file_name().is_some_and(|n| n == "tests.rs")
}

/// The lines before the file's inline `#[cfg(test)] mod tests`.
fn non_test_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod tests"))
        .unwrap_or(lines.len())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn no_source_file_is_over_600_lines_before_its_tests() {
    let root = repo_root();
    let long: Vec<String> = rust_files(&root)
        .into_iter()
        .filter(|p| !is_test_file(&root, p))
        .filter_map(|p| {
            let n = non_test_lines(&read(&p));
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", p.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines: split by concern:\n{}",
        long.join("\n")
    );
}

/// Non-test files under `dir` whose code mentions any of `forbidden`, with
/// the first offending line.
fn offenders(dir: &Path, forbidden: &[&str]) -> Vec<String> {
    let root = repo_root();
    rust_files(dir)
        .into_iter()
        .filter(|p| !is_test_file(&root, p))
        .flat_map(|p| {
            let text = read(&p);
            let code: Vec<&str> = text.lines().take(non_test_lines(&text)).collect();
            code.iter()
                .enumerate()
                .filter(|(_, l)| !l.trim_start().starts_with("//"))
                .filter_map(|(i, l)| {
                    forbidden
                        .iter()
                        .find(|f| l.contains(**f))
                        .map(|f| format!("{}:{}: {f}: {}", p.display(), i + 1, l.trim()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn spec_does_no_io() {
    let root = repo_root();
    let io = [
        "std::fs",
        "std::net",
        "std::process",
        "std::env",
        "tokio",
        "reqwest",
        "aws_",
        "File::",
    ];
    let found = offenders(&root.join("spec/src"), &io);
    assert!(
        found.is_empty(),
        "spec/ is the vocabulary and does no I/O:\n{}",
        found.join("\n")
    );
    let manifest = read(&root.join("spec/Cargo.toml"));
    for dep in ["tokio", "reqwest", "aws-"] {
        assert!(!manifest.contains(dep), "spec/Cargo.toml depends on {dep}");
    }
}

#[test]
fn adapters_never_import_the_controller_or_the_planner() {
    let root = repo_root();
    let found = offenders(
        &root.join("operator/src/adapters"),
        &[
            "crate::controller",
            "crate::plan",
            "crate::act",
            "crate::cli",
            "crate::api",
        ],
    );
    assert!(
        found.is_empty(),
        "adapters implement ports; they import neither the controller nor the planner:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_planner_imports_no_adapter_and_does_no_io() {
    let root = repo_root();
    let found = offenders(
        &root.join("operator/src/plan"),
        &[
            "crate::adapters",
            "crate::act",
            "crate::controller",
            "crate::cli",
            "crate::api",
            "crate::clock",
            "tokio",
            "std::fs",
            "std::time::Instant",
            "SystemTime",
            "async ",
        ],
    );
    assert!(
        found.is_empty(),
        "the planner is pure: data in, steps out:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_controller_reads_time_only_from_its_clock() {
    let root = repo_root();
    let found = offenders(
        &root.join("operator/src/controller"),
        &[
            "Instant::now",
            "SystemTime",
            ".elapsed()",
            "std::thread::sleep",
        ],
    );
    assert!(
        found.is_empty(),
        "the controller's timing rules read the Clock handed in:\n{}",
        found.join("\n")
    );
}

/// The membership rules docs/design.md lists, and the prefix of the planner
/// test that names each.
const RULES: &[(&str, &str)] = &[
    ("odd voters", "odd_voters_"),
    ("a live majority kept", "live_majority_kept_"),
    ("one id one instance", "one_id_one_instance_"),
    ("remove before terminate", "remove_before_terminate_"),
    ("leader last", "leader_last_"),
    ("never wipe data", "never_wipe_data_"),
    ("fence before recovery", "fence_before_recovery_"),
];

#[test]
fn every_membership_rule_in_the_design_is_named_by_a_planner_test() {
    let root = repo_root();
    let design = read(&root.join("docs/design.md"));
    let tests: String = rust_files(&root.join("operator/src/plan/tests"))
        .iter()
        .map(|p| read(p))
        .collect();
    for (rule, prefix) in RULES {
        assert!(
            design.contains(&format!("**{rule}**")),
            "docs/design.md does not list the rule `{rule}`"
        );
        assert!(
            design.contains(prefix),
            "docs/design.md does not name the test of `{rule}` ({prefix}...)"
        );
        assert!(
            tests.contains(&format!("fn {prefix}")),
            "no planner test named {prefix}... for the rule `{rule}`"
        );
    }
}
