//! The provider's configuration.

use crate::Pkcs11Provider;
use keygate_provider::kit::{BuildContext, BuildError, Built, ProviderFactory, typed_settings};
use serde::Deserialize;
use std::path::PathBuf;

/// Configuration of one PKCS#11 provider instance, e.g. in TOML:
///
/// ```toml
/// module = "/usr/lib/softhsm/libsofthsm2.so"
/// token = { label = "keygate" }
/// user_pin = { env = "KEYGATE_HSM_PIN" }
/// session_pool_size = 4
/// ```
///
/// The PIN is only a reference: the gateway resolves it (see [`SecretRef`]) and hands the
/// value to [`crate::Pkcs11Provider::connect`], so it never sits in the config or in logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the vendor's PKCS#11 shared library.
    pub module: PathBuf,
    /// Which token holds keygate's keys.
    pub token: TokenSelector,
    /// Where the user (CKU_USER) PIN comes from.
    pub user_pin: SecretRef,
    /// How many logged-in sessions to keep open; this bounds concurrent calls to the token.
    #[serde(default = "default_pool_size")]
    pub session_pool_size: usize,
    /// For tokens whose CKM_RSA_PKCS_OAEP supports only SHA-1 (SoftHSM2 2.6 and older):
    /// decrypt rsa-*-oaep with raw RSA (CKM_RSA_X_509) on the token and remove the
    /// OAEP-SHA-256 padding in the provider, in constant time. The private key still never
    /// leaves the token, but the token then performs raw RSA for keygate. Leave off for HSMs
    /// that support OAEP with SHA-256; with it off, such a token answers `Unsupported`.
    #[serde(default)]
    pub oaep_unpad_in_provider: bool,
}

/// Identifies the token. A label is preferred: slot numbers change when tokens are added.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenSelector {
    /// The token's CKA_LABEL (`CK_TOKEN_INFO.label`, trailing spaces ignored).
    Label(String),
    /// A fixed slot id, for modules whose tokens have no stable label.
    SlotId(u64),
}

pub use keygate_provider::SecretRef;

pub const DEFAULT_SESSION_POOL_SIZE: usize = 4;

fn default_pool_size() -> usize {
    DEFAULT_SESSION_POOL_SIZE
}

impl Pkcs11Config {
    /// A config for `module` and a token label, with the PIN in `$KEYGATE_HSM_PIN`.
    pub fn new(module: impl Into<PathBuf>, token_label: impl Into<String>) -> Self {
        Self {
            module: module.into(),
            token: TokenSelector::Label(token_label.into()),
            user_pin: SecretRef::Env("KEYGATE_HSM_PIN".into()),
            session_pool_size: DEFAULT_SESSION_POOL_SIZE,
            oaep_unpad_in_provider: false,
        }
    }
}

/// Builds PKCS#11 providers.
pub struct Pkcs11Factory;

/// The factory the gateway registers for `kind = "pkcs11"`.
pub fn factory() -> &'static dyn ProviderFactory {
    &Pkcs11Factory
}

#[async_trait::async_trait]
impl ProviderFactory for Pkcs11Factory {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    async fn build(
        &self,
        name: &str,
        settings: serde_json::Value,
        _context: &BuildContext,
    ) -> Result<Built, BuildError> {
        let config: Pkcs11Config = typed_settings(settings)?;
        let pin = config
            .user_pin
            .resolve(&format!("providers.{name}.user_pin"))?;
        let provider = Pkcs11Provider::connect(name, &config, pin)
            .await
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        Ok(Built::provider(provider))
    }
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::Label(label) => write!(f, "token label '{label}'"),
            TokenSelector::SlotId(id) => write!(f, "slot id {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let config: Pkcs11Config = serde_json::from_str(
            r#"{"module": "/m.so", "token": {"label": "keygate"}, "user_pin": {"env": "PIN"}}"#,
        )
        .expect("valid config");
        assert_eq!(config.token, TokenSelector::Label("keygate".into()));
        assert_eq!(config.user_pin, SecretRef::Env("PIN".into()));
        assert_eq!(config.session_pool_size, DEFAULT_SESSION_POOL_SIZE);
        assert!(!config.oaep_unpad_in_provider);
    }

    #[test]
    fn refuses_an_inline_pin() {
        let result: Result<Pkcs11Config, _> = serde_json::from_str(
            r#"{"module": "/m.so", "token": {"label": "k"}, "user_pin": "1234"}"#,
        );
        assert!(result.is_err());
    }
}
