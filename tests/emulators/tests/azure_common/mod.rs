//! Shared set-up for the Key Vault emulator's SDK tests: a `KeyClient` over HTTPS that
//! trusts the emulator's test CA, with a fixed token or a real `azure_identity` credential.
#![allow(dead_code)]

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_core::time::{Duration, OffsetDateTime};
use azure_security_keyvault_keys::models::{CreateKeyParameters, Key};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use keygate_emulators::azure::AzureEmulator;

pub type BoxError = Box<dyn std::error::Error>;
pub type TestResult = Result<(), BoxError>;

/// Any bearer token will do for the vault; it only checks one is present.
#[derive(Debug)]
pub struct FixedToken;

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "emulator-token",
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

pub fn http_client(emu: &AzureEmulator) -> Result<reqwest::Client, BoxError> {
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes())?;
    Ok(reqwest::Client::builder().tls_certs_only([ca]).build()?)
}

pub fn client_options(emu: &AzureEmulator) -> Result<ClientOptions, BoxError> {
    Ok(ClientOptions {
        transport: Some(Transport::new(Arc::new(http_client(emu)?))),
        retry: RetryOptions::none(),
        ..Default::default()
    })
}

pub fn client_with_credential(
    emu: &AzureEmulator,
    credential: Arc<dyn TokenCredential>,
) -> Result<KeyClient, BoxError> {
    let options = KeyClientOptions {
        client_options: client_options(emu)?,
        // The challenge names vault.azure.net, which is not this host.
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    Ok(KeyClient::new(&emu.url(), credential, Some(options))?)
}

pub fn client(emu: &AzureEmulator) -> Result<KeyClient, BoxError> {
    client_with_credential(emu, Arc::new(FixedToken))
}

pub async fn create(
    client: &KeyClient,
    name: &str,
    p: CreateKeyParameters,
) -> Result<Key, BoxError> {
    Ok(client
        .create_key(name, p.try_into()?, None)
        .await?
        .into_model()?)
}

pub fn kid(key: &Key) -> Result<String, BoxError> {
    Ok(key
        .key
        .as_ref()
        .and_then(|k| k.kid.clone())
        .ok_or("no kid")?)
}

pub fn version_of(kid: &str) -> String {
    kid.rsplit('/').next().unwrap_or_default().to_string()
}

/// (HTTP status, Key Vault error code) of a failed call.
pub fn failure<T>(r: azure_core::Result<T>) -> (u16, String) {
    match r {
        Ok(_) => panic!("expected the call to fail"),
        Err(e) => match e.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => (u16::from(*status), error_code.clone().unwrap_or_default()),
            other => panic!("unexpected error kind {other:?}: {e:?}"),
        },
    }
}
