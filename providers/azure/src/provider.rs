//! [`AzureKeyVaultProvider`]: the [`KeyProvider`] trait over one vault or Managed HSM. The
//! operations live by family in `lifecycle`, `listing`, `crypto` and `signing`.

use crate::config::AzureKeyVaultConfig;
use crate::{algorithms, crypto, import, lifecycle, listing, names, signing};
use azure_security_keyvault_keys::KeyClient;
use keygate_provider::{
    Capabilities, DataKey, DataKeySpec, ImportParams, ImportSpec, KeyProvider, KeySpec, KeyUri,
    KeyVersionInfo, Listing, PageRequest, ProviderKey, PublicKeyInfo, Replied, Result, SecretBytes,
    SignInput, VersionRef, WrappedKey,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// One Key Vault or Managed HSM.
pub struct AzureKeyVaultProvider {
    pub(crate) name: String,
    /// `host[:port]` of the vault, as key URIs carry it.
    pub(crate) host: String,
    pub(crate) managed_hsm: bool,
    /// HSM-protected key types (`RSA-HSM`, `EC-HSM`).
    pub(crate) hsm: bool,
    pub(crate) client: KeyClient,
    /// Imports `prepare_import` named and `import_key` has not done yet: the new key's
    /// tags, by Key Vault key name.
    pub(crate) prepared: Mutex<HashMap<String, HashMap<String, String>>>,
}

impl AzureKeyVaultProvider {
    /// Builds the instance `name` from `config`: resolves the credential's references and
    /// sets up the client; sends nothing to Key Vault.
    pub fn new(name: impl Into<String>, config: AzureKeyVaultConfig) -> Result<Self> {
        let name = name.into();
        let built = crate::client::build(&name, &config)?;
        Ok(Self {
            name,
            host: built.host,
            hsm: config.hsm || built.managed_hsm,
            managed_hsm: built.managed_hsm,
            client: built.client,
            prepared: Mutex::new(HashMap::new()),
        })
    }

    /// The SDK client, for callers that need a Key Vault call the trait does not cover.
    pub fn client(&self) -> &KeyClient {
        &self.client
    }

    /// Whether this instance is a Managed HSM (and so offers `aes-256-gcm`).
    pub fn is_managed_hsm(&self) -> bool {
        self.managed_hsm
    }

    /// The key URI of the Key Vault key `name` in this vault.
    pub fn key_uri(&self, name: &str) -> KeyUri {
        names::uri(&self.host, name)
    }

    pub(crate) fn key_name<'a>(&self, uri: &'a KeyUri) -> Result<&'a str> {
        names::key_name(&self.name, &self.host, uri)
    }
}

#[async_trait::async_trait]
impl KeyProvider for AzureKeyVaultProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        crate::KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            algorithms: algorithms::supported(self.managed_hsm),
            rotate: true,
            disable: true,
            destroy: true,
            list: true,
            sign_digest: true,
            // Every operation names the Key Vault version it uses.
            pins_version: true,
            // Key Vault signs digests: messages are hashed in keygate.
            digest_only: true,
            // Key transfer blobs (CKM_RSA_AES_KEY_WRAP); the vault must offer HSM keys.
            import: true,
            settings: false,
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        lifecycle::create_key(self, spec).await
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        lifecycle::describe(self, key).await
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

    async fn generate_data_key(
        &self,
        v: &VersionRef,
        spec: DataKeySpec,
        aad: &[u8],
    ) -> Result<Replied<DataKey>> {
        crypto::generate_data_key(self, v, spec, aad).await
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

    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        lifecycle::rotate(self, key).await
    }

    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        lifecycle::set_enabled(self, key, enabled).await
    }

    /// Disables the retired versions in Key Vault itself.
    async fn retire_versions(&self, key: &KeyUri, below: u32) -> Result<Replied<()>> {
        lifecycle::retire_versions(self, key, below).await
    }

    /// Deletes the key: Key Vault keeps it soft-deleted (recoverable) for the vault's
    /// retention, which must be at least `window`; keygate purges it when `window` ends.
    async fn schedule_destroy(&self, key: &KeyUri, window: Duration) -> Result<Replied<()>> {
        lifecycle::schedule_destroy(self, key, window).await
    }

    /// Recovers the soft-deleted key.
    async fn cancel_destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        lifecycle::cancel_destroy(self, key).await
    }

    /// Purges the soft-deleted key: its material is gone for good.
    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        lifecycle::destroy(self, key).await
    }

    /// Names the key an import will create (Key Vault's import is its creation).
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
