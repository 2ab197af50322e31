//! What the canary checks, each answer against what ZooKeeper promises,
//! pure (the same rules as the fault suite's history checks, on one
//! counter): the counter's version is the canary's clock, since only zkop
//! may write it.

/// One thing ZooKeeper does not allow, found by a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// One of `zkop_spec::canary::VIOLATION_KINDS`.
    pub kind: &'static str,
    /// In words, for status and the event.
    pub message: String,
}

fn found(kind: &'static str, message: String) -> Option<Violation> {
    Some(Violation { kind, message })
}

/// The writer's compare-and-set expecting `expected` was accepted and made
/// version `made`: anything but `expected + 1` means it was accepted
/// against another version than the znode had.
pub fn check_write(expected: i64, made: i64) -> Option<Violation> {
    (made != expected + 1).then_some(())?;
    found(
        "cas-old-version",
        format!("a compare-and-set expecting version {expected} made version {made}"),
    )
}

/// A compare-and-set deliberately sent with the version before the current
/// one (`stale`) was accepted: it must be refused.
pub fn check_stale_cas_accepted(stale: i64, made: i64) -> Option<Violation> {
    found(
        "cas-old-version",
        format!("a compare-and-set expecting old version {stale} was accepted, making {made}"),
    )
}

/// The writer read its own write back: it must see at least `written`.
pub fn check_read_back(written: i64, read: i64) -> Option<Violation> {
    (read < written).then_some(())?;
    found(
        "read-your-writes",
        format!("the writer read version {read} back after writing version {written}"),
    )
}

/// What one read through a member showed, and what its session saw before.
#[derive(Debug, Clone, Copy)]
pub struct MemberRead {
    /// The member.
    pub member: u64,
    /// The version its session saw last (none: a new session).
    pub seen: Option<i64>,
    /// The version this read showed.
    pub read: i64,
    /// The newest version acknowledged to the writer before the read began.
    pub acked_before: i64,
    /// The read followed a `sync` that succeeded.
    pub synced: bool,
    /// The member answered as a read-only server.
    pub read_only: bool,
}

/// A session never goes back (monotonic reads); a synced read, or a
/// read-only server's, shows every write acknowledged before it began, or
/// it is stale. ZooKeeper allows a read-only server to be stale (clients
/// ask for it), and a plain read on a follower to lag: the canary syncs
/// first, so a stale synced read is a fault, and a read-only server's is
/// counted so that it is seen.
pub fn check_member_read(r: &MemberRead) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(seen) = r.seen.filter(|s| r.read < *s) {
        out.push(Violation {
            kind: "monotonic-reads",
            message: format!(
                "member {}'s session read version {} after version {seen}",
                r.member, r.read
            ),
        });
    }
    if (r.synced || r.read_only) && r.read < r.acked_before {
        let how = if r.read_only {
            "as a read-only server"
        } else {
            "after a sync"
        };
        out.push(Violation {
            kind: "stale-read",
            message: format!(
                "member {} answered {how} with version {}, {} behind the version {} acknowledged before the read",
                r.member,
                r.read,
                r.acked_before - r.read,
                r.acked_before
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compare_and_set_must_make_the_next_version_and_a_stale_one_is_never_accepted() {
        assert_eq!(check_write(4, 5), None);
        assert_eq!(check_write(4, 7).unwrap().kind, "cas-old-version");
        assert_eq!(
            check_stale_cas_accepted(3, 5).unwrap().kind,
            "cas-old-version"
        );
    }

    #[test]
    fn the_writer_reads_its_own_write() {
        assert_eq!(check_read_back(5, 5), None);
        assert_eq!(check_read_back(5, 6), None);
        assert_eq!(check_read_back(5, 4).unwrap().kind, "read-your-writes");
    }

    #[test]
    fn a_session_never_goes_back_and_a_synced_or_read_only_read_is_never_behind() {
        let read = |seen, read, synced, read_only| MemberRead {
            member: 2,
            seen,
            read,
            acked_before: 10,
            synced,
            read_only,
        };
        assert!(check_member_read(&read(Some(9), 10, true, false)).is_empty());
        // A plain read that could not sync may lag (a follower answers).
        assert!(check_member_read(&read(None, 8, false, false)).is_empty());
        let kinds = |r| {
            check_member_read(&r)
                .iter()
                .map(|v| v.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(read(Some(9), 8, false, false)), ["monotonic-reads"]);
        assert_eq!(kinds(read(None, 8, true, false)), ["stale-read"]);
        assert_eq!(
            kinds(read(Some(9), 7, false, true)),
            ["monotonic-reads", "stale-read"]
        );
        let m = &check_member_read(&read(None, 7, false, true))[0].message;
        assert!(
            m.contains("as a read-only server with version 7, 3 behind"),
            "{m}"
        );
    }
}
