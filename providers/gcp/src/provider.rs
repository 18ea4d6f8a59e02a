//! [`GcpKmsProvider`]: the [`KeyProvider`] trait over one Cloud KMS project and location.
//! The operations live by family in `lifecycle`, `listing`, `crypto`, `signing` and
//! `import`.

use crate::config::{GcpKmsConfig, ProtectionLevelConfig};
use crate::names::Place;
use crate::{KIND, algorithms, crypto, import, lifecycle, listing, signing};
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::ProtectionLevel;
use keygate_provider::{
    Capabilities, ImportParams, ImportSpec, KeyProvider, KeySpec, KeyUri, KeyVersionInfo, Listing,
    PageRequest, ProviderKey, PublicKeyInfo, Replied, Result, SecretBytes, SignInput, VersionRef,
    WrappedKey,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Public keys kept at most (a version's public key never changes, so a cached one is never
/// stale; the cache only bounds memory).
const PUBLIC_KEY_CACHE: usize = 10_000;

/// One Cloud KMS project and location.
pub struct GcpKmsProvider {
    pub(crate) name: String,
    pub(crate) place: Place,
    pub(crate) client: KeyManagementService,
    pub(crate) protection_level: ProtectionLevel,
    pub(crate) destroy_scheduled_duration: Duration,
    /// Set once the key ring is known to exist (checked, or created, on first need).
    pub(crate) ring_ready: tokio::sync::OnceCell<()>,
    /// SPKI DER by CryptoKeyVersion resource name, for RSA-OAEP encryption and signature
    /// verification done here with the public key.
    public_keys: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl GcpKmsProvider {
    /// Builds the instance `name` from `config`. Reads credentials as configured; sends
    /// nothing to Cloud KMS (the key ring is checked when first needed).
    pub async fn new(name: impl Into<String>, config: GcpKmsConfig) -> Result<Self> {
        let name = name.into();
        config
            .check()
            .map_err(|e| keygate_provider::ProviderError::invalid(&name, format!("config: {e}")))?;
        let client = crate::client::build(&name, &config).await?;
        Ok(Self {
            place: Place {
                project: config.project,
                location: config.location,
                key_ring: config.key_ring,
            },
            client,
            protection_level: match config.protection_level {
                ProtectionLevelConfig::Software => ProtectionLevel::Software,
                ProtectionLevelConfig::Hsm => ProtectionLevel::Hsm,
            },
            destroy_scheduled_duration: config.destroy_scheduled_duration,
            ring_ready: tokio::sync::OnceCell::new(),
            public_keys: Mutex::new(HashMap::new()),
            name,
        })
    }

    /// The SDK client, for callers that need a Cloud KMS call the trait does not cover.
    pub fn client(&self) -> &KeyManagementService {
        &self.client
    }

    /// The key ring keygate creates keys in (`projects/P/locations/L/keyRings/R`).
    pub fn key_ring(&self) -> String {
        self.place.ring_path()
    }

    pub(crate) fn cached_public_key(&self, version: &str) -> Option<Arc<Vec<u8>>> {
        self.public_keys
            .lock()
            .ok()
            .and_then(|m| m.get(version).cloned())
    }

    pub(crate) fn cache_public_key(&self, version: &str, spki: Arc<Vec<u8>>) {
        if let Ok(mut m) = self.public_keys.lock() {
            if m.len() >= PUBLIC_KEY_CACHE {
                m.clear();
            }
            m.insert(version.to_string(), spki);
        }
    }
}

#[async_trait::async_trait]
impl KeyProvider for GcpKmsProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            algorithms: algorithms::SUPPORTED.to_vec(),
            rotate: true,
            disable: true,
            destroy: true,
            list: true,
            sign_digest: true,
            // Every operation names the CryptoKeyVersion (decrypt excepted: Cloud KMS's
            // ciphertexts name their version).
            pins_version: true,
            // asymmetricSign takes digests; messages are hashed here.
            digest_only: true,
            import: true,
            settings: false,
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        lifecycle::create_key(self, spec).await
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        let request_id = self.request_id();
        let name = self.key_name(key)?;
        let (described, _, _) = self.provider_key("describe", name, &request_id).await?;
        Ok(Replied::with_request_id(described, Some(request_id)))
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        listing::list(self, page).await
    }

    async fn encrypt(
        &self,
        v: &VersionRef,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        crypto::encrypt(self, v, plaintext, aad).await
    }

    async fn decrypt(
        &self,
        v: &VersionRef,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        crypto::decrypt(self, v, blob, aad).await
    }

    async fn sign(&self, v: &VersionRef, input: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        signing::sign(self, v, input).await
    }

    async fn verify(
        &self,
        v: &VersionRef,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<Replied<bool>> {
        signing::verify(self, v, input, signature).await
    }

    async fn public_key(&self, v: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        signing::public_key(self, v).await
    }

    async fn mac(&self, v: &VersionRef, message: &[u8]) -> Result<Replied<Vec<u8>>> {
        signing::mac(self, v, message).await
    }

    async fn verify_mac(
        &self,
        v: &VersionRef,
        message: &[u8],
        tag: &[u8],
    ) -> Result<Replied<bool>> {
        signing::verify_mac(self, v, message, tag).await
    }

    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        lifecycle::rotate(self, key).await
    }

    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        lifecycle::set_enabled(self, key, enabled).await
    }

    /// Disables the retired versions in Cloud KMS itself.
    async fn retire_versions(&self, key: &KeyUri, below: u32) -> Result<Replied<()>> {
        lifecycle::retire_versions(self, key, below).await
    }

    /// Schedules every live version for destruction; Cloud KMS destroys them after the key's
    /// destroyScheduledDuration, which the window must not exceed.
    async fn schedule_destroy(&self, key: &KeyUri, window: Duration) -> Result<Replied<()>> {
        lifecycle::schedule_destroy(self, key, window).await
    }

    /// Restores every version scheduled for destruction (Cloud KMS leaves them disabled).
    async fn cancel_destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        lifecycle::cancel_destroy(self, key).await
    }

    /// Cloud KMS destroys scheduled versions itself when their destroyTime comes, and offers
    /// no earlier destruction; so this checks that every version is scheduled or destroyed.
    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        lifecycle::destroy(self, key).await
    }

    /// An import-only crypto key with no version yet, for BYOK.
    async fn prepare_import(&self, spec: &KeySpec) -> Result<Replied<KeyUri>> {
        import::prepare_import(self, spec).await
    }

    async fn import_parameters(&self, spec: &ImportSpec) -> Result<Replied<ImportParams>> {
        import::import_parameters(self, spec).await
    }

    async fn import_key(
        &self,
        key: &KeyUri,
        wrapped: &WrappedKey,
        params: &ImportParams,
    ) -> Result<Replied<KeyVersionInfo>> {
        import::import_key(self, key, wrapped, params).await
    }
}
