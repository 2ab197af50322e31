//! Counts the controller's AWS API calls by cluster, service and operation
//! (an SDK interceptor on every client it builds), for `/metrics` and `zkop
//! bench --aws-calls`. Retries of one call count once. A call counts for the
//! cluster whose task made it ([`scoped`]): one process may run many
//! clusters, and a group's shared lease counts for the cluster whose pass
//! renewed it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_sdk_ec2::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Calls by (cluster, service, operation).
type Counts = BTreeMap<(String, String, String), u64>;

static CALLS: Mutex<Counts> = Mutex::new(BTreeMap::new());

tokio::task_local! {
    /// The cluster the running task's calls count for.
    static CLUSTER: String;
}

/// Runs `work` with its AWS calls counted for `cluster`.
pub fn scoped<F: std::future::Future>(
    cluster: &str,
    work: F,
) -> impl std::future::Future<Output = F::Output> + use<F> {
    CLUSTER.scope(cluster.to_string(), work)
}

/// The interceptor that counts.
#[derive(Debug, Clone, Copy)]
pub struct CountCalls;

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "zkop-count-calls"
    }

    // Not `read_before_execution`: the operation's name is in the config
    // bag only once the operation's own configuration is applied.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(m) = cfg.load::<Metadata>() {
            let cluster = CLUSTER.try_with(|c| c.clone()).unwrap_or_default();
            let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
            *calls
                .entry((cluster, m.service().to_string(), m.name().to_string()))
                .or_default() += 1;
        }
        Ok(())
    }
}

/// `cluster`'s calls so far, by (service, operation).
pub fn calls(cluster: &str) -> BTreeMap<(String, String), u64> {
    CALLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|((c, _, _), _)| c == cluster)
        .map(|((_, s, o), n)| ((s.clone(), o.clone()), *n))
        .collect()
}

/// The longest any AWS call may take, retries included: shorter than the
/// leader lease's validity (its time to live less the margin), so that no
/// call started under the lease outlives it by the SDK's own clock either.
/// The controller also bounds each call by the lease left.
pub const CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// `fn $name(config) -> $sdk::Client`: a client of that service whose calls
/// are counted and bounded by [`CALL_DEADLINE`].
macro_rules! counted_client {
    ($(#[$doc:meta] $name:ident => $sdk:ident;)*) => {$(
        #[$doc]
        pub fn $name(config: &aws_config::SdkConfig) -> $sdk::Client {
            $sdk::Client::from_conf(
                $sdk::config::Builder::from(config)
                    .interceptor(CountCalls)
                    .timeout_config(
                        $sdk::config::timeout::TimeoutConfig::builder()
                            .operation_timeout(CALL_DEADLINE)
                            .build(),
                    )
                    .build(),
            )
        }
    )*};
}

counted_client! {
    /// An Auto Scaling client that counts its calls.
    autoscaling => aws_sdk_autoscaling;
    /// An EC2 client that counts its calls.
    ec2 => aws_sdk_ec2;
    /// A DynamoDB client that counts its calls.
    dynamodb => aws_sdk_dynamodb;
    /// A CloudWatch Logs client that counts its calls.
    logs => aws_sdk_cloudwatchlogs;
    /// An SSM client that counts its calls.
    ssm => aws_sdk_ssm;
    /// A Route53 client that counts its calls.
    route53 => aws_sdk_route53;
}
