//! The controller's leader lease: one DynamoDB item (`pk = lease#<cluster>`,
//! or `lease#group#<name>` for a controller group running many clusters)
//! with its holder, the holder's API URL, an expiry and an epoch that rises with
//! every change of holder. Every write is conditional on the record read, so
//! two controllers never both hold it; when one may take it over is the
//! controller's decision (`LeaseKeeper`), on its own monotonic clock.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::adapters::{Lease, LeaseRecord, StoreError};

/// A leader lease in a DynamoDB table whose hash key is the string `pk`.
#[derive(Debug, Clone)]
pub struct DynamoLease {
    client: Client,
    table: String,
    key: String,
    holder: String,
    url: String,
    ttl: Duration,
}

fn io(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("DynamoDB {what}: {e}")))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

impl DynamoLease {
    /// A lease for `cluster` in `table`, held as `holder` (unique per controller
    /// process) advertising `url`, valid `ttl` after each renewal.
    pub fn new(
        config: &aws_config::SdkConfig,
        table: &str,
        cluster: &str,
        holder: &str,
        url: &str,
        ttl: Duration,
    ) -> Self {
        Self {
            client: super::calls::dynamodb(config),
            table: table.to_string(),
            key: format!("lease#{cluster}"),
            holder: holder.to_string(),
            url: url.to_string(),
            ttl,
        }
    }

    /// The one lease of the controller group `group` (`zkop run DIR`), shared
    /// by every cluster it runs.
    pub fn for_group(
        config: &aws_config::SdkConfig,
        table: &str,
        group: &str,
        holder: &str,
        url: &str,
        ttl: Duration,
    ) -> Self {
        Self {
            key: format!("lease#group#{group}"),
            ..Self::new(config, table, group, holder, url, ttl)
        }
    }

    fn record(item: &HashMap<String, AttributeValue>) -> LeaseRecord {
        LeaseRecord {
            holder: text(item, "holder").unwrap_or_default(),
            url: text(item, "url"),
            epoch: number(item, "epoch"),
            expires_at_ms: number(item, "expiresAtMs"),
        }
    }
}

impl Lease for DynamoLease {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn holder(&self) -> &str {
        &self.holder
    }

    fn url(&self) -> Option<String> {
        Some(self.url.clone())
    }

    async fn read(&self) -> Result<Option<LeaseRecord>, StoreError> {
        let item = super::get_item(&self.client, &self.table, &self.key).await?;
        Ok(item.as_ref().map(Self::record))
    }

    async fn write(
        &self,
        prev: Option<&LeaseRecord>,
        epoch: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.key.clone()))
            .item("holder", AttributeValue::S(self.holder.clone()))
            .item("url", AttributeValue::S(self.url.clone()))
            .item("expiresAtMs", AttributeValue::N(expires_at_ms.to_string()))
            .item("epoch", AttributeValue::N(epoch.to_string()));
        put = match prev {
            None => put.condition_expression("attribute_not_exists(pk)"),
            // Exactly the record read: any write since (a renewal, a
            // takeover) makes this one fail.
            Some(p) => put
                .condition_expression(
                    "holder = :holder AND epoch = :epoch AND expiresAtMs = :expires",
                )
                .expression_attribute_values(":holder", AttributeValue::S(p.holder.clone()))
                .expression_attribute_values(":epoch", AttributeValue::N(p.epoch.to_string()))
                .expression_attribute_values(
                    ":expires",
                    AttributeValue::N(p.expires_at_ms.to_string()),
                ),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(io("PutItem", super::describe(&e))),
        }
    }
}
