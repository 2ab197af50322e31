//! The controller's leader lease: one DynamoDB item (`pk = lease#<cluster>`)
//! with its holder, the holder's API URL, an expiry and an epoch that rises with
//! every change of holder. Every change is a conditional write, so two
//! controllers never both believe they lead; only the holder acts.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::adapters::{Lease, LeaseState, StoreError};

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

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes, renews or observes the lease at `now_ms` (ms since the Unix epoch).
    pub async fn round(&self, now_ms: u64) -> Result<LeaseState, StoreError> {
        let current = super::get_item(&self.client, &self.table, &self.key).await?;
        let expires = now_ms + self.ttl.as_millis() as u64;
        let (epoch, condition, values): (u64, &str, Vec<(&str, AttributeValue)>) = match &current {
            None => (1, "attribute_not_exists(pk)", vec![]),
            Some(item) => {
                let epoch = number(item, "epoch");
                let holder = text(item, "holder");
                if holder.as_deref() == Some(self.holder.as_str()) {
                    // Renew our own lease, unless someone took it meanwhile.
                    (
                        epoch,
                        "holder = :me AND epoch = :epoch",
                        vec![
                            (":me", AttributeValue::S(self.holder.clone())),
                            (":epoch", AttributeValue::N(epoch.to_string())),
                        ],
                    )
                } else if number(item, "expiresAtMs") < now_ms {
                    // Expired: take it over with the next epoch.
                    (
                        epoch + 1,
                        "epoch = :epoch",
                        vec![(":epoch", AttributeValue::N(epoch.to_string()))],
                    )
                } else {
                    return Ok(LeaseState::Follower {
                        leader_url: text(item, "url"),
                    });
                }
            }
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.key.clone()))
            .item("holder", AttributeValue::S(self.holder.clone()))
            .item("url", AttributeValue::S(self.url.clone()))
            .item("expiresAtMs", AttributeValue::N(expires.to_string()))
            .item("epoch", AttributeValue::N(epoch.to_string()))
            .condition_expression(condition);
        for (k, v) in values {
            put = put.expression_attribute_values(k, v);
        }
        match put.send().await {
            Ok(_) => Ok(LeaseState::Leader { epoch }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(LeaseState::Follower { leader_url: None })
            }
            Err(e) => Err(io("PutItem", super::describe(&e))),
        }
    }
}

impl Lease for DynamoLease {
    fn ttl(&self) -> Duration {
        DynamoLease::ttl(self)
    }

    async fn round(&self, now_ms: u64) -> Result<LeaseState, StoreError> {
        DynamoLease::round(self, now_ms).await
    }
}
