//! Server ids leased as CloudWatch Logs streams: one log group per cluster, one
//! stream per live id, named by the id. Creating a stream that exists fails, so a
//! claim is atomic; the stream's first event names the instance holding it, so
//! a claim the state never recorded is found again by its instance.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::warn;
use zkop_spec::InstanceId;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

use zkop_spec::zk::ServerId;

use crate::adapters::{Claim, IdLedger, LedgerError, ORPHAN_AFTER, TakenIds};

/// ZooKeeper's ids are longs; zkop issues them from 1 and stops well before
/// any sane ensemble would need more.
const MAX_ID: u64 = 255;

/// Id leases in a CloudWatch Logs group.
#[derive(Debug, Clone)]
pub struct LogStreamLedger {
    client: Client,
    group: String,
    orphan_after: Duration,
}

fn io(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Io(std::io::Error::other(format!(
        "CloudWatch Logs {what}: {e}"
    )))
}

impl LogStreamLedger {
    /// A ledger in `group` (created if missing).
    pub async fn open(config: &aws_config::SdkConfig, group: &str) -> Result<Self, LedgerError> {
        let client = super::calls::logs(config);
        match client.create_log_group().log_group_name(group).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) => {}
            Err(e) => return Err(io("CreateLogGroup", super::describe(&e))),
        }
        Ok(Self {
            client,
            group: group.to_string(),
            orphan_after: ORPHAN_AFTER,
        })
    }

    /// The ids whose streams exist, lowest first.
    pub async fn held(&self) -> Result<Vec<ServerId>, LedgerError> {
        Ok(self
            .streams()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// The ids whose streams exist, lowest first, with when each was created
    /// (ms since the Unix epoch).
    async fn streams(&self) -> Result<Vec<(ServerId, i64)>, LedgerError> {
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .describe_log_streams()
            .log_group_name(&self.group)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| io("DescribeLogStreams", super::describe(&e)))?;
            for s in page.log_streams() {
                if let Some(id) = s.log_stream_name().and_then(|n| n.parse().ok()) {
                    ids.push((ServerId(id), s.creation_time().unwrap_or(0)));
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Streams this old without a holder are orphans (a claim that crashed
    /// or whose PutLogEvents failed) and are released; the default,
    /// [`ORPHAN_AFTER`], outlasts any claim in flight.
    pub fn with_orphan_after(mut self, after: Duration) -> Self {
        self.orphan_after = after;
        self
    }

    /// The instance named in a lease's stream, if any.
    pub async fn holder(&self, id: ServerId) -> Result<Option<String>, LedgerError> {
        let out = self
            .client
            .get_log_events()
            .log_group_name(&self.group)
            .log_stream_name(id.to_string())
            .start_from_head(true)
            .limit(1)
            .send()
            .await
            .map_err(|e| io("GetLogEvents", super::describe(&e)))?;
        Ok(out
            .events()
            .first()
            .and_then(|e| e.message())
            .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
            .and_then(|v| v["instance"].as_str().map(str::to_string)))
    }
}

impl LogStreamLedger {
    /// Creates `id`'s stream naming `instance`; false when it exists.
    async fn create(&self, id: ServerId, instance: &str) -> Result<bool, LedgerError> {
        match self
            .client
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(id.to_string())
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(io("CreateLogStream", super::describe(&e))),
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let message = serde_json::json!({ "instance": instance, "claimedAtMs": now }).to_string();
        let event = InputLogEvent::builder()
            .timestamp(now)
            .message(message)
            .build()
            .map_err(|e| io("InputLogEvent", e))?;
        self.client
            .put_log_events()
            .log_group_name(&self.group)
            .log_stream_name(id.to_string())
            .log_events(event)
            .send()
            .await
            .map_err(|e| io("PutLogEvents", super::describe(&e)))?;
        Ok(true)
    }
}

impl IdLedger for LogStreamLedger {
    async fn claim(&self, instance: &InstanceId, taken: &TakenIds) -> Result<Claim, LedgerError> {
        let streams = self.streams().await?;
        let mut held: Vec<ServerId> = streams.iter().map(|(id, _)| *id).collect();
        let mut restored = Vec::new();
        for (id, holder) in taken {
            if let Some(holder) = holder
                && !held.contains(id)
                && self.create(*id, holder).await?
            {
                restored.push(*id);
            }
        }
        // Streams not taken are rare (a controller stopped mid-claim): each
        // costs one GetLogEvents here.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for (id, created) in streams.iter().filter(|(id, _)| !taken.contains_key(id)) {
            match self.holder(*id).await? {
                Some(h) if h == instance.as_str() => {
                    return Ok(Claim {
                        id: *id,
                        resumed: true,
                        restored,
                    });
                }
                // Never given its holder, long ago: an orphan, released.
                None if now.saturating_sub(*created) >= self.orphan_after.as_millis() as i64 => {
                    warn!(id = %id, "releasing id stream that never named its holder");
                    self.release(*id).await?;
                    held.retain(|h| h != id);
                }
                _ => {}
            }
        }
        for id in (1..=MAX_ID).map(ServerId) {
            // Lost a race for a name: move on to the next id.
            if !held.contains(&id) && !taken.contains_key(&id) && self.create(id, instance).await? {
                return Ok(Claim {
                    id,
                    resumed: false,
                    restored,
                });
            }
        }
        Err(LedgerError::Exhausted(MAX_ID))
    }

    async fn release(&self, id: ServerId) -> Result<(), LedgerError> {
        match self
            .client
            .delete_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(id.to_string())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(io("DeleteLogStream", super::describe(&e))),
        }
    }
}
