//! The SDK client, built from an [`AzureKeyVaultConfig`] (vault URL, credential by
//! reference, CA bundle, timeouts), and [`AzureKeyVaultProvider::call`], the one way a
//! request is sent.
//!
//! - The SDK's retries are off: keygate's guard retries idempotent operations on throttling
//!   and outages for every provider alike (honouring Key Vault's `Retry-After`), within the
//!   call's deadline and the instance's retry budget.
//! - Every request carries keygate's request id as `x-ms-client-request-id` (a pipeline
//!   policy reads it from `keygate_provider::context`), which Key Vault's AuditEvent log
//!   records as `correlationId`; every reply's `x-ms-request-id` comes back as the
//!   provider request id.
//! - The transport is a reqwest client (rustls) trusting the system's CAs and the
//!   configured bundle; the credential's own requests use the same transport.

use crate::config::AzureKeyVaultConfig;
use crate::credentials;
use crate::errors::{self, Attempt};
use crate::provider::AzureKeyVaultProvider;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::http::headers::CLIENT_REQUEST_ID;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    ClientOptions, Context, DeserializeWith, Format, Request, RequestContent, Response,
    RetryOptions, Transport, Url,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use keygate_provider::{ProviderError, Replied, Result};
use std::future::Future;
use std::sync::Arc;

/// Sets `x-ms-client-request-id` to the request id of the keygate call being served (the
/// SDK's own policy, which runs first, set a random one).
#[derive(Debug)]
struct KeygateRequestId;

#[async_trait::async_trait]
impl Policy for KeygateRequestId {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if let Some(id) = keygate_provider::context::request_id() {
            request.insert_header(CLIENT_REQUEST_ID, id.to_string());
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// What [`build`] makes: the client and what the URL says about the vault.
pub(crate) struct Built {
    pub client: KeyClient,
    /// `host[:port]`, as key URIs carry it.
    pub host: String,
    pub managed_hsm: bool,
}

fn transport(provider: &str, config: &AzureKeyVaultConfig) -> Result<Transport> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout())
        .timeout(config.timeout());
    if let Some(path) = &config.ca_bundle {
        let pem = std::fs::read(path).map_err(|e| {
            ProviderError::invalid(
                provider,
                format!("cannot read CA bundle {}: {e}", path.display()),
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ProviderError::invalid(
                provider,
                format!("CA bundle {} is not PEM: {e}", path.display()),
            )
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    let http = builder.build().map_err(|e| {
        ProviderError::internal(provider, format!("cannot build the HTTP client: {e}"))
    })?;
    Ok(Transport::new(Arc::new(http)))
}

pub(crate) fn build(provider: &str, config: &AzureKeyVaultConfig) -> Result<Built> {
    let url = Url::parse(&config.vault_url).map_err(|e| {
        ProviderError::invalid(provider, format!("vault_url '{}': {e}", config.vault_url))
    })?;
    if url.scheme() != "https" {
        return Err(ProviderError::invalid(
            provider,
            format!(
                "vault_url '{}' must be https: Key Vault clients never send a token over plain HTTP",
                config.vault_url
            ),
        ));
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => {
            return Err(ProviderError::invalid(
                provider,
                format!("vault_url '{}' has no host", config.vault_url),
            ));
        }
    };
    let managed_hsm = config
        .managed_hsm
        .unwrap_or_else(|| host.contains(".managedhsm."));
    let transport = transport(provider, config)?;

    let authority = config
        .authority_host
        .clone()
        .unwrap_or_else(|| credentials::PUBLIC_AUTHORITY.to_string());
    let mut credential_options = ClientOptions {
        transport: Some(transport.clone()),
        retry: RetryOptions::none(),
        ..Default::default()
    };
    if config.authority_host.is_some() {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = authority.clone();
        credential_options.cloud = Some(Arc::new(CloudConfiguration::Custom(cloud)));
    }
    let credential =
        credentials::build(provider, &config.credential, &authority, credential_options)?;

    let options = KeyClientOptions {
        client_options: ClientOptions {
            transport: Some(transport),
            retry: RetryOptions::none(),
            per_call_policies: vec![Arc::new(KeygateRequestId)],
            ..Default::default()
        },
        verify_challenge_resource: Some(config.verify_challenge_resource),
        ..Default::default()
    };
    let client = KeyClient::new(url.as_str(), credential, Some(options)).map_err(|e| {
        ProviderError::invalid(
            provider,
            format!(
                "cannot build the Key Vault client: {}",
                keygate_provider::kit::error_chain(&e)
            ),
        )
    })?;
    Ok(Built {
        client,
        host,
        managed_hsm,
    })
}

impl AzureKeyVaultProvider {
    pub(crate) fn at<'a>(&'a self, op: &'static str, key: &'a str) -> Attempt<'a> {
        Attempt {
            provider: &self.name,
            op,
            key,
        }
    }

    /// Sends one request (`send` is the SDK method's future) for operation `op` on `key`:
    /// failures become typed errors naming both, replies keep their request id.
    pub(crate) async fn call<T, F>(
        &self,
        op: &'static str,
        key: &str,
        send: impl Future<Output = azure_core::Result<Response<T, F>>>,
    ) -> Result<Replied<T>>
    where
        T: DeserializeWith<F>,
        F: Format,
    {
        let at = self.at(op, key);
        let response = send.await.map_err(|e| errors::from_sdk(at, e))?;
        let request_id = errors::request_id(response.headers());
        let model = response.into_model().map_err(|e| {
            ProviderError::internal(
                &self.name,
                format!(
                    "{} got an unreadable reply{}: {}",
                    at.what(),
                    request_id
                        .as_deref()
                        .map(|r| format!(" (request id {r})"))
                        .unwrap_or_default(),
                    keygate_provider::kit::error_chain(&e)
                ),
            )
        })?;
        Ok(Replied::with_request_id(model, request_id))
    }

    /// A request body; a model that does not serialize is keygate's bug, reported as such.
    pub(crate) fn body<T>(&self, op: &'static str, key: &str, value: T) -> Result<RequestContent<T>>
    where
        T: TryInto<RequestContent<T>, Error = azure_core::Error>,
    {
        value.try_into().map_err(|e| {
            ProviderError::internal(
                &self.name,
                format!(
                    "{}: cannot encode the request: {}",
                    self.at(op, key).what(),
                    keygate_provider::kit::error_chain(&e)
                ),
            )
        })
    }

    /// [`AzureKeyVaultProvider::call`] for replies without a body (purge).
    pub(crate) async fn call_empty<T, F>(
        &self,
        op: &'static str,
        key: &str,
        send: impl Future<Output = azure_core::Result<Response<T, F>>>,
    ) -> Result<Replied<()>> {
        let at = self.at(op, key);
        let response = send.await.map_err(|e| errors::from_sdk(at, e))?;
        Ok(Replied::with_request_id(
            (),
            errors::request_id(response.headers()),
        ))
    }
}
