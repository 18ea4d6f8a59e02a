//! The provider's typed configuration and the credentials the caller resolves for it.

use keygate_provider::SecretBytes;
use keygate_provider::kit::{BuildContext, BuildError, Built, ProviderFactory, typed_settings};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Configuration of one Vault (or OpenBao) Transit provider instance.
///
/// ```toml
/// address = "https://vault.internal:8200"
/// mount = "transit"
/// namespace = "team-a"            # Vault Enterprise / OpenBao namespaces
/// ca_bundle = "/etc/keygate/vault-ca.pem"
/// request_timeout_ms = 5000
/// auth = { method = "token", token = { env = "VAULT_TOKEN" } }
/// # or: auth = { method = "approle", role_id = { file = "/run/secrets/role_id" },
/// #              secret_id = { env = "VAULT_SECRET_ID" } }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Base URL of the server, `http(s)://host:port`, without `/v1`.
    pub address: String,
    /// Where the Transit engine is mounted (may contain `/`, e.g. `kms/transit`).
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Namespace sent as `X-Vault-Namespace` on every request.
    #[serde(default)]
    pub namespace: Option<String>,
    /// How the provider authenticates; the secrets themselves are references.
    pub auth: AuthConfig,
    /// PEM bundle of CAs trusted for the server's certificate, in addition to the system's.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// Upper bound on one HTTP request, connection included.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Upper bound on requests that generate key material (create, rotate): RSA-4096
    /// generation alone can take several seconds on a busy server.
    #[serde(default = "default_keygen_timeout_ms")]
    pub keygen_timeout_ms: u64,
    /// Upper bound on establishing a connection; kept short so an unreachable server is
    /// reported as unavailable quickly.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Asks Vault, once at start, to record keygate's request id (sent on every request as
    /// `X-Keygate-Request-Id`) in its audit log, unhashed
    /// (`sys/config/auditing/request-headers`), so Vault's records join keygate's events even
    /// when a reply was lost. Needs `sudo` on that path; a refusal is logged with the command
    /// an operator can run instead.
    #[serde(default = "default_audit_request_header")]
    pub audit_request_header: bool,
}

/// How the provider logs in. Secrets are references, resolved by the caller (see
/// [`VaultCredentials::resolve`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// A token issued out of band. Renewed in the background when Vault says it is renewable.
    Token { token: SecretRef },
    /// AppRole login; the resulting token is renewed, and the provider logs in again when it
    /// can no longer be renewed.
    #[serde(rename = "approle")]
    AppRole {
        /// Where the AppRole auth method is mounted.
        #[serde(default = "default_approle_mount")]
        mount: String,
        role_id: SecretRef,
        secret_id: SecretRef,
    },
}

pub use keygate_provider::{SecretRef, SecretRefError};

/// The resolved secrets for [`AuthConfig`], handed to [`crate::VaultProvider::connect`].
#[derive(Debug)]
pub enum VaultCredentials {
    Token(SecretBytes),
    AppRole {
        role_id: SecretBytes,
        secret_id: SecretBytes,
    },
}

impl VaultCredentials {
    /// Resolves the references in `auth` (environment variables or files).
    pub fn resolve(auth: &AuthConfig) -> Result<Self, SecretRefError> {
        Ok(match auth {
            AuthConfig::Token { token } => VaultCredentials::Token(token.resolve("auth.token")?),
            AuthConfig::AppRole {
                role_id, secret_id, ..
            } => VaultCredentials::AppRole {
                role_id: role_id.resolve("auth.role_id")?,
                secret_id: secret_id.resolve("auth.secret_id")?,
            },
        })
    }
}

impl VaultConfig {
    /// A config for `address` with a token reference and every other field at its default.
    pub fn with_token(address: impl Into<String>, token: SecretRef) -> Self {
        Self {
            address: address.into(),
            mount: default_mount(),
            namespace: None,
            auth: AuthConfig::Token { token },
            ca_bundle: None,
            request_timeout_ms: default_request_timeout_ms(),
            keygen_timeout_ms: default_keygen_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            audit_request_header: default_audit_request_header(),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn keygen_timeout(&self) -> Duration {
        Duration::from_millis(self.keygen_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn approle_mount(&self) -> &str {
        match &self.auth {
            AuthConfig::AppRole { mount, .. } => mount,
            AuthConfig::Token { .. } => "approle",
        }
    }
}

fn default_mount() -> String {
    "transit".into()
}

fn default_approle_mount() -> String {
    "approle".into()
}

fn default_request_timeout_ms() -> u64 {
    5_000
}

fn default_keygen_timeout_ms() -> u64 {
    60_000
}

fn default_connect_timeout_ms() -> u64 {
    1_000
}

fn default_audit_request_header() -> bool {
    true
}

/// Builds Vault / OpenBao Transit providers.
pub struct VaultFactory;

/// The factory the gateway registers for `kind = "vault"`.
pub fn factory() -> &'static dyn ProviderFactory {
    &VaultFactory
}

#[async_trait::async_trait]
impl ProviderFactory for VaultFactory {
    fn kind(&self) -> &'static str {
        "vault"
    }

    async fn build(
        &self,
        name: &str,
        settings: serde_json::Value,
        _context: &BuildContext,
    ) -> Result<Built, BuildError> {
        if settings.get("throttle_budget_ms").is_some() {
            return Err(BuildError::Settings(format!(
                "`throttle_budget_ms` has given way to [providers.{name}.guard.retry]: keygate's \
                 guard retries throttled requests for every provider"
            )));
        }
        let config: VaultConfig = typed_settings(settings)?;
        let credentials = VaultCredentials::resolve(&config.auth)
            .map_err(|e| BuildError::Invalid(format!("auth: {e}")))?;
        let provider = crate::VaultProvider::connect(name, config, credentials).await?;
        Ok(Built::provider(provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_by_env_reference() {
        let config: VaultConfig = serde_json::from_str(
            r#"{"address":"http://127.0.0.1:8200","auth":{"method":"token","token":{"env":"VT"}}}"#,
        )
        .expect("config parses");
        assert_eq!(config.mount, "transit");
        assert!(matches!(
            config.auth,
            AuthConfig::Token { token: SecretRef::Env(ref v) } if v == "VT"
        ));
    }

    #[test]
    fn approle_by_file_reference() {
        let config: VaultConfig = serde_json::from_str(
            r#"{"address":"https://v:8200","mount":"kms/transit","auth":{"method":"approle",
                "role_id":{"file":"/r"},"secret_id":{"env":"S"}}}"#,
        )
        .expect("config parses");
        assert_eq!(config.approle_mount(), "approle");
        assert_eq!(config.mount, "kms/transit");
    }

    #[test]
    fn inline_secret_is_refused() {
        let parsed: Result<VaultConfig, _> = serde_json::from_str(
            r#"{"address":"http://x","auth":{"method":"token","token":"s.abcdef"}}"#,
        );
        assert!(parsed.is_err());
    }
}
