//! The local provider's configuration section and its factory.

use crate::{LocalProvider, MasterKeySource};
use keygate_provider::SecretRef;
use keygate_provider::kit::{BuildContext, BuildError, Built, ProviderFactory, typed_settings};
use serde::Deserialize;
use std::path::PathBuf;

/// `[providers.NAME] kind = "local"`:
///
/// ```toml
/// dir = "/var/lib/keygate/providers/local"           # default DATA_DIR/providers/NAME
/// passphrase = { env = "KEYGATE_MASTER_PASSPHRASE" } # required outside dev mode
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Where the keys live; `DATA_DIR/providers/NAME` by default.
    pub dir: Option<PathBuf>,
    /// The master key's passphrase (Argon2id); required outside dev mode, where a generated
    /// master key is used instead.
    pub passphrase: Option<SecretRef>,
}

/// Builds local providers.
pub struct LocalFactory;

/// The factory the gateway registers for `kind = "local"`.
pub fn factory() -> &'static dyn ProviderFactory {
    &LocalFactory
}

#[async_trait::async_trait]
impl ProviderFactory for LocalFactory {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn build(
        &self,
        name: &str,
        settings: serde_json::Value,
        context: &BuildContext,
    ) -> Result<Built, BuildError> {
        let config: LocalConfig = typed_settings(settings)?;
        let dir = config
            .dir
            .unwrap_or_else(|| context.data_dir.join("providers").join(name));
        let source = match (config.passphrase, context.dev) {
            (Some(reference), _) => MasterKeySource::Passphrase(
                reference.resolve(&format!("providers.{name}.passphrase"))?,
            ),
            (None, true) => MasterKeySource::DevGenerated,
            (None, false) => {
                return Err(BuildError::Invalid(
                    "needs `passphrase = { env = \"VAR\" }` or `{ file = \"PATH\" }` outside dev mode"
                        .into(),
                ));
            }
        };
        // Argon2id takes about a second by design: off the async workers.
        let name = name.to_string();
        let provider =
            tokio::task::spawn_blocking(move || LocalProvider::open(&name, &dir, source))
                .await
                .map_err(|e| BuildError::Invalid(format!("opening the key store: {e}")))?
                .map_err(|e| BuildError::Invalid(e.to_string()))?;
        Ok(Built::provider(provider))
    }
}
