//! The SDK client, built from an [`AwsKmsConfig`] (region, endpoint, credentials by
//! reference, timeouts), and [`AwsKmsProvider::call`], the one way a request is sent.
//!
//! The SDK's own retries are off: keygate's guard (`keygate_provider::kit::Guarded`) retries
//! idempotent operations on throttling and outages for every provider alike, within the
//! call's deadline and the instance's retry budget. With both on, attempts would multiply and
//! the SDK would also retry CreateKey, which can make a second key.
//!
//! The SDK's HTTPS client (hyper 1 + rustls) picks the aws-lc-rs crypto provider explicitly,
//! so it does not depend on a process-wide rustls default being installed.

use crate::config::{AwsKmsConfig, CredentialsConfig};
use crate::errors::{Attempt, from_sdk};
use crate::provider::AwsKmsProvider;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region, SharedCredentialsProvider};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use keygate_provider::{ProviderError, Replied, Result};
use std::future::Future;

pub(crate) async fn build(provider: &str, config: &AwsKmsConfig) -> Result<aws_sdk_kms::Client> {
    if config.region.is_empty() {
        return Err(ProviderError::invalid(provider, "config: region is empty"));
    }
    let region = Region::new(config.region.clone());
    let credentials = credentials(provider, config, region.clone()).await?;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout())
        .operation_timeout(config.timeout())
        .build();
    let mut builder = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials)
        .timeout_config(timeouts)
        .retry_config(RetryConfig::disabled());
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url.clone());
    }
    Ok(aws_sdk_kms::Client::from_conf(builder.build()))
}

pub(crate) async fn credentials(
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

/// A KMS answer, with its request id and what was asked, for the fields still to be read.
pub(crate) struct Sent<'a, O> {
    pub out: O,
    pub request_id: Option<String>,
    at: Attempt<'a>,
}

impl<O> Sent<'_, O> {
    /// The reply field `take` reads, or `Internal` naming the missing `field`.
    pub fn field<T>(self, field: &str, take: impl FnOnce(O) -> Option<T>) -> Result<Replied<T>> {
        let at = self.at;
        match take(self.out) {
            Some(value) => Ok(Replied::with_request_id(value, self.request_id)),
            None => Err(at.missing(field)),
        }
    }

    /// A reply with no field to read.
    pub fn done(self) -> Replied<()> {
        Replied::with_request_id((), self.request_id)
    }
}

impl AwsKmsProvider {
    /// An SDK failure of `op` on `key` as keygate's error, for callers that look at the error
    /// first (a bad signature is an answer, not a failure).
    pub(crate) fn sdk<E>(
        &self,
        op: &'static str,
        key: &str,
        err: SdkError<E, Response>,
    ) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        from_sdk(self.at(op, key), err)
    }

    /// Sends a check (Verify, VerifyMac). KMS answers "no" with the error `no_code`; to
    /// keygate that is `false`, not a failure.
    pub(crate) async fn check<O, E>(
        &self,
        op: &'static str,
        key: &str,
        no_code: &str,
        send: impl Future<Output = std::result::Result<O, SdkError<E, Response>>>,
        valid: impl FnOnce(&O) -> bool,
    ) -> Result<Replied<bool>>
    where
        O: RequestId,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match send.await {
            Ok(out) => Ok(Replied::with_request_id(
                valid(&out),
                out.request_id().map(str::to_string),
            )),
            Err(e) if e.code() == Some(no_code) => Ok(Replied::with_request_id(
                false,
                e.request_id().map(str::to_string),
            )),
            Err(e) => Err(from_sdk(self.at(op, key), e)),
        }
    }

    /// Sends one request (`send` is the SDK's `.send()` future) for operation `op` on `key`:
    /// failures become typed errors naming both, successes keep their request id.
    pub(crate) async fn call<'a, O, E>(
        &'a self,
        op: &'static str,
        key: &'a str,
        send: impl Future<Output = std::result::Result<O, SdkError<E, Response>>>,
    ) -> Result<Sent<'a, O>>
    where
        O: RequestId,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let at = self.at(op, key);
        match send.await {
            Ok(out) => Ok(Sent {
                request_id: out.request_id().map(str::to_string),
                out,
                at,
            }),
            Err(e) => Err(from_sdk(at, e)),
        }
    }
}
