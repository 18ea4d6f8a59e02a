//! Logging in and keeping the token alive, through vaultrs (these calls need no request id).
//!
//! A renewable token with a TTL is renewed when two thirds of its TTL have passed. An AppRole
//! token that can no longer be renewed is replaced by a fresh login. Root and other
//! non-expiring tokens (TTL 0) need nothing, and the task ends.

use crate::client::VaultHttp;
use crate::config::VaultConfig;
use keygate_provider::{ProviderError, SecretBytes};
use std::sync::Arc;
use std::time::Duration;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

/// Retry pause after a failed lookup, renewal or login.
const RETRY: Duration = Duration::from_secs(10);

/// What the renewal task needs to log in again.
pub struct AppRoleLogin {
    pub mount: String,
    pub role_id: SecretBytes,
    pub secret_id: SecretBytes,
}

/// A token and how long it lives, as Vault reported it.
pub struct Lease {
    pub token: SecretBytes,
    pub ttl: Duration,
    pub renewable: bool,
}

fn client(config: &VaultConfig, token: &str) -> Result<VaultClient, String> {
    let mut settings = VaultClientSettingsBuilder::default();
    settings
        .address(config.address.trim_end_matches('/'))
        .token(token)
        .namespace(config.namespace.clone())
        .timeout(Some(config.request_timeout()))
        .verify(true)
        .ca_certs(
            config
                .ca_bundle
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        );
    let settings = settings.build().map_err(|e| e.to_string())?;
    VaultClient::new(settings).map_err(|e| describe(&e))
}

/// vaultrs's Display shows only the status; the server's text is in `APIError::errors`.
fn describe(e: &ClientError) -> String {
    match e {
        ClientError::APIError { code, errors } => format!("HTTP {code}: {}", errors.join("; ")),
        other => keygate_provider::kit::error_chain(other),
    }
}

fn to_provider_error(provider: &str, what: &str, e: &ClientError) -> ProviderError {
    match e {
        ClientError::APIError {
            code: 403 | 400, ..
        } => ProviderError::BackendDenied {
            provider: provider.into(),
            reason: format!("Vault refused {what}: {}", describe(e)),
        },
        ClientError::APIError { .. } => {
            ProviderError::internal(provider, format!("{what}: {}", describe(e)))
        }
        _ => ProviderError::unavailable(provider, format!("{what}: {}", describe(e))),
    }
}

/// Logs in with AppRole.
pub async fn approle_login(
    provider: &str,
    config: &VaultConfig,
    login: &AppRoleLogin,
) -> Result<Lease, ProviderError> {
    let client = client(config, "").map_err(|e| ProviderError::internal(provider, e))?;
    let role_id = String::from_utf8_lossy(login.role_id.expose());
    let secret_id =
        zeroize::Zeroizing::new(String::from_utf8_lossy(login.secret_id.expose()).into_owned());
    let auth = vaultrs::auth::approle::login(&client, &login.mount, &role_id, &secret_id)
        .await
        .map_err(|e| to_provider_error(provider, "AppRole login", &e))?;
    Ok(Lease {
        token: SecretBytes::new(auth.client_token.into_bytes()),
        ttl: Duration::from_secs(auth.lease_duration),
        renewable: auth.renewable,
    })
}

/// What the renewal loop does next.
pub enum Next {
    /// Ask Vault about the configured token (at start, or after a failure).
    Lookup,
    /// A lease just obtained by login or renewal.
    Lease { ttl: Duration, renewable: bool },
}

/// Keeps the token in `http` valid for as long as the provider lives.
pub async fn maintain(
    provider: String,
    config: VaultConfig,
    http: Arc<VaultHttp>,
    approle: Option<AppRoleLogin>,
    mut next: Next,
) {
    loop {
        let (ttl, renewable) = match next {
            Next::Lease { ttl, renewable } => (ttl, renewable),
            Next::Lookup => match lookup_self(&config, &http).await {
                Ok((ttl, _)) if ttl.is_zero() => {
                    // Root and other non-expiring tokens never need renewal.
                    tracing::debug!(provider = %provider, "token does not expire; no renewal needed");
                    return;
                }
                Ok((ttl, renewable)) => (ttl, renewable),
                Err(e) => {
                    tracing::warn!(provider = %provider, error = %e, "token lookup failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        // A lease of 0 from login or renewal means nothing is left: replace it at once.
        if !ttl.is_zero() {
            tokio::time::sleep(ttl.mul_f64(2.0 / 3.0).max(Duration::from_secs(1))).await;
        }
        next = if renewable && !ttl.is_zero() {
            match renew_self(&config, &http).await {
                // A renewal that grants much less than before has hit the token's max TTL:
                // stop renewing and replace the token (AppRole) before it runs out.
                Ok((new_ttl, still)) => Next::Lease {
                    ttl: new_ttl,
                    renewable: still && new_ttl * 2 >= ttl,
                },
                Err(e) => {
                    tracing::warn!(provider = %provider, error = %e, "token renewal failed");
                    relogin(&provider, &config, &http, approle.as_ref()).await
                }
            }
        } else {
            relogin(&provider, &config, &http, approle.as_ref()).await
        };
    }
}

async fn relogin(
    provider: &str,
    config: &VaultConfig,
    http: &VaultHttp,
    approle: Option<&AppRoleLogin>,
) -> Next {
    let Some(login) = approle else {
        // A plain token cannot be replaced: look it up again to learn what is left.
        tracing::warn!(provider = %provider, "the configured token can no longer be renewed");
        tokio::time::sleep(RETRY).await;
        return Next::Lookup;
    };
    loop {
        match approle_login(provider, config, login).await {
            Ok(lease) => {
                if let Err(e) = http.token.set(&lease.token) {
                    tracing::error!(provider = %provider, error = %e, "new token unusable");
                }
                return Next::Lease {
                    ttl: lease.ttl,
                    renewable: lease.renewable,
                };
            }
            Err(e) => {
                tracing::warn!(provider = %provider, error = %e, "AppRole login failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn lookup_self(config: &VaultConfig, http: &VaultHttp) -> Result<(Duration, bool), String> {
    let token = http.token.expose().ok_or("token unavailable")?;
    let client = client(config, &token)?;
    let info = vaultrs::token::lookup_self(&client)
        .await
        .map_err(|e| describe(&e))?;
    Ok((
        Duration::from_secs(info.ttl),
        info.renewable.unwrap_or(false),
    ))
}

async fn renew_self(config: &VaultConfig, http: &VaultHttp) -> Result<(Duration, bool), String> {
    let token = http.token.expose().ok_or("token unavailable")?;
    let client = client(config, &token)?;
    let auth = vaultrs::token::renew_self(&client, None)
        .await
        .map_err(|e| describe(&e))?;
    Ok((Duration::from_secs(auth.lease_duration), auth.renewable))
}
