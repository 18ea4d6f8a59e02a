//! The envelope pattern: the store's root key wrapped by a key in another provider (an HSM or
//! a cloud KMS), so nothing in the data directory opens the keys on its own. The root key is
//! random; master.json keeps only its ciphertext and which key version sealed it, and the
//! provider unwraps it at start-up. A master-key rotation makes a new root key sealed under
//! the wrapping key's current version: once the versions (or keys) that sealed older roots are
//! destroyed in their provider, copies of the data directory from before open nothing.

use crate::master_key::random_secret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::{
    Algorithm, KeyProvider, KeyPurpose, KeyUri, ProviderError, ProviderKey, ProviderKeyState,
    SecretBytes, VersionRef,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Binds a sealed root key to its purpose, so no other ciphertext of the wrapping key passes
/// for one.
const ROOT_AAD: &[u8] = b"keygate-local-root-key-v1";

/// What master.json records of an enveloped root key: who sealed it, with which version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeRecord {
    /// The provider instance that holds the wrapping key.
    pub provider: String,
    pub key: KeyUri,
    pub algorithm: Algorithm,
    pub version: u32,
    pub provider_version: String,
    /// The root key sealed by that version, base64.
    pub sealed_root: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error(
        "the master key is wrapped by provider '{recorded}', but `master_key.provider` names '{configured}'; configure '{recorded}' until a master-key rotation has moved the root key"
    )]
    OtherProvider {
        recorded: String,
        configured: String,
    },
    #[error("wrapping key {key} of provider '{provider}': {source}")]
    Provider {
        provider: String,
        key: KeyUri,
        source: ProviderError,
    },
    #[error(
        "wrapping key {key} of provider '{provider}' is {algorithm}; the root key is sealed with authenticated data, so it needs a symmetric encryption key (AES-256-GCM)"
    )]
    NotForEncryption {
        provider: String,
        key: KeyUri,
        algorithm: Algorithm,
    },
    #[error(
        "wrapping key {key} of provider '{provider}' is {state:?}; a new root key is sealed only by an enabled key"
    )]
    NotEnabled {
        provider: String,
        key: KeyUri,
        state: ProviderKeyState,
    },
    #[error("wrapping key {key} of provider '{provider}' has no version")]
    NoVersion { provider: String, key: KeyUri },
    #[error("master.json's sealed root key is not base64")]
    BadEncoding,
    #[error("the unwrapped root key is {0} bytes, not 32")]
    BadLength(usize),
    #[error("generating a root key failed")]
    Random,
}

/// The configured wrapping key, reached through its provider's guard (deadline, retries,
/// breaker) like every other provider call.
#[derive(Clone)]
pub struct RootWrapper {
    provider: Arc<dyn KeyProvider>,
    key: KeyUri,
}

impl std::fmt::Debug for RootWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootWrapper")
            .field("provider", &self.provider.name())
            .field("key", &self.key)
            .finish()
    }
}

impl RootWrapper {
    pub fn new(provider: Arc<dyn KeyProvider>, key: KeyUri) -> Self {
        Self { provider, key }
    }

    /// The same wrapper, its key named as its provider describes it (an AWS alias becomes
    /// the key's ARN): the form keygate's catalog holds, so the gateway recognises the key
    /// when someone asks to destroy, disable or retire it.
    pub async fn canonical(mut self) -> Result<Self, EnvelopeError> {
        let described = self.describe().await?;
        self.key = described.uri;
        Ok(self)
    }

    pub fn provider_name(&self) -> &str {
        self.provider.name()
    }

    pub fn key(&self) -> &KeyUri {
        &self.key
    }

    /// The configured key, as its provider describes it now.
    async fn describe(&self) -> Result<ProviderKey, EnvelopeError> {
        Ok(self
            .provider
            .describe(&self.key)
            .await
            .map_err(self.failed(&self.key))?
            .value)
    }

    fn failed(&self, key: &KeyUri) -> impl FnOnce(ProviderError) -> EnvelopeError + '_ {
        let key = key.clone();
        move |source| EnvelopeError::Provider {
            provider: self.provider.name().to_string(),
            key,
            source,
        }
    }

    /// A new random root key, sealed under the wrapping key's primary version.
    pub async fn seal_new_root(&self) -> Result<(SecretBytes, EnvelopeRecord), EnvelopeError> {
        let described = self.describe().await?;
        let name = self.provider.name().to_string();
        if described.state != ProviderKeyState::Enabled {
            return Err(EnvelopeError::NotEnabled {
                provider: name,
                key: self.key.clone(),
                state: described.state,
            });
        }
        let algorithm = described.algorithm;
        if algorithm.purpose() != KeyPurpose::Encrypt || !algorithm.is_symmetric() {
            return Err(EnvelopeError::NotForEncryption {
                provider: name,
                key: self.key.clone(),
                algorithm: described.algorithm,
            });
        }
        let primary = described
            .versions
            .last()
            .ok_or_else(|| EnvelopeError::NoVersion {
                provider: name.clone(),
                key: self.key.clone(),
            })?;
        let version = VersionRef {
            uri: self.key.clone(),
            algorithm: described.algorithm,
            version: primary.number,
            provider_version: primary.provider_version.clone(),
        };
        let root = random_secret(32).map_err(|_| EnvelopeError::Random)?;
        let sealed = self
            .provider
            .encrypt(&version, &root, ROOT_AAD)
            .await
            .map_err(self.failed(&self.key))?
            .value;
        let record = EnvelopeRecord {
            provider: name,
            key: version.uri,
            algorithm: version.algorithm,
            version: version.version,
            provider_version: version.provider_version,
            sealed_root: B64.encode(sealed),
        };
        Ok((root, record))
    }

    /// The root key `record` holds, unwrapped by the version that sealed it (which need not be
    /// the configured key: after `master_key.key` changes, the old key opens the store until
    /// a master-key rotation seals a new root under the new one).
    pub async fn unseal_root(&self, record: &EnvelopeRecord) -> Result<SecretBytes, EnvelopeError> {
        if record.provider != self.provider.name() {
            return Err(EnvelopeError::OtherProvider {
                recorded: record.provider.clone(),
                configured: self.provider.name().to_string(),
            });
        }
        let sealed = B64
            .decode(&record.sealed_root)
            .map_err(|_| EnvelopeError::BadEncoding)?;
        let version = VersionRef {
            uri: record.key.clone(),
            algorithm: record.algorithm,
            version: record.version,
            provider_version: record.provider_version.clone(),
        };
        let root = self
            .provider
            .decrypt(&version, &sealed, ROOT_AAD)
            .await
            .map_err(self.failed(&record.key))?
            .value;
        if root.expose().len() != 32 {
            return Err(EnvelopeError::BadLength(root.expose().len()));
        }
        Ok(root)
    }
}
