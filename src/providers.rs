//! Provider instances from configuration, by name: `[providers.NAME] kind = "…"`.
//!
//! Each kind's settings deserialize into that provider crate's own typed configuration, so an
//! unknown or misspelt setting is refused at start-up with the section's name.

use crate::config::{Config, ProviderConfig, SecretRef};
use keygate_provider::KeyProvider;
use keygate_provider_aws::{AwsKmsConfig, AwsKmsProvider};
use keygate_provider_local::{LocalProvider, MasterKeySource};
use keygate_provider_pkcs11::{Pkcs11Config, Pkcs11Provider};
use keygate_provider_vault::{VaultConfig, VaultCredentials, VaultProvider};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The provider kinds this build knows.
pub const KINDS: &[&str] = &["local", "aws-kms", "vault", "pkcs11"];

pub struct ProviderRegistry {
    providers: BTreeMap<String, Arc<dyn KeyProvider>>,
    default: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("providers.{name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("providers.{name}: unknown kind '{kind}' (this build knows: {})", KINDS.join(", "))]
    UnknownKind { name: String, kind: String },
}

impl ProviderRegistry {
    pub fn new(default: &str) -> Self {
        Self {
            providers: BTreeMap::new(),
            default: default.to_string(),
        }
    }

    pub fn insert(&mut self, provider: Arc<dyn KeyProvider>) {
        self.providers.insert(provider.name().to_string(), provider);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn KeyProvider>> {
        self.providers.get(name).cloned()
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    pub fn names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    /// Builds every configured provider. In dev mode a `local` provider with a generated
    /// master key is added when the configuration has none.
    pub async fn from_config(config: &Config, dev: bool) -> Result<Self, ProviderSetupError> {
        let mut sections = config.providers.clone();
        if dev && !sections.contains_key("local") {
            sections.insert(
                "local".into(),
                ProviderConfig {
                    kind: "local".into(),
                    settings: BTreeMap::new(),
                },
            );
        }
        let default = config
            .default_provider
            .clone()
            .or_else(|| sections.contains_key("local").then(|| "local".to_string()))
            .or_else(|| sections.keys().next().cloned())
            .unwrap_or_default();
        let mut registry = Self::new(&default);
        for (name, section) in &sections {
            let provider = build(name, section, &config.storage.data_dir, dev).await?;
            registry.insert(provider);
        }
        Ok(registry)
    }
}

/// The section's settings (everything but `kind`) as the provider's typed configuration.
fn typed<T: serde::de::DeserializeOwned>(
    name: &str,
    section: &ProviderConfig,
) -> Result<T, ProviderSetupError> {
    let settings = serde_json::Value::Object(section.settings.clone().into_iter().collect());
    serde_json::from_value(settings).map_err(|e| ProviderSetupError::Invalid {
        name: name.into(),
        reason: e.to_string(),
    })
}

async fn build(
    name: &str,
    section: &ProviderConfig,
    data_dir: &Path,
    dev: bool,
) -> Result<Arc<dyn KeyProvider>, ProviderSetupError> {
    let invalid = |reason: String| ProviderSetupError::Invalid {
        name: name.into(),
        reason,
    };
    match section.kind.as_str() {
        "local" => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct LocalConfig {
                /// Where the keys live; `DATA_DIR/providers/NAME` by default.
                dir: Option<std::path::PathBuf>,
                /// The master key's passphrase; required outside dev mode.
                passphrase: Option<SecretRef>,
            }
            let local: LocalConfig = typed(name, section)?;
            let dir = local
                .dir
                .unwrap_or_else(|| data_dir.join("providers").join(name));
            let source = match (local.passphrase, dev) {
                (Some(reference), _) => MasterKeySource::Passphrase(
                    reference
                        .resolve(&format!("providers.{name}.passphrase"))
                        .map_err(|e| invalid(e.to_string()))?,
                ),
                (None, true) => MasterKeySource::DevGenerated,
                (None, false) => {
                    return Err(invalid(
                        "needs `passphrase = { env = \"VAR\" }` or `{ file = \"PATH\" }` outside dev mode".into(),
                    ));
                }
            };
            let provider =
                LocalProvider::open(name, &dir, source).map_err(|e| invalid(e.to_string()))?;
            Ok(Arc::new(provider))
        }
        "aws-kms" => {
            let config: AwsKmsConfig = typed(name, section)?;
            let provider = AwsKmsProvider::new(name, config)
                .await
                .map_err(|e| invalid(e.to_string()))?;
            Ok(Arc::new(provider))
        }
        "vault" => {
            let config: VaultConfig = typed(name, section)?;
            let credentials = VaultCredentials::resolve(&config.auth)
                .map_err(|e| invalid(format!("auth: {e}")))?;
            let provider = VaultProvider::connect(name, config, credentials)
                .await
                .map_err(|e| invalid(e.to_string()))?;
            Ok(Arc::new(provider))
        }
        "pkcs11" => {
            let config: Pkcs11Config = typed(name, section)?;
            let pin = config
                .user_pin
                .resolve(&format!("providers.{name}.user_pin"))
                .map_err(|e| invalid(e.to_string()))?;
            let provider = Pkcs11Provider::connect(name, &config, pin)
                .await
                .map_err(|e| invalid(e.to_string()))?;
            Ok(Arc::new(provider))
        }
        other => Err(ProviderSetupError::UnknownKind {
            name: name.into(),
            kind: other.into(),
        }),
    }
}
