//! ZooKeeper releases zkop knows, and their known issues: data, each entry
//! checked against ZooKeeper's own history (the commit that fixed it, and
//! the first release tag holding that commit on each line). A spec naming
//! a release with a known data-loss bug, or a CVE in a feature the spec
//! uses, is refused unless `spec.zookeeper.acceptKnownIssues` lists it.

use std::fmt;

/// The release a spec runs when it names none: the newest zkop knows
/// without a known data-loss bug.
pub const DEFAULT_VERSION: &str = "3.9.5";

/// The releases zkop knows, per minor line: `(major, minor, newest patch)`.
/// Every patch from 0 to the newest is known. Keep `scripts/install-deps`
/// and the AMI's playbook in step with the newest of each line.
const LINES: [(u32, u32, u32); 2] = [(3, 8, 6), (3, 9, 5)];

/// A ZooKeeper release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Release {
    const fn new(major: u32, minor: u32, patch: u32) -> Release {
        Release {
            major,
            minor,
            patch,
        }
    }

    /// The release a version string starts with (`3.8.0`, or `srvr`'s
    /// `3.8.0-abc, built on ...`).
    pub fn parse(version: &str) -> Option<Release> {
        let mut parts = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().ok());
        Some(Release::new(parts.next()??, parts.next()??, parts.next()??))
    }

    /// Whether zkop knows this release.
    pub fn known(self) -> bool {
        LINES
            .iter()
            .any(|&(ma, mi, newest)| (ma, mi) == (self.major, self.minor) && self.patch <= newest)
    }

    /// The newest known patch of this release's minor line.
    pub fn newest_of_line(self) -> Option<Release> {
        LINES
            .iter()
            .find(|&&(ma, mi, _)| (ma, mi) == (self.major, self.minor))
            .map(|&(ma, mi, newest)| Release::new(ma, mi, newest))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The releases zkop knows, oldest first, as text (for messages).
pub fn known_releases() -> String {
    LINES
        .iter()
        .map(|&(ma, mi, newest)| format!("{ma}.{mi}.0 to {ma}.{mi}.{newest}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a known issue puts at risk, and so when it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::AsRefStr)]
pub enum Exposure {
    /// Acknowledged transactions can be lost: always applies.
    #[strum(serialize = "data loss")]
    DataLoss,
    /// A weakness of TLS: applies with `spec.tls` on.
    #[strum(serialize = "TLS")]
    Tls,
    /// A weakness of the AdminServer, which zkop never turns on
    /// (`admin.enableServer=false`): listed, never refused.
    #[strum(serialize = "AdminServer")]
    AdminServer,
}

/// One known issue of a range of releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownIssue {
    /// The JIRA or CVE id, as `acceptKnownIssues` names it.
    pub id: &'static str,
    /// What it puts at risk.
    pub exposure: Exposure,
    /// What it does.
    pub what: &'static str,
    /// The releases affected: inclusive ranges.
    pub affected: &'static [(Release, Release)],
    /// Where it is fixed, in words.
    pub fixed_in: &'static str,
    /// Where this entry was checked.
    pub source: &'static str,
}

const fn r(major: u32, minor: u32, patch: u32) -> Release {
    Release::new(major, minor, patch)
}

/// Every known issue, most severe first.
pub const KNOWN_ISSUES: &[KnownIssue] = &[
    KnownIssue {
        id: "ZOOKEEPER-4785",
        exposure: Exposure::DataLoss,
        what: "transactions can be lost when a follower syncs with the leader by DIFF (a race in Learner.syncWithLeader)",
        affected: &[(r(3, 8, 0), r(3, 8, 4)), (r(3, 9, 0), r(3, 9, 1))],
        fixed_in: "3.8.5 and 3.9.2",
        source: "apache/zookeeper commits 34f292924 (branch-3.8, first in release-3.8.5) and 4a49d4587 (branch-3.9, first in release-3.9.2)",
    },
    KnownIssue {
        id: "ZOOKEEPER-4394",
        exposure: Exposure::DataLoss,
        what: "committed transactions can be lost in the sync phase: a follower applies uncommitted proposals before acknowledging NEWLEADER (with ZOOKEEPER-4643, 4646 and 4685, found by model checking)",
        affected: &[(r(3, 8, 0), r(3, 8, 6)), (r(3, 9, 0), r(3, 9, 2))],
        fixed_in: "3.9.3 (not on the 3.8 line)",
        source: "apache/zookeeper commit 5a2b99b5b (PR #2188, from the ZK-4643 branch), first in release-3.9.3; no commit naming it on branch-3.8 up to release-3.8.6",
    },
    KnownIssue {
        id: "ZOOKEEPER-4925",
        exposure: Exposure::DataLoss,
        what: "a follower synced in the sync phase keeps a hole in its committed log and, once leader, propagates it: transactions are lost (a regression of ZOOKEEPER-4394's fix)",
        affected: &[(r(3, 9, 3), r(3, 9, 3))],
        fixed_in: "3.9.4",
        source: "apache/zookeeper commit 685048a7b (\"only 3.9.3 is affected\"), first in release-3.9.4",
    },
    KnownIssue {
        id: "CVE-2026-24281",
        exposure: Exposure::Tls,
        what: "TLS hostname verification falls back to a reverse DNS lookup of the peer's address (ZOOKEEPER-4986); 3.8.6 and 3.9.5 add ssl.quorum.allowReverseDnsLookup, which zkop sets to false",
        affected: &[(r(3, 8, 0), r(3, 8, 5)), (r(3, 9, 0), r(3, 9, 4))],
        fixed_in: "3.8.6 and 3.9.5",
        source: "apache/zookeeper commits 33e5d7251 (branch-3.8, release-3.8.6) and 3b6bbfa14 (branch-3.9, release-3.9.5)",
    },
    KnownIssue {
        id: "CVE-2025-58457",
        exposure: Exposure::AdminServer,
        what: "the AdminServer checks one permission for commands that need several (snapshot and restore) (ZOOKEEPER-4964)",
        affected: &[(r(3, 9, 0), r(3, 9, 3))],
        fixed_in: "3.9.4",
        source: "apache/zookeeper commit 99783741e (branch-3.9), first in release-3.9.4",
    },
];

impl KnownIssue {
    /// Whether `release` is affected.
    pub fn affects(&self, release: Release) -> bool {
        self.affected
            .iter()
            .any(|(from, to)| *from <= release && release <= *to)
    }

    /// Whether it applies to a cluster (`tls`: whether TLS is on).
    pub fn applies(&self, tls: bool) -> bool {
        match self.exposure {
            Exposure::DataLoss => true,
            Exposure::Tls => tls,
            Exposure::AdminServer => false,
        }
    }

    /// One line: the id, what it risks and does, where it is fixed.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}): {} (fixed in {})",
            self.id,
            self.exposure.as_ref(),
            self.what,
            self.fixed_in
        )
    }
}

/// The known issues of `version` (a version string, as `srvr` prints it).
pub fn known_issues(version: &str) -> Vec<&'static KnownIssue> {
    let Some(release) = Release::parse(version) else {
        return Vec::new();
    };
    KNOWN_ISSUES.iter().filter(|i| i.affects(release)).collect()
}

