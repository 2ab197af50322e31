//! A backup under an S3 prefix: immutable objects created with
//! `If-None-Match: *` (a second create of a key is refused by S3 itself),
//! manifests replaced whole, every object encrypted at rest (SSE-KMS with the
//! spec's key, SSE-S3 otherwise).

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use zkop_spec::backup::S3Location;

use super::{BackupError, Created};

/// A backup in S3.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

fn io(target: String, key: &str, e: impl std::fmt::Display) -> BackupError {
    BackupError::Io {
        target,
        key: key.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl S3Store {
    /// The backup at `location`, with credentials, region and endpoint from
    /// the standard chain (`AWS_ENDPOINT_URL` for a local emulator, which
    /// then gets path-style requests).
    pub async fn open(location: &S3Location) -> S3Store {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        S3Store::with_config(&config, location)
    }

    /// The backup at `location` through `config`.
    pub fn with_config(config: &aws_config::SdkConfig, location: &S3Location) -> S3Store {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        let prefix = match location.prefix.as_str() {
            "" => String::new(),
            p if p.ends_with('/') => p.to_string(),
            p => format!("{p}/"),
        };
        S3Store {
            client: Client::from_conf(s3),
            bucket: location.bucket.clone(),
            prefix,
            kms_key_id: location.kms_key_id.clone(),
        }
    }

    fn target(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn put_request(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .body(ByteStream::from(bytes.to_vec()));
        match &self.kms_key_id {
            Some(k) => put
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k),
            None => put.server_side_encryption(ServerSideEncryption::Aes256),
        }
    }

    pub(super) async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Created, BackupError> {
        match self.put_request(key, bytes).if_none_match("*").send().await {
            Ok(_) => Ok(Created::New),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                Ok(Created::Existed)
            }
            Err(e) => Err(io(self.target(), key, DisplayErrorContext(&e))),
        }
    }

    pub(super) async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BackupError> {
        self.put_request(key, bytes)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| io(self.target(), key, DisplayErrorContext(&e)))
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackupError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(io(self.target(), key, DisplayErrorContext(&e))),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| io(self.target(), key, e))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| io(self.target(), prefix, DisplayErrorContext(&e)))?;
            for o in page.contents() {
                if let Some(key) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    out.push((key.to_string(), o.size().unwrap_or(0).max(0) as u64));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), BackupError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| io(self.target(), key, DisplayErrorContext(&e)))
    }
}
