use crate::{
    BatchItem, Capabilities, DataKey, DataKeySpec, ImportOptions, ImportParams, ImportSpec,
    KeySpec, KeyUri, KeyVersionInfo, Listing, MasterKeyRotation, NeededKey, OwnRotation,
    PageRequest, ProviderError, ProviderKey, PublicKeyInfo, Replied, Result, SecretBytes,
    SettingConflict, SignInput, VersionRef, WrappedForImport, WrappedKey,
};
use std::time::Duration;

/// One key backend. Every method is one backend round trip (or a few); the gateway adds policy,
/// lifecycle rules and audit around it.
///
/// Operations a backend lacks keep the default body, which returns
/// [`ProviderError::Unsupported`] naming the instance and the operation.
#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync {
    /// The instance name from configuration (`local`, `aws-prod`, …); errors carry it.
    fn name(&self) -> &str;

    /// The backend kind (`local`, `aws-kms`, `vault`, `pkcs11`, `gcp-kms`, `azure-keyvault`).
    fn kind(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>>;

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>>;

    async fn list(&self, _page: &PageRequest) -> Result<Replied<Listing>> {
        Err(ProviderError::unsupported(self.name(), "listing keys"))
    }

    /// Seals `plaintext` under the version; returns the provider's blob, which the gateway
    /// wraps into its self-describing ciphertext.
    async fn encrypt(
        &self,
        _key: &VersionRef,
        _plaintext: &SecretBytes,
        _aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        Err(ProviderError::unsupported(self.name(), "encrypt"))
    }

    async fn decrypt(
        &self,
        _key: &VersionRef,
        _blob: &[u8],
        _aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        Err(ProviderError::unsupported(self.name(), "decrypt"))
    }

    /// A fresh data key, sealed under the version (`aad` binds it as for
    /// [`KeyProvider::encrypt`]). By default: random bytes from the system RNG, sealed with
    /// [`KeyProvider::encrypt`] (see [`crate::kit::generate_data_key`]); backends with a data
    /// key call of their own override it.
    async fn generate_data_key(
        &self,
        key: &VersionRef,
        spec: DataKeySpec,
        aad: &[u8],
    ) -> Result<Replied<DataKey>> {
        crate::kit::generate_data_key(self, key, spec, aad).await
    }

    /// How many items one [`KeyProvider::encrypt_batch`] or [`KeyProvider::decrypt_batch`]
    /// request may carry; 0 (the default): the backend has no batch request, and the gateway
    /// calls [`KeyProvider::encrypt`] / [`KeyProvider::decrypt`] per item.
    fn batch_limit(&self) -> usize {
        0
    }

    /// Encrypts every item under one version in one backend request (Vault Transit's
    /// `batch_input`), each item with its own result, in order. Only for backends whose
    /// [`KeyProvider::batch_limit`] is not 0, with at most that many items.
    async fn encrypt_batch(
        &self,
        _key: &VersionRef,
        _items: &[BatchItem<'_>],
    ) -> Result<Replied<Vec<Result<Vec<u8>>>>> {
        Err(ProviderError::unsupported(self.name(), "batch encryption"))
    }

    /// Decrypts every item (blobs of one version) in one backend request; as
    /// [`KeyProvider::encrypt_batch`].
    async fn decrypt_batch(
        &self,
        _key: &VersionRef,
        _items: &[BatchItem<'_>],
    ) -> Result<Replied<Vec<Result<SecretBytes>>>> {
        Err(ProviderError::unsupported(self.name(), "batch decryption"))
    }

    /// Signature encodings are the same on every provider: ECDSA as DER (X9.62 `Ecdsa-Sig-Value`),
    /// RSA-PSS with salt length equal to the digest length, Ed25519 as 64 raw bytes.
    async fn sign(&self, _key: &VersionRef, _input: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        Err(ProviderError::unsupported(self.name(), "sign"))
    }

    async fn verify(
        &self,
        _key: &VersionRef,
        _input: SignInput<'_>,
        _signature: &[u8],
    ) -> Result<Replied<bool>> {
        Err(ProviderError::unsupported(self.name(), "verify"))
    }

    async fn public_key(&self, _key: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        Err(ProviderError::unsupported(self.name(), "get public key"))
    }

    async fn mac(&self, _key: &VersionRef, _message: &[u8]) -> Result<Replied<Vec<u8>>> {
        Err(ProviderError::unsupported(self.name(), "generate MAC"))
    }

    async fn verify_mac(
        &self,
        _key: &VersionRef,
        _message: &[u8],
        _tag: &[u8],
    ) -> Result<Replied<bool>> {
        Err(ProviderError::unsupported(self.name(), "verify MAC"))
    }

    /// Adds a version and makes it primary.
    async fn rotate(&self, _key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        Err(ProviderError::unsupported(self.name(), "rotation"))
    }

    /// Whether the backend rotates this key by itself (automatic rotation it was given at
    /// creation from the crypto-period) and, if so, the version it made since `newest`
    /// (keygate's newest version of the key). The gateway adopts such a version instead of
    /// rotating again, so the backend and keygate never both rotate one key. Backends without
    /// automatic rotation keep the default, [`OwnRotation::Never`], and make no request.
    async fn own_rotation(
        &self,
        _key: &KeyUri,
        _newest: &KeyVersionInfo,
    ) -> Result<Replied<OwnRotation>> {
        Ok(Replied::local(OwnRotation::Never))
    }

    async fn set_enabled(&self, _key: &KeyUri, _enabled: bool) -> Result<Replied<()>> {
        Err(ProviderError::unsupported(
            self.name(),
            "enabling or disabling keys",
        ))
    }

    /// Stops the versions below `below` decrypting and verifying on the backend itself (Vault
    /// Transit's `min_decryption_version`). Idempotent: setting the floor it already has
    /// succeeds. Backends without the notion answer Unsupported.
    async fn retire_versions(&self, _key: &KeyUri, _below: u32) -> Result<Replied<()>> {
        Err(ProviderError::unsupported(
            self.name(),
            "retiring key versions",
        ))
    }

    /// Tells the backend destruction is pending. Backends with their own deletion window (AWS,
    /// Azure, GCP) start it here; others need do nothing, since the gateway keeps the window and
    /// calls [`KeyProvider::destroy`] when it ends.
    async fn schedule_destroy(&self, _key: &KeyUri, _window: Duration) -> Result<Replied<()>> {
        Ok(Replied::local(()))
    }

    /// Ends a pending destruction and leaves the key disabled in the backend (using it again
    /// is a second, deliberate step). Idempotent: a key that is not pending destruction is
    /// left as it is and the call succeeds, so a retry after a partial failure completes.
    async fn cancel_destroy(&self, _key: &KeyUri) -> Result<Replied<()>> {
        Ok(Replied::local(()))
    }

    /// Destroys the key material for good, once the pending window has ended.
    async fn destroy(&self, _key: &KeyUri) -> Result<Replied<()>> {
        Err(ProviderError::unsupported(self.name(), "destruction"))
    }

    /// What [`KeyProvider::destroy`] does to the material, in words for the destruction record
    /// (for example a cryptographic erasure). `None`: nothing beyond "destroyed".
    fn destruction_method(&self) -> Option<&'static str> {
        None
    }

    /// Keys of other provider instances this one cannot work without (the local provider's
    /// root-key wrapper): the gateway refuses to destroy, disable or retire them.
    fn keys_it_needs(&self) -> Vec<NeededKey> {
        Vec::new()
    }

    /// Replaces the master key the backend keeps its own keys under and rewraps them all, as
    /// one atomic change. Only backends whose keys keygate itself wraps (the local provider)
    /// have one; the others answer Unsupported (a failed precondition).
    async fn rotate_master_key(&self) -> Result<Replied<MasterKeyRotation>> {
        Err(ProviderError::unsupported(
            self.name(),
            "master-key rotation (keygate holds no master key for this backend: its keys are wrapped by the backend itself)",
        ))
    }

    /// The key's backend settings that contradict keygate's (see [`SettingConflict`]); empty
    /// when none does. For posture scans, one key at a time: only backends that read them in
    /// a request or two implement it ([`crate::Capabilities::settings`]).
    async fn setting_conflicts(&self, _key: &KeyUri) -> Result<Replied<Vec<SettingConflict>>> {
        Err(ProviderError::unsupported(
            self.name(),
            "reading key settings",
        ))
    }

    /// A wrapping key (and token) for importing material into `spec.key` (BYOK).
    async fn import_parameters(&self, _spec: &ImportSpec) -> Result<Replied<ImportParams>> {
        Err(ProviderError::unsupported(self.name(), "key import"))
    }

    /// Imports material wrapped under `params` as a new version of `key`.
    async fn import_key(
        &self,
        _key: &KeyUri,
        _wrapped: &WrappedKey,
        _params: &ImportParams,
    ) -> Result<Replied<KeyVersionInfo>> {
        Err(ProviderError::unsupported(self.name(), "key import"))
    }

    /// Imports material wrapped under `params` into `key` as `options` say: with an expiry,
    /// or again (the same material into the version that held it). A backend without either
    /// takes only plain options, which is [`KeyProvider::import_key`].
    async fn import_key_with(
        &self,
        key: &KeyUri,
        wrapped: &WrappedKey,
        params: &ImportParams,
        options: &ImportOptions,
    ) -> Result<Replied<KeyVersionInfo>> {
        if options.reimport_version.is_some() {
            return Err(ProviderError::unsupported(
                self.name(),
                "re-importing key material",
            ));
        }
        if options.material_expires_at.is_some() {
            return Err(ProviderError::unsupported(
                self.name(),
                "imported key material that expires",
            ));
        }
        self.import_key(key, wrapped, params).await
    }

    /// Names (and, where the backend needs one first, creates) the key that will receive
    /// imported material for `spec` (AWS: an EXTERNAL-origin key; Vault: the name the import
    /// creates). Nothing usable exists until [`KeyProvider::import_key`] succeeds.
    async fn prepare_import(&self, _spec: &KeySpec) -> Result<Replied<KeyUri>> {
        Err(ProviderError::unsupported(self.name(), "key import"))
    }

    /// Creates a key that can leave the backend only wrapped for import elsewhere (BYOK
    /// source): sensitive, extractable under wrap alone.
    async fn create_wrappable_key(&self, _spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        Err(ProviderError::unsupported(
            self.name(),
            "keys wrappable for import (BYOK source)",
        ))
    }

    /// Wraps the version's material under a target's import parameters, inside the backend.
    async fn wrap_for_import(
        &self,
        _key: &VersionRef,
        _params: &ImportParams,
    ) -> Result<Replied<WrappedForImport>> {
        Err(ProviderError::unsupported(
            self.name(),
            "wrapping keys for import (BYOK source)",
        ))
    }
}