/// The first known data-loss bug of ZooKeeper `version`, in words, if any.
pub fn known_data_loss(version: &str) -> Option<String> {
    known_issues(version)
        .into_iter()
        .find(|i| i.exposure == Exposure::DataLoss)
        .map(KnownIssue::describe)
}

/// `spec.zookeeper.version` and `acceptKnownIssues`: a release zkop knows,
/// and each known issue that applies to it (data loss always; a TLS CVE with
/// `tls` on) accepted by id. An accepted id that names no known issue is
/// refused too: a typo must not pass for an acceptance.
pub(crate) fn check_version(
    p: &mut crate::validate::Problems,
    z: &crate::cluster::ZookeeperSettings,
    tls: bool,
) {
    const PATH: &str = "spec.zookeeper.version";
    for (i, id) in z.accept_known_issues.iter().enumerate() {
        if !KNOWN_ISSUES.iter().any(|k| k.id == id) {
            let ids: Vec<&str> = KNOWN_ISSUES.iter().map(|k| k.id).collect();
            p.add(
                &format!("spec.zookeeper.acceptKnownIssues[{i}]"),
                format!("`{id}` is no known issue (known: {})", ids.join(", ")),
            );
        }
    }
    let Some(release) = Release::parse(&z.version).filter(|r| z.version == r.to_string()) else {
        p.add(
            PATH,
            format!(
                "`{}` is not a release: write major.minor.patch, e.g. {DEFAULT_VERSION}",
                z.version
            ),
        );
        return;
    };
    if !release.known() {
        p.add(
            PATH,
            format!(
                "ZooKeeper {release} is a release zkop does not know (it knows {}); its known issues are unchecked",
                known_releases()
            ),
        );
        return;
    }
    for issue in known_issues(&z.version) {
        if issue.applies(tls) && !z.accept_known_issues.iter().any(|a| a == issue.id) {
            p.add(
                PATH,
                format!(
                    "ZooKeeper {release} has a known issue: {}; run {DEFAULT_VERSION}, or list `{}` in spec.zookeeper.acceptKnownIssues to run it anyway",
                    issue.describe(),
                    issue.id
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_with_known_data_loss_are_named() {
        for v in ["3.8.0", "3.8.4", "3.9.0", "3.9.1-abc, built on x"] {
            assert!(
                known_data_loss(v).is_some_and(|b| b.contains("ZOOKEEPER-4785")),
                "{v}"
            );
        }
        assert!(known_data_loss("3.9.3").is_some_and(|b| b.contains("ZOOKEEPER-4925")));
        // The 3.8 line never got the sync-phase fixes.
        for v in ["3.8.5", "3.8.6", "3.9.2"] {
            assert!(
                known_data_loss(v).is_some_and(|b| b.contains("ZOOKEEPER-4394")),
                "{v}"
            );
        }
        for v in ["3.9.4", "3.9.5", "3.7.2", "garbage", ""] {
            assert_eq!(known_data_loss(v), None, "{v}");
        }
    }

    #[test]
    fn releases_zkop_knows_are_the_two_lines_up_to_their_newest_patch() {
        let known = |v: &str| Release::parse(v).is_some_and(Release::known);
        for v in ["3.8.0", "3.8.6", "3.9.0", "3.9.5"] {
            assert!(known(v), "{v}");
        }
        for v in ["3.8.7", "3.9.6", "3.7.2", "3.10.0", "4.0.0"] {
            assert!(!known(v), "{v}");
        }
        assert_eq!(
            Release::parse("3.8.2").and_then(Release::newest_of_line),
            Some(r(3, 8, 6))
        );
        assert!(Release::parse(DEFAULT_VERSION).is_some_and(Release::known));
        assert!(known_issues(DEFAULT_VERSION).is_empty());
    }

    #[test]
    fn the_tls_cve_applies_with_tls_on_only_and_the_admin_server_one_never() {
        let tls = |v: &str, on: bool| {
            known_issues(v)
                .into_iter()
                .filter(|i| i.applies(on))
                .map(|i| i.id)
                .collect::<Vec<_>>()
        };
        assert!(tls("3.9.4", true).contains(&"CVE-2026-24281"));
        assert!(tls("3.9.4", false).is_empty());
        assert!(!tls("3.9.3", true).contains(&"CVE-2025-58457"));
        assert!(tls("3.8.6", true).iter().all(|id| *id != "CVE-2026-24281"));
    }

    /// `spec.zookeeper` as given, in a minimal spec: its problems.
    fn refusals(zookeeper: &str, tls: bool) -> Vec<String> {
        let text = format!(
            "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: demo\nspec:\n  replicas: 3\n  zookeeper:\n{zookeeper}{}",
            if tls {
                "  tls:\n    enabled: true\n"
            } else {
                ""
            }
        );
        match crate::parse_spec(&text) {
            Ok(_) => vec![],
            Err(e) => e.lines(),
        }
    }

    #[test]
    fn a_spec_naming_a_release_with_a_known_issue_is_refused_unless_it_accepts_it() {
        let refused = refusals("    version: 3.8.6\n", false);
        assert!(
            refused.len() == 1
                && refused[0].starts_with("spec.zookeeper.version: ZooKeeper 3.8.6 has a known issue: ZOOKEEPER-4394 (data loss)")
                && refused[0].contains("acceptKnownIssues"),
            "{refused:?}"
        );
        assert_eq!(
            refusals(
                "    version: 3.8.6\n    acceptKnownIssues: [ZOOKEEPER-4394]\n",
                false
            ),
            Vec::<String>::new()
        );
        // TLS on: the reverse-DNS CVE too; 3.9.5 and 3.8.6 have its fix.
        let tls = refusals("    version: 3.9.4\n", true);
        assert!(tls.iter().any(|p| p.contains("CVE-2026-24281")), "{tls:?}");
        assert!(refusals("    version: 3.9.4\n", false).is_empty());
        assert!(refusals("    version: 3.9.5\n", true).is_empty());
        let typo = refusals("    acceptKnownIssues: [ZOOKEEPER-4349]\n", false);
        assert!(
            typo.iter().any(|p| p.starts_with(
                "spec.zookeeper.acceptKnownIssues[0]: `ZOOKEEPER-4349` is no known issue"
            )),
            "{typo:?}"
        );
        for bad in ["3.9.6", "3.9", "latest", "3.9.5-rc1"] {
            let refused = refusals(&format!("    version: \"{bad}\"\n"), false);
            assert!(
                refused
                    .iter()
                    .any(|p| p.starts_with("spec.zookeeper.version: ")),
                "{bad}: {refused:?}"
            );
        }
    }
}
