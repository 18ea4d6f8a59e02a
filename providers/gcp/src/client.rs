//! The SDK client, built from a [`GcpKmsConfig`] (endpoint, credentials by reference,
//! timeout), and [`GcpKmsProvider::call`], the one way a request is sent.
//!
//! Every request goes through `call`, which stamps keygate's request id into its
//! `User-Agent` (see `user_agent.rs`) and maps failures to typed errors: a request cannot be
//! sent without either, because the builders are only sent from there.
//!
//! The SDK's own retries are off: keygate's guard (`keygate_provider::kit::Guarded`) retries
//! idempotent operations on throttling, outages and corrupted replies for every provider
//! alike, within the call's deadline and the instance's retry budget. The SDK's default
//! policy would also retry on its own, multiplying attempts and hiding them from the breaker.

use crate::config::{CredentialsConfig, GcpKmsConfig};
use crate::errors::{Attempt, from_sdk};
use crate::provider::GcpKmsProvider;
use crate::user_agent::{current_request_id, user_agent};
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_kms_v1::builder::key_management_service as b;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model as m;
use keygate_provider::{ProviderError, Replied, Result};
use std::future::Future;

pub(crate) async fn build(provider: &str, config: &GcpKmsConfig) -> Result<KeyManagementService> {
    let credentials = credentials(provider, &config.credentials)?;
    let mut builder = KeyManagementService::builder()
        .with_credentials(credentials)
        .with_retry_policy(NeverRetry)
        .with_attempt_timeout(config.timeout);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    builder.build().await.map_err(|e| {
        ProviderError::invalid(
            provider,
            format!(
                "config: cannot build the Cloud KMS client: {}",
                keygate_provider::kit::error_chain(&e)
            ),
        )
    })
}

fn credentials(
    provider: &str,
    config: &CredentialsConfig,
) -> Result<google_cloud_auth::credentials::Credentials> {
    use google_cloud_auth::credentials;
    let failed = |what: &str, e: &(dyn std::error::Error + 'static)| {
        ProviderError::invalid(
            provider,
            format!("config: {what}: {}", keygate_provider::kit::error_chain(e)),
        )
    };
    match config {
        CredentialsConfig::Adc => credentials::Builder::default()
            .build()
            .map_err(|e| failed("Application Default Credentials", &e)),
        CredentialsConfig::Anonymous => Ok(credentials::anonymous::Builder::new().build()),
        CredentialsConfig::ServiceAccount { key } => {
            let secret = key
                .resolve("credentials.key")
                .map_err(|e| ProviderError::invalid(provider, format!("config: {e}")))?;
            // The key is parsed here only; its private part never reaches a message.
            let json: serde_json::Value =
                serde_json::from_slice(secret.expose()).map_err(|_| {
                    ProviderError::invalid(
                        provider,
                        "config: credentials.key is not a service-account key (JSON)",
                    )
                })?;
            credentials::service_account::Builder::new(json)
                .build()
                .map_err(|e| failed("credentials.key", &e))
        }
    }
}

/// One SDK request builder: sent only by [`GcpKmsProvider::call`].
pub(crate) trait Call: RequestOptionsBuilder + Sized + Send {
    type Output: Send;
    fn send(self) -> impl Future<Output = google_cloud_kms_v1::Result<Self::Output>> + Send;
}

macro_rules! calls {
    ($($builder:ident => $output:ty,)*) => {$(
        impl Call for b::$builder {
            type Output = $output;
            fn send(self) -> impl Future<Output = google_cloud_kms_v1::Result<$output>> + Send {
                b::$builder::send(self)
            }
        }
    )*};
}

calls! {
    GetKeyRing => m::KeyRing,
    CreateKeyRing => m::KeyRing,
    ListKeyRings => m::ListKeyRingsResponse,
    CreateCryptoKey => m::CryptoKey,
    GetCryptoKey => m::CryptoKey,
    ListCryptoKeys => m::ListCryptoKeysResponse,
    UpdateCryptoKey => m::CryptoKey,
    UpdateCryptoKeyPrimaryVersion => m::CryptoKey,
    CreateCryptoKeyVersion => m::CryptoKeyVersion,
    GetCryptoKeyVersion => m::CryptoKeyVersion,
    ListCryptoKeyVersions => m::ListCryptoKeyVersionsResponse,
    UpdateCryptoKeyVersion => m::CryptoKeyVersion,
    DestroyCryptoKeyVersion => m::CryptoKeyVersion,
    RestoreCryptoKeyVersion => m::CryptoKeyVersion,
    Encrypt => m::EncryptResponse,
    Decrypt => m::DecryptResponse,
    AsymmetricSign => m::AsymmetricSignResponse,
    AsymmetricDecrypt => m::AsymmetricDecryptResponse,
    GetPublicKey => m::PublicKey,
    MacSign => m::MacSignResponse,
    MacVerify => m::MacVerifyResponse,
    CreateImportJob => m::ImportJob,
    GetImportJob => m::ImportJob,
    ImportCryptoKeyVersion => m::CryptoKeyVersion,
}

/// A reply, with what was asked, for the checks still to be made on it.
pub(crate) struct Sent<'a, O> {
    pub out: O,
    pub at: Attempt<'a>,
}

impl<'a, O> Sent<'a, O> {
    pub fn request_id(&self) -> String {
        self.at.request_id.to_string()
    }

    /// The reply as keygate's answer, with keygate's request id as the provider's.
    pub fn reply<T>(&self, value: T) -> Replied<T> {
        Replied::with_request_id(value, Some(self.request_id()))
    }
}

impl GcpKmsProvider {
    pub(crate) fn at<'a>(
        &'a self,
        op: &'static str,
        key: &'a str,
        request_id: &'a str,
    ) -> Attempt<'a> {
        Attempt {
            provider: &self.name,
            op,
            key,
            request_id,
        }
    }

    /// Sends one request for operation `op` on `key` (a resource name or URI, for messages)
    /// under `request_id`, which goes into the `User-Agent`; failures become typed errors
    /// naming all three.
    pub(crate) async fn call<'a, C: Call>(
        &'a self,
        op: &'static str,
        key: &'a str,
        request_id: &'a str,
        request: C,
    ) -> Result<Sent<'a, C::Output>> {
        let at = self.at(op, key, request_id);
        match request.with_user_agent(user_agent(request_id)).send().await {
            Ok(out) => Ok(Sent { out, at }),
            Err(e) => {
                // Cloud Audit Logs record failed requests too: the id joins them to the event.
                keygate_provider::context::note_backend_request_id(request_id);
                Err(from_sdk(at, &e))
            }
        }
    }

    /// The request id for the requests of one trait call.
    pub(crate) fn request_id(&self) -> String {
        current_request_id()
    }
}
