//! A moto server (the AWS API emulator from PyPI `moto[server]`) on a free
//! loopback port, killed by PID when dropped; and SDK configs pointed at it
//! with static dummy credentials, so nothing reaches AWS or instance metadata.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::Credentials;

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _log: tempfile::TempDir,
}

impl Moto {
    /// Starts one and waits until it answers.
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(log.path().join("moto.log")).unwrap();
        // `python3 -m moto.server` needs no script on PATH (pip may put it elsewhere).
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("python3 not found");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _log: log,
        };
        let mut moto = moto;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = moto.child.try_wait().ok().flatten();
            let log =
                || std::fs::read_to_string(moto._log.path().join("moto.log")).unwrap_or_default();
            assert!(
                exited.is_none(),
                "moto server exited ({exited:?}); run scripts/install-deps:\n{}",
                log()
            );
            assert!(
                Instant::now() < deadline,
                "moto server did not listen within 30s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Points a command (the AWS CLI, a script using it) at this server.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    }

    /// An SDK config for this server.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the state table (hash key `pk`, a string).
pub async fn create_table(config: &aws_config::SdkConfig, table: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// A VPC with a subnet, a launch template and an Auto Scaling group of
/// `capacity` instances over it; returns the group's name.
pub async fn create_group(config: &aws_config::SdkConfig, name: &str, capacity: i32) -> String {
    use aws_sdk_ec2::types::RequestLaunchTemplateData;
    let ec2 = aws_sdk_ec2::Client::new(config);
    let (_, subnets) = create_vpc(config, 1).await;
    let subnet_id = subnets[0].clone();
    let image = first_image(config).await;
    ec2.create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type("t3.micro".into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    aws_sdk_autoscaling::Client::new(config)
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(name)
                .version("1")
                .build(),
        )
        .min_size(0)
        .max_size(10)
        .desired_capacity(capacity)
        .vpc_zone_identifier(subnet_id)
        .new_instances_protected_from_scale_in(true)
        .send()
        .await
        .unwrap();
    name.to_string()
}

/// A VPC with `n` subnets in zones a, b, c...; returns their ids.
pub async fn create_vpc(config: &aws_config::SdkConfig, n: u8) -> (String, Vec<String>) {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    let mut subnets = Vec::new();
    for i in 0..n {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.0.{}.0/24", i + 1))
            .availability_zone(format!("us-east-1{}", (b'a' + i) as char))
            .send()
            .await
            .unwrap();
        subnets.push(
            subnet
                .subnet()
                .and_then(|s| s.subnet_id())
                .unwrap()
                .to_string(),
        );
    }
    (vpc_id, subnets)
}

/// An AMI moto knows.
pub async fn first_image(config: &aws_config::SdkConfig) -> String {
    let images = aws_sdk_ec2::Client::new(config)
        .describe_images()
        .send()
        .await
        .unwrap();
    images
        .images()
        .first()
        .and_then(|i| i.image_id())
        .unwrap()
        .to_string()
}

/// An S3 client for a moto server's SDK config (path-style requests: moto
/// answers on one loopback address, not on a host per bucket).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// The server-side encryption S3 reports for an object, and its KMS key.
pub async fn encryption_of(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> (
    Option<aws_sdk_s3::types::ServerSideEncryption>,
    Option<String>,
) {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    (
        head.server_side_encryption().cloned(),
        head.ssekms_key_id().map(str::to_string),
    )
}
