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

/// The source files (not `mod.rs` or `lib.rs`/`main.rs`, whose children
/// use what they declare) of one crate's `src`, by module path.
fn module_files(src: &Path) -> Vec<(Vec<String>, PathBuf)> {
    rust_files(src)
        .into_iter()
        .filter(|p| !is_test_file(src, p))
        .filter_map(|p| {
            let rel = p.strip_prefix(src).ok()?.with_extension("");
            let path: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let last = path.last()?.as_str();
            (!matches!(last, "mod" | "lib" | "main")).then_some((path, p))
        })
        .collect()
}

/// The modules `text` (in module `at`) names: `super::NAME`, `use
/// super::{NAME, ..}` and `crate::A::B`, as module paths.
fn named_modules(at: &[String], text: &str) -> Vec<Vec<String>> {
    let parent = &at[..at.len() - 1];
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in text.match_indices("super::") {
        let rest = &text[i + "super::".len()..];
        let firsts: Vec<String> = match rest.strip_prefix('{') {
            Some(list) => list
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|s| ident(s.trim()))
                .collect(),
            None => vec![ident(rest)],
        };
        for f in firsts.into_iter().filter(|f| !f.is_empty()) {
            let mut p = parent.to_vec();
            p.push(f);
            out.push(p);
        }
    }
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let segs: Vec<String> = rest
            .split("::")
            .map(ident)
            .take_while(|s| !s.is_empty())
            .collect();
        for n in 1..=segs.len() {
            out.push(segs[..n].to_vec());
        }
    }
    out
}

/// Circles between source files: file A names file B's module and B
/// names A's, directly or through others.
fn import_circles(src: &Path) -> Vec<Vec<String>> {
    let files = module_files(src);
    let names: Vec<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let edges: Vec<Vec<usize>> = files
        .iter()
        .map(|(m, p)| {
            let named = named_modules(m, &read(p));
            let mut to: Vec<usize> = (0..names.len())
                .filter(|&j| names[j] != *m && named.contains(&names[j]))
                .collect();
            to.dedup();
            to
        })
        .collect();
    // Which files each reaches; a circle is a set of files reaching each other.
    let reach = |from: usize| {
        let mut seen = vec![false; names.len()];
        let mut todo = edges[from].clone();
        while let Some(n) = todo.pop() {
            if !seen[n] {
                seen[n] = true;
                todo.extend(edges[n].iter().copied());
            }
        }
        seen
    };
    let reached: Vec<Vec<bool>> = (0..names.len()).map(reach).collect();
    let mut circles: Vec<Vec<String>> = Vec::new();
    for (i, from) in reached.iter().enumerate() {
        let mut circle: Vec<String> = (0..names.len())
            .filter(|&j| from[j] && reached[j][i])
            .map(|j| names[j].join("/"))
            .collect();
        circle.sort();
        if !circle.is_empty() && !circles.contains(&circle) {
            circles.push(circle);
        }
    }
    circles
}

#[test]
fn no_new_import_circle_between_source_files() {
    // Circles still standing; this list only shrinks (issue 24, finding 11,
    // broke the last four).
    let known: Vec<Vec<&str>> = vec![];
    let root = repo_root();
    let mut found = Vec::new();
    // spec/ is one vocabulary whose modules name each other's types (and
    // doc links); the rule is for the crates that do things.
    for krate in ["zk", "runtime", "agent", "cf", "operator"] {
        for circle in import_circles(&root.join(krate).join("src")) {
            let known_one = known.iter().any(|k| {
                k.len() == circle.len() && k.iter().zip(&circle).all(|(a, b)| *a == b.as_str())
            });
            if !known_one {
                found.push(format!("{krate}: {}", circle.join(" <-> ")));
            }
        }
    }
    assert!(
        found.is_empty(),
        "import circles between source files (break each: take what both need from one smaller module): {found:#?}"
    );
}
