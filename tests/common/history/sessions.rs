//! What ZooKeeper promises one session (its programmer's guide: sequential
//! consistency, a single system image): it never reads older state than it
//! has already seen or written, even across a reconnect to another server.
//! Checked from the stats of its own answers:
//! - a znode's version never goes back (monotonic reads, read-your-writes);
//! - no read misses a write to its znode that the session had already seen
//!   past (zxids are monotonic per session): once a session saw zxid Z, a
//!   read of a znode must show every write to it with a zxid up to Z.
//!
//! And, for any reader, a read shows what a write wrote, with the version
//! that write made (or the znode as created).

use std::collections::{BTreeMap, BTreeSet};

use super::{Kind, Op, Outcome};

/// One thing a session saw that ZooKeeper does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionViolation {
    /// `read-your-writes`, `monotonic-reads`, `monotonic-zxid` or
    /// `unwritten-value`.
    pub kind: &'static str,
    /// The session.
    pub session: i64,
    /// The read that went back.
    pub op: Op,
    /// What the session had seen before: the znode's version, or the zxid.
    pub seen: i64,
}

/// Every violation of a session's guarantees in `ops`.
pub fn check_sessions(ops: &[Op]) -> Vec<SessionViolation> {
    // Every write known to have happened, per znode, by the zxid it made.
    let mut writes: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for o in ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && o.op != Kind::Read)
    {
        writes.entry(&o.key).or_default().insert(o.mzxid);
    }
    let mut by_session: BTreeMap<i64, Vec<&Op>> = BTreeMap::new();
    for o in ops {
        by_session.entry(o.session).or_default().push(o);
    }
    let mut found = unwritten(ops);
    for (session, mut own) in by_session {
        own.sort_by_key(|o| o.call);
        found.extend(check_one(session, &own, &writes));
    }
    found
}

/// One session's operations, in the order it sent them.
fn check_one(
    session: i64,
    own: &[&Op],
    writes: &BTreeMap<&str, BTreeSet<i64>>,
) -> Vec<SessionViolation> {
    let mut found = Vec::new();
    // Per znode: the highest version seen, and whether the session's own
    // write made it.
    let mut seen: BTreeMap<&str, (i64, bool)> = BTreeMap::new();
    let mut zxid = 0;
    for o in own.iter().filter(|o| o.outcome == Outcome::Ok) {
        if o.op == Kind::Read {
            if let Some(&(version, own_write)) = seen.get(o.key.as_str())
                && o.version < version
            {
                let kind = if own_write {
                    "read-your-writes"
                } else {
                    "monotonic-reads"
                };
                found.push(violation(kind, session, o, version));
            } else if o.mzxid < zxid
                && let Some(missed) = writes
                    .get(o.key.as_str())
                    .and_then(|w| w.range(o.mzxid + 1..=zxid).next())
            {
                found.push(violation("monotonic-zxid", session, o, *missed));
            }
        }
        let entry = seen.entry(&o.key).or_insert((o.version, false));
        if o.version >= entry.0 {
            *entry = (o.version, o.op != Kind::Read);
        }
        zxid = zxid.max(o.mzxid);
    }
    found
}

/// Reads of a value no write wrote, or with another version than its write
/// made (an unknown write's version is not known).
fn unwritten(ops: &[Op]) -> Vec<SessionViolation> {
    let mut written: BTreeMap<(&str, &str), Option<i64>> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.op != Kind::Read) {
        match o.outcome {
            Outcome::Ok => {
                written.insert((&o.key, &o.value), Some(o.version));
            }
            Outcome::Unknown => {
                written.entry((&o.key, &o.value)).or_insert(None);
            }
            Outcome::BadVersion | Outcome::NoNode => {}
        }
    }
    ops.iter()
        .filter(|o| o.op == Kind::Read && o.outcome == Outcome::Ok)
        .filter(|o| !(o.read.is_empty() && o.version == 0))
        .filter(|o| match written.get(&(o.key.as_str(), o.read.as_str())) {
            None => true,
            Some(version) => version.is_some_and(|v| v != o.version),
        })
        .map(|o| violation("unwritten-value", o.session, o, o.version))
        .collect()
}

fn violation(kind: &'static str, session: i64, op: &Op, seen: i64) -> SessionViolation {
    SessionViolation {
        kind,
        session,
        op: op.clone(),
        seen,
    }
}
