//! AWS adapters over the AWS SDK for Rust: the Auto Scaling group as the fleet,
//! CloudWatch Logs streams as id leases, DynamoDB for state and the leader lease,
//! SSM and Route53 for where clients connect (`publish`).
//! Credentials, region and endpoint come from the standard chain
//! (`AWS_ENDPOINT_URL` points every client at a local emulator in tests).

pub mod calls;
pub use calls::CALL_DEADLINE;
mod fleet;
mod ids;
mod lease;
pub mod publish;
mod store;

pub use fleet::{
    AsgFleet, CLUSTER_TAG, SANDBOX_ADDRESSES, SANDBOX_ZONES, SERVER_ID_TAG, instance_state,
};
pub use ids::LogStreamLedger;
pub use lease::DynamoLease;
pub use store::DynamoStore;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;

/// The SDK configuration from the standard chain, with the SDK's adaptive
/// retries (throttling and 5xx answers back off and retry).
pub async fn sdk_config(region: Option<String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::adaptive().with_max_attempts(5));
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    loader.load().await
}

/// An SDK error with its whole chain of causes, in one line.
pub fn describe<E: std::error::Error + 'static>(e: &E) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
}

/// One DynamoDB item by its `pk`, read consistently.
pub(crate) async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<
    Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
    crate::adapters::StoreError,
> {
    let out = client
        .get_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(key.to_string()),
        )
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| {
            crate::adapters::StoreError::Io(std::io::Error::other(format!(
                "DynamoDB GetItem: {}",
                describe(&e)
            )))
        })?;
    Ok(out.item().cloned())
}
