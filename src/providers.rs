//! Provider instances from configuration, by name.

use crate::config::{Config, ProviderConfig, SecretRef};
use keygate_provider::KeyProvider;
use keygate_provider_local::{LocalProvider, MasterKeySource};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub struct ProviderRegistry {
    providers: BTreeMap<String, Arc<dyn KeyProvider>>,
    default: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("providers.{name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("providers.{name}: unknown kind '{kind}' (this build knows: local)")]
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
    pub fn from_config(config: &Config, dev: bool) -> Result<Self, ProviderSetupError> {
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
            let provider = build(name, section, &config.storage.data_dir, dev)?;
            registry.insert(provider);
        }
        Ok(registry)
    }
}

fn setting<T: serde::de::DeserializeOwned>(
    name: &str,
    section: &ProviderConfig,
    key: &str,
) -> Result<Option<T>, ProviderSetupError> {
    section
        .settings
        .get(key)
        .map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| ProviderSetupError::Invalid {
                name: name.into(),
                reason: format!("{key}: {e}"),
            })
        })
        .transpose()
}

fn build(
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
            for key in section.settings.keys() {
                if key != "passphrase" && key != "dir" {
                    return Err(invalid(format!(
                        "unknown setting '{key}' (local takes passphrase, dir)"
                    )));
                }
            }
            let dir = setting::<std::path::PathBuf>(name, section, "dir")?
                .unwrap_or_else(|| data_dir.join("providers").join(name));
            let passphrase = setting::<SecretRef>(name, section, "passphrase")
                .map_err(|e| invalid(format!("{e}")))?;
            let source = match (passphrase, dev) {
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
        other => Err(ProviderSetupError::UnknownKind {
            name: name.into(),
            kind: other.into(),
        }),
    }
}
