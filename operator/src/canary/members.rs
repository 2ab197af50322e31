//! The canary's reads through each member, all at once (a member that does
//! not answer holds up no other): a session per member, kept across rounds,
//! allowed to be read-only; `sync`, then `getData` of the counter. The
//! member the writer is on is read through the writer's own session: a
//! second session there would see what the writer's acknowledged write
//! already shows, and would cost the server and the controller a session's
//! pings and timers (half the canary's sessions on a one-voter cluster).

use std::collections::BTreeMap;
use std::time::Instant;

use tokio::time::timeout;
use zkop_spec::canary::{COUNTER_PATH, CanaryRead};
use zkop_spec::zk::ServerId;
use zookeeper_client::{Client, SessionState};

use super::check::{self, MemberRead, Violation};
use super::{Dialer, call};

/// A member's session and what it saw.
pub(crate) struct MemberSession {
    endpoint: String,
    client: Client,
    seen: Option<i64>,
    /// The writer's session, shared while the writer is on this member.
    writers: bool,
}

/// The session to read `endpoint` through this round: the writer's when
/// the writer is on it (kept, with what it saw, while it is the same
/// session), else the member's own, kept while it is on the same endpoint:
/// never a writer's session the writer left (it cannot be read-only).
fn session_for(
    endpoint: &str,
    kept: Option<MemberSession>,
    writer: Option<(&str, &Client)>,
) -> Option<MemberSession> {
    let kept = kept.filter(|s| s.endpoint == endpoint);
    match writer {
        Some((on, client)) if on == endpoint => Some(
            kept.filter(|s| s.writers && s.client.session_id() == client.session_id())
                .unwrap_or_else(|| MemberSession {
                    endpoint: endpoint.to_string(),
                    client: client.clone(),
                    seen: None,
                    writers: true,
                }),
        ),
        _ => kept.filter(|s| !s.writers),
    }
}

/// Reads through every member of `members` (id, `host:port`), reusing and
/// keeping `sessions`, and the writer's session (its endpoint and client)
/// for the member it is on; each read, and what the reads break.
pub(crate) async fn read_all(
    dialer: &Dialer,
    sessions: &mut BTreeMap<ServerId, MemberSession>,
    members: &[(ServerId, String)],
    writer: Option<(&str, &Client)>,
    acked: i64,
) -> (Vec<CanaryRead>, Vec<Violation>) {
    let mut reads = tokio::task::JoinSet::new();
    for (id, endpoint) in members {
        let session = session_for(endpoint, sessions.remove(id), writer);
        let (dialer, id, endpoint) = (dialer.clone(), *id, endpoint.clone());
        reads.spawn(async move { read_one(&dialer, id, endpoint, session, acked).await });
    }
    sessions.clear();
    let (mut out, mut found) = (Vec::new(), Vec::new());
    while let Some(done) = reads.join_next().await {
        let Ok((read, session, violations)) = done else {
            continue;
        };
        if let Some(s) = session {
            sessions.insert(read.id, s);
        }
        found.extend(violations);
        out.push(read);
    }
    out.sort_by_key(|r| r.id);
    (out, found)
}

/// Syncs and reads the counter through one member; checks the answer.
async fn read_one(
    dialer: &Dialer,
    id: ServerId,
    endpoint: String,
    session: Option<MemberSession>,
    acked: i64,
) -> (CanaryRead, Option<MemberSession>, Vec<Violation>) {
    let mut read = CanaryRead {
        id,
        read_seconds: None,
        counter: None,
        read_only: false,
        error: None,
    };
    let mut m = match session {
        Some(m) => m,
        None => match dialer.connect(&endpoint, true).await {
            Ok(client) => MemberSession {
                endpoint,
                client,
                seen: None,
                writers: false,
            },
            Err(e) => {
                read.error = Some(format!("unreachable: {e}"));
                return (read, None, Vec::new());
            }
        },
    };
    let limit = dialer.call_limit();
    let began = Instant::now();
    let synced = timeout(limit, m.client.sync(COUNTER_PATH)).await;
    let read_only = m.client.state() == SessionState::ConnectedReadOnly;
    match call(limit, m.client.get_data(COUNTER_PATH)).await {
        Ok((_, stat)) => {
            let version = i64::from(stat.version);
            read.read_seconds = Some(began.elapsed().as_secs_f64());
            read.counter = Some(version.max(0) as u64);
            read.read_only = read_only;
            let violations = check::check_member_read(&MemberRead {
                member: id.0,
                seen: m.seen,
                read: version,
                acked_before: acked,
                synced: matches!(synced, Ok(Ok(()))),
                read_only,
            });
            m.seen = Some(m.seen.map_or(version, |s| s.max(version)));
            (read, Some(m), violations)
        }
        Err(e) => {
            // A new session next round.
            read.error = Some(format!("unreachable: {e}"));
            (read, None, Vec::new())
        }
    }
}
