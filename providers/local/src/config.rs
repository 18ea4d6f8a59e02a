//! The local provider's configuration section and its factory.

use crate::envelope::RootWrapper;
use crate::master_key::MasterKey;
use crate::{LocalProvider, MasterKeySource};
use keygate_provider::kit::{BuildContext, BuildError, Built, ProviderFactory, typed_settings};
use keygate_provider::{KeyUri, SecretRef};
use serde::Deserialize;
use std::path::PathBuf;

/// `[providers.NAME] kind = "local"`:
///
/// ```toml
/// dir = "/var/lib/keygate/providers/local"           # default DATA_DIR/providers/NAME
/// passphrase = { env = "KEYGATE_MASTER_PASSPHRASE" } # or, instead of a passphrase:
/// master_key = { provider = "hsm", key = "pkcs11:…" } # the root key wrapped by that key
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Where the keys live; `DATA_DIR/providers/NAME` by default.
    pub dir: Option<PathBuf>,
    /// The master key's passphrase (Argon2id); required outside dev mode, where a generated
    /// master key is used instead.
    pub passphrase: Option<SecretRef>,
    /// The envelope pattern: the store's root key sealed by this key of another provider
    /// instance (an HSM or a cloud KMS), instead of derived from a passphrase.
    pub master_key: Option<MasterKeyWrap>,
}

/// `master_key = { provider = "NAME", key = "URI" }`: a symmetric encryption key of provider
/// instance NAME, by the provider URI keygate shows for it (`keygate key show`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKeyWrap {
    pub provider: String,
    pub key: KeyUri,
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

    fn depends_on(&self, settings: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
        settings
            .get("master_key")
            .and_then(|wrap| wrap.get("provider"))
            .and_then(|provider| provider.as_str())
            .map(|provider| vec![provider.to_string()])
            .unwrap_or_default()
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
        let (source, wrapper) = match (config.passphrase, config.master_key, context.dev) {
            (Some(_), Some(_), _) => {
                return Err(BuildError::Invalid(
                    "set `passphrase` or `master_key`, not both: the root key comes from one of them"
                        .into(),
                ));
            }
            (None, Some(wrap), _) => {
                let Some(provider) = context.built.get(&wrap.provider) else {
                    return Err(BuildError::Invalid(format!(
                        "master_key.provider '{}' is not a configured provider",
                        wrap.provider
                    )));
                };
                let wrapper = RootWrapper::new(provider.clone(), wrap.key)
                    .canonical()
                    .await
                    .map_err(invalid)?;
                let (root, record) = match MasterKey::envelope_on_disk(&dir).map_err(invalid)? {
                    Some(record) => {
                        if record.key != *wrapper.key() {
                            tracing::warn!(
                                provider = name,
                                sealed_by = %record.key,
                                configured = %wrapper.key(),
                                "the master key is still wrapped by the previous key; a master-key rotation (keygate admin rotate-master-key) moves it to the configured one"
                            );
                        }
                        (wrapper.unseal_root(&record).await.map_err(invalid)?, record)
                    }
                    None => wrapper.seal_new_root().await.map_err(invalid)?,
                };
                (MasterKeySource::Envelope { root, record }, Some(wrapper))
            }
            (Some(reference), None, _) => (
                MasterKeySource::Passphrase(
                    reference.resolve(&format!("providers.{name}.passphrase"))?,
                ),
                None,
            ),
            (None, None, true) => (MasterKeySource::DevGenerated, None),
            (None, None, false) => {
                return Err(BuildError::Invalid(
                    "needs `passphrase = { env = \"VAR\" }` (or `{ file = \"PATH\" }`), or `master_key = { provider = \"NAME\", key = \"URI\" }`, outside dev mode"
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
        let provider = match wrapper {
            Some(wrapper) => provider.with_root_wrapper(wrapper),
            None => provider,
        };
        Ok(Built::provider(provider))
    }
}

fn invalid(e: impl std::fmt::Display) -> BuildError {
    BuildError::Invalid(e.to_string())
}
