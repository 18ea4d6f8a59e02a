//! S3, reached with the instance's own region, credentials and endpoint: where CloudTrail
//! delivers its log files (read by keygate's CloudTrail ingester) and where keygate can
//! witness its audit checkpoints. The gateway reads and normalises the files; this only moves
//! bytes.
//!
//! With `endpoint_url` (LocalStack, MinIO) or `s3_endpoint_url` set, requests use path-style
//! addressing (`http://host/bucket/key`): virtual-hosted names would not resolve there.

use crate::config::AwsKmsConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use keygate_provider::kit::{AuditFeed, ObjectInfo, ObjectStore, error_chain};
use keygate_provider::{ProviderError, Result};
use std::sync::Arc;

pub struct S3Objects {
    provider: String,
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    pub(crate) async fn build(provider: &str, config: &AwsKmsConfig) -> Result<Self> {
        let region = Region::new(config.region.clone());
        let credentials = crate::client::credentials(provider, config, region.clone()).await?;
        let timeouts = aws_smithy_types::timeout::TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout())
            .operation_timeout(config.timeout().max(std::time::Duration::from_secs(60)))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .credentials_provider(credentials)
            .timeout_config(timeouts);
        if let Some(url) = config
            .s3_endpoint_url
            .as_ref()
            .or(config.endpoint_url.as_ref())
        {
            builder = builder.endpoint_url(url.clone()).force_path_style(true);
        }
        Ok(Self {
            provider: provider.to_string(),
            client: aws_sdk_s3::Client::from_conf(builder.build()),
        })
    }

    fn fail<E>(
        &self,
        what: String,
        err: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().unwrap_or_default().to_string();
        let detail = match err.message() {
            Some(m) => format!("{code}: {m}"),
            None => error_chain(&err),
        };
        match code.as_str() {
            "NoSuchBucket" | "NoSuchKey" | "NotFound" => {
                ProviderError::not_found(&self.provider, format!("{what} ({detail})"))
            }
            "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                ProviderError::BackendDenied {
                    provider: self.provider.clone(),
                    reason: format!("{what}: {detail}"),
                }
            }
            "SlowDown" | "Throttling" => {
                ProviderError::throttled(&self.provider, format!("{what}: {detail}"))
            }
            _ => ProviderError::unavailable(&self.provider, format!("{what}: {detail}")),
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Objects {
    fn scheme(&self) -> &'static str {
        "s3"
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Result<Vec<ObjectInfo>> {
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(i32::try_from(max.min(1000)).unwrap_or(1000));
        if !prefix.is_empty() {
            request = request.prefix(prefix);
        }
        if !start_after.is_empty() {
            request = request.start_after(start_after);
        }
        let out = request
            .send()
            .await
            .map_err(|e| self.fail(format!("listing s3://{bucket}/{prefix}"), e))?;
        Ok(out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectInfo {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                })
            })
            .collect())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.fail(format!("reading s3://{bucket}/{key}"), e))?;
        let bytes = out.body.collect().await.map_err(|e| {
            ProviderError::unavailable(
                &self.provider,
                format!("reading s3://{bucket}/{key}: {}", error_chain(&e)),
            )
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.fail(format!("writing s3://{bucket}/{key}"), e))?;
        Ok(())
    }
}

/// What an AWS KMS instance offers the audit feed: its S3.
pub struct AwsAuditFeed(pub Arc<S3Objects>);

impl AuditFeed for AwsAuditFeed {
    fn source(&self) -> &'static str {
        "aws-kms"
    }

    fn objects(&self) -> Option<Arc<dyn ObjectStore>> {
        Some(self.0.clone())
    }
}
