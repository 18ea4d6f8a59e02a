//! The typed, documented configuration of one AWS KMS provider instance.
//!
//! Credentials are always named, never inlined: the standard AWS chain, a profile, or the
//! names of environment variables that hold the key id and secret.

use crate::AwsKmsProvider;
use keygate_provider::kit::{BuildContext, BuildError, Built, ProviderFactory, typed_settings};
use serde::Deserialize;
use std::time::Duration;

/// One AWS KMS instance (several may coexist: one per account/region/role).
///
/// ```toml
/// region = "eu-west-1"
/// account_id = "123456789012"          # optional: ARNs of other accounts are refused
/// endpoint_url = "http://127.0.0.1:4566" # optional: LocalStack or a VPC endpoint
/// connect_timeout_ms = 2000
/// timeout_ms = 10000
/// credentials = { source = "env", access_key_id_env = "KMS_KEY_ID", secret_access_key_env = "KMS_SECRET" }
/// ```
///
/// Retries and rate limits are the guard's (`[providers.NAME.guard]`, e.g.
/// `rate = { per_second = 10000 }` for KMS's shared request quota); the SDK does not retry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsKmsConfig {
    /// The AWS region every key of this instance lives in (`us-east-1`).
    pub region: String,
    /// The account keys belong to; an ARN naming another account is refused. When unset it is
    /// learned from the first key created or listed (until then only the region is checked).
    #[serde(default)]
    pub account_id: Option<String>,
    /// Overrides the service endpoint (LocalStack, a VPC endpoint, FIPS).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Overrides the S3 endpoint keygate's audit feed uses (CloudTrail log files, a checkpoint
    /// witness bucket); default: `endpoint_url` when set, else AWS's.
    #[serde(default)]
    pub s3_endpoint_url: Option<String>,
    #[serde(default)]
    pub credentials: CredentialsConfig,
    /// Time allowed to open a TCP/TLS connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed for one request to KMS: past it the attempt is `Unavailable` (and the
    /// guard may retry it within the call's deadline).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// Where the credentials come from. Never the values themselves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CredentialsConfig {
    /// The standard AWS chain: environment, shared profile, web identity, ECS, EC2 metadata.
    #[default]
    Chain,
    /// A named profile from the shared config/credentials files.
    Profile { name: String },
    /// Environment variables holding the access key id, secret and optional session token,
    /// read once when the provider is built.
    Env {
        access_key_id_env: String,
        secret_access_key_env: String,
        #[serde(default)]
        session_token_env: Option<String>,
    },
}

impl AwsKmsConfig {
    /// A config for `region` with the defaults for everything else.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            account_id: None,
            endpoint_url: None,
            s3_endpoint_url: None,
            credentials: CredentialsConfig::default(),
            connect_timeout_ms: default_connect_timeout_ms(),
            timeout_ms: default_timeout_ms(),
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// Builds AWS KMS providers.
pub struct AwsKmsFactory;

/// The factory the gateway registers for `kind = "aws-kms"`.
pub fn factory() -> &'static dyn ProviderFactory {
    &AwsKmsFactory
}

#[async_trait::async_trait]
impl ProviderFactory for AwsKmsFactory {
    fn kind(&self) -> &'static str {
        "aws-kms"
    }

    async fn build(
        &self,
        name: &str,
        settings: serde_json::Value,
        _context: &BuildContext,
    ) -> Result<Built, BuildError> {
        if settings.get("retry").is_some() {
            return Err(BuildError::Settings(format!(
                "`retry` has moved to [providers.{name}.guard.retry]: keygate's guard retries for \
                 every provider, and the AWS SDK's own retries are off"
            )));
        }
        let config: AwsKmsConfig = typed_settings(settings)?;
        let objects = crate::objects::S3Objects::build(name, &config).await?;
        let mut built = Built::provider(AwsKmsProvider::new(name, config).await?);
        built.audit_feed = Some(Box::new(crate::objects::AwsAuditFeed(std::sync::Arc::new(
            objects,
        ))));
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_by_reference_parse() {
        let c: AwsKmsConfig = serde_json::from_str(
            r#"{"region":"us-east-1","credentials":{"source":"env","access_key_id_env":"A","secret_access_key_env":"B"}}"#,
        )
        .expect("valid config");
        assert!(matches!(c.credentials, CredentialsConfig::Env { .. }));
        assert_eq!(c.timeout_ms, 10_000);
    }

    #[test]
    fn inline_secrets_are_refused() {
        let r: Result<AwsKmsConfig, _> = serde_json::from_str(
            r#"{"region":"us-east-1","credentials":{"source":"env","secret_access_key":"x"}}"#,
        );
        assert!(r.is_err());
    }
}
