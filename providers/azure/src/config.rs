//! The typed, documented configuration of one Azure Key Vault (or Managed HSM) instance.
//!
//! Credentials are always named, never inlined: managed identity, workload identity, or a
//! service principal whose secret or certificate is a reference (`{ env = … }`,
//! `{ file = … }`).

use crate::AzureKeyVaultProvider;
use keygate_provider::SecretRef;
use keygate_provider::kit::{BuildContext, BuildError, Built, ProviderFactory, typed_settings};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One vault or Managed HSM (several may coexist, one section each).
///
/// ```toml
/// vault_url = "https://payments-kv.vault.azure.net/"   # or https://NAME.managedhsm.azure.net/
/// hsm = true                          # RSA-HSM / EC-HSM keys in a Premium vault
/// credential = { source = "managed-identity" }
/// # credential = { source = "workload-identity" }
/// # credential = { source = "client-secret", tenant_id = "…", client_id = "…", secret = { env = "AZURE_CLIENT_SECRET" } }
/// # credential = { source = "client-certificate", tenant_id = "…", client_id = "…", certificate = { file = "/run/secrets/sp.pem" } }
/// # authority_host = "https://login.microsoftonline.us"   # sovereign clouds
/// # ca_bundle = "/etc/keygate/kv-ca.pem"                  # extra CAs (an emulator)
/// # verify_challenge_resource = false                     # an emulator not on *.vault.azure.net
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureKeyVaultConfig {
    /// `https://NAME.vault.azure.net/` or `https://NAME.managedhsm.azure.net/`. HTTPS only:
    /// the SDK never sends a token over plain HTTP.
    pub vault_url: String,
    /// Whether the endpoint is a Managed HSM (HSM keys only, plus `oct-HSM` AES-256 keys for
    /// `aes-256-gcm`). Default: true when the host is `*.managedhsm.azure.net`.
    #[serde(default)]
    pub managed_hsm: Option<bool>,
    /// Create `RSA-HSM` / `EC-HSM` keys in a vault (a Premium vault's HSMs) instead of
    /// software-protected `RSA` / `EC`. Always on in a Managed HSM.
    #[serde(default)]
    pub hsm: bool,
    pub credential: CredentialConfig,
    /// Microsoft Entra ID's host for the service principal credentials (sovereign clouds,
    /// or a test identity endpoint). Default: the public cloud's.
    #[serde(default)]
    pub authority_host: Option<String>,
    /// PEM bundle of CAs trusted for the vault's certificate, in addition to the system's.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// Check that the bearer challenge names a Key Vault resource (on by default; turn it
    /// off only for an emulator whose host is not a Key Vault domain).
    #[serde(default = "default_true")]
    pub verify_challenge_resource: bool,
    /// Time allowed to open a TCP/TLS connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed for one request (key generation included); past it the attempt is
    /// `Unavailable` and the guard may retry it within the call's deadline.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// Where the token comes from. Never a secret itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CredentialConfig {
    /// Workload identity when its environment is set (`AZURE_FEDERATED_TOKEN_FILE`, as on
    /// AKS), else the managed identity of the host: the usual chain for a service in Azure.
    Chain {
        #[serde(default)]
        client_id: Option<String>,
    },
    /// The host's managed identity (system-assigned, or the user-assigned one named).
    ManagedIdentity {
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Federated tokens from a file (AKS workload identity); unset fields come from
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity {
        #[serde(default)]
        tenant_id: Option<String>,
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
    /// A service principal with a client secret, by reference.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: SecretRef,
    },
    /// A service principal with a certificate: a PEM holding the certificate and its
    /// PKCS#8 RSA private key, by reference.
    ClientCertificate {
        tenant_id: String,
        client_id: String,
        certificate: SecretRef,
    },
}

impl AzureKeyVaultConfig {
    /// A config for `vault_url` with `credential` and the defaults for everything else.
    pub fn new(vault_url: impl Into<String>, credential: CredentialConfig) -> Self {
        Self {
            vault_url: vault_url.into(),
            managed_hsm: None,
            hsm: false,
            credential,
            authority_host: None,
            ca_bundle: None,
            verify_challenge_resource: true,
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

fn default_true() -> bool {
    true
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// Builds Azure Key Vault providers.
pub struct AzureKeyVaultFactory;

/// The factory the gateway registers for `kind = "azure-keyvault"`.
pub fn factory() -> &'static dyn ProviderFactory {
    &AzureKeyVaultFactory
}

#[async_trait::async_trait]
impl ProviderFactory for AzureKeyVaultFactory {
    fn kind(&self) -> &'static str {
        crate::KIND
    }

    async fn build(
        &self,
        name: &str,
        settings: serde_json::Value,
        _context: &BuildContext,
    ) -> Result<Built, BuildError> {
        if settings.get("retry").is_some() {
            return Err(BuildError::Settings(format!(
                "`retry` belongs in [providers.{name}.guard.retry]: keygate's guard retries for \
                 every provider, and the Azure SDK's own retries are off"
            )));
        }
        let config: AzureKeyVaultConfig = typed_settings(settings)?;
        Ok(Built::provider(AzureKeyVaultProvider::new(name, config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_by_reference_parse() {
        let c: AzureKeyVaultConfig = serde_json::from_str(
            r#"{"vault_url":"https://kv.vault.azure.net/","credential":{"source":"client-secret",
                "tenant_id":"t","client_id":"c","secret":{"env":"S"}}}"#,
        )
        .expect("valid config");
        assert!(matches!(
            c.credential,
            CredentialConfig::ClientSecret { .. }
        ));
        assert!(c.verify_challenge_resource);
        let c: AzureKeyVaultConfig = serde_json::from_str(
            r#"{"vault_url":"https://kv.vault.azure.net/","credential":{"source":"managed-identity"}}"#,
        )
        .expect("valid config");
        assert!(matches!(
            c.credential,
            CredentialConfig::ManagedIdentity { client_id: None }
        ));
    }

    #[test]
    fn inline_secrets_and_unknown_settings_are_refused() {
        let inline: Result<AzureKeyVaultConfig, _> = serde_json::from_str(
            r#"{"vault_url":"https://kv.vault.azure.net/","credential":{"source":"client-secret",
                "tenant_id":"t","client_id":"c","secret":"hunter2"}}"#,
        );
        let err = inline.expect_err("inline secret accepted").to_string();
        assert!(
            err.contains("inline secrets are refused") && !err.contains("hunter2"),
            "{err}"
        );
        let typo: Result<AzureKeyVaultConfig, _> = serde_json::from_str(
            r#"{"vault_uri":"https://kv.vault.azure.net/","credential":{"source":"chain"}}"#,
        );
        assert!(typo.is_err());
    }
}
