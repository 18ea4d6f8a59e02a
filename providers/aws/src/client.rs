//! Builds the SDK client from an [`AwsKmsConfig`]: region, endpoint, credentials by reference,
//! timeouts and the retry budget.
//!
//! The SDK's HTTPS client (hyper 1 + rustls) picks the aws-lc-rs crypto provider explicitly,
//! so it does not depend on a process-wide rustls default being installed.

use crate::config::{AwsKmsConfig, CredentialsConfig};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region, SharedCredentialsProvider};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use keygate_provider::{ProviderError, Result};
use std::time::Duration;

pub(crate) async fn build(provider: &str, config: &AwsKmsConfig) -> Result<aws_sdk_kms::Client> {
    if config.region.is_empty() {
        return Err(ProviderError::invalid(provider, "config: region is empty"));
    }
    if config.retry.max_attempts == 0 {
        return Err(ProviderError::invalid(
            provider,
            "config: retry.max_attempts must be at least 1",
        ));
    }
    let region = Region::new(config.region.clone());
    let credentials = credentials(provider, config, region.clone()).await?;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout())
        .operation_timeout(config.timeout())
        .build();
    let retry = RetryConfig::standard()
        .with_max_attempts(config.retry.max_attempts)
        .with_initial_backoff(Duration::from_millis(config.retry.initial_backoff_ms))
        .with_max_backoff(Duration::from_millis(config.retry.max_backoff_ms));
    let mut builder = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials)
        .timeout_config(timeouts)
        .retry_config(retry);
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url.clone());
    }
    Ok(aws_sdk_kms::Client::from_conf(builder.build()))
}

async fn credentials(
    provider: &str,
    config: &AwsKmsConfig,
    region: Region,
) -> Result<SharedCredentialsProvider> {
    Ok(match &config.credentials {
        CredentialsConfig::Chain => SharedCredentialsProvider::new(
            DefaultCredentialsChain::builder()
                .region(region)
                .build()
                .await,
        ),
        CredentialsConfig::Profile { name } => SharedCredentialsProvider::new(
            ProfileFileCredentialsProvider::builder()
                .profile_name(name)
                .build(),
        ),
        CredentialsConfig::Env {
            access_key_id_env,
            secret_access_key_env,
            session_token_env,
        } => {
            let id = env(provider, access_key_id_env)?;
            let secret = env(provider, secret_access_key_env)?;
            let token = session_token_env
                .as_deref()
                .map(|name| env(provider, name))
                .transpose()?;
            SharedCredentialsProvider::new(Credentials::new(
                id,
                secret,
                token,
                None,
                "keygate-env-reference",
            ))
        }
    })
}

/// Reads a credential from the environment; the error names the variable, never a value.
fn env(provider: &str, name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(ProviderError::invalid(
            provider,
            format!("config: credentials environment variable {name} is unset or empty"),
        )),
    }
}
