//! The cluster's state as one DynamoDB item (`pk = state#<cluster>`), written
//! with conditional puts on its `version`, and fenced by the controller epoch:
//! a write from a controller whose epoch is older than the stored one fails.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::adapters::{StateStore, StoreError};
use crate::model::Persisted;

/// State in a DynamoDB table whose hash key is the string `pk`.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    key: String,
}

fn io(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("DynamoDB {what}: {e}")))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

impl DynamoStore {
    /// The state of `cluster` in `table`.
    pub fn new(config: &aws_config::SdkConfig, table: &str, cluster: &str) -> Self {
        Self {
            client: super::calls::dynamodb(config),
            table: table.to_string(),
            key: format!("state#{cluster}"),
        }
    }

    async fn item(&self) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        super::get_item(&self.client, &self.table, &self.key).await
    }
}

impl StateStore for DynamoStore {
    async fn load(&self) -> Result<Option<Persisted>, StoreError> {
        let Some(item) = self.item().await? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: format!("{}/{}", self.table, self.key),
            reason,
        };
        let json = item
            .get("state")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| corrupt("no `state` attribute".into()))?;
        let mut state: Persisted =
            serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
        state.store_version =
            number(&item, "version").ok_or_else(|| corrupt("no `version` attribute".into()))?;
        Ok(Some(state))
    }

    async fn save(&self, state: &Persisted) -> Result<u64, StoreError> {
        let next = state.store_version + 1;
        let mut stored = state.clone();
        stored.store_version = next;
        let json = serde_json::to_string(&stored).map_err(|e| io("encode", e))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.key.clone()))
            .item("version", AttributeValue::N(next.to_string()))
            .item("epoch", AttributeValue::N(state.epoch.to_string()))
            .item("state", AttributeValue::S(json));
        put = if state.store_version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v AND epoch <= :e")
                .expression_attribute_values(
                    ":v",
                    AttributeValue::N(state.store_version.to_string()),
                )
                .expression_attribute_values(":e", AttributeValue::N(state.epoch.to_string()))
        };
        match put.send().await {
            Ok(_) => Ok(next),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let found = self
                    .item()
                    .await?
                    .and_then(|i| number(&i, "version"))
                    .unwrap_or(0);
                Err(StoreError::Conflict {
                    expected: state.store_version,
                    found,
                })
            }
            Err(e) => Err(io("PutItem", super::describe(&e))),
        }
    }
}
