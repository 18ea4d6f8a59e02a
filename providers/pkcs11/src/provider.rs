//! [`Pkcs11Provider`]: the [`KeyProvider`] over one PKCS#11 token. Opening the token is in
//! `open`; the operations live by family in `keys`, `listing`, `crypto` and `signing`.

use crate::errors::OpError;
use crate::mechanisms;
use crate::naming::VersionId;
use crate::session_pool::{PooledSession, SessionPool};
use crate::uri::ObjectUri;
use crate::{crypto, keys, listing, signing};
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Capabilities, DataKey, DataKeySpec, ImportParams, KeyProvider, KeyPurpose, KeySpec, KeyUri,
    KeyVersionInfo, Listing, PageRequest, ProviderError, ProviderKey, PublicKeyInfo, Replied,
    Result, SecretBytes, SignInput, VersionRef, WrappedForImport, WrappedKey,
};
use std::sync::Arc;

/// A key provider backed by one token of a PKCS#11 module.
pub struct Pkcs11Provider {
    pub(crate) name: Arc<str>,
    /// The token's label as the token reports it, used in every URI.
    pub(crate) token_label: String,
    pub(crate) pool: SessionPool,
    /// See [`crate::Pkcs11Config::oaep_unpad_in_provider`].
    pub(crate) oaep_unpad_in_provider: bool,
    /// Serialises create and rotate, which pick the next version number by looking first.
    pub(crate) versioning: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("name", &self.name)
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}

/// Which key (by keygate id) a URI names on this token.
pub(crate) fn key_id_of(provider: &Pkcs11Provider, uri: &KeyUri) -> Result<String> {
    let parsed = ObjectUri::parse(uri).ok_or_else(|| {
        ProviderError::invalid(
            &provider.name,
            format!("'{uri}' is not a pkcs11: URI with token and object"),
        )
    })?;
    if parsed.token != provider.token_label {
        return Err(ProviderError::not_found(
            &provider.name,
            format!(
                "key {uri} (it names token '{}'; this provider serves token '{}')",
                parsed.token, provider.token_label
            ),
        ));
    }
    Ok(parsed.object)
}

impl Pkcs11Provider {
    /// The label of the token this provider uses.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    pub(crate) fn key_uri(&self, key_id: &str) -> KeyUri {
        ObjectUri::key(&self.token_label, key_id).to_uri()
    }

    /// Runs `f` on a pooled session and maps its failure, naming `what` was attempted.
    pub(crate) async fn run<T, F>(&self, what: impl FnOnce() -> String, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PooledSession) -> std::result::Result<T, OpError> + Send + 'static,
    {
        self.pool
            .run(f)
            .await
            .map_err(|e| e.into_provider(&self.name, &what()))
    }

    /// The key id and version a [`VersionRef`] names, checked against each other.
    pub(crate) fn resolve(&self, key: &VersionRef) -> Result<(String, VersionId)> {
        let key_id = key_id_of(self, &key.uri)?;
        let id = VersionId::parse_hex(&key.provider_version)
            .filter(|id| id.belongs_to(&key_id) && id.algorithm == key.algorithm)
            .ok_or_else(|| {
                ProviderError::invalid(
                    &self.name,
                    format!(
                        "provider version '{}' does not name a {} version of {}",
                        key.provider_version, key.algorithm, key.uri
                    ),
                )
            })?;
        Ok((key_id, id))
    }

    /// The kit's purpose guard, and an algorithm this token's mechanisms cover.
    pub(crate) fn require(&self, key: &VersionRef, purpose: KeyPurpose, op: Op) -> Result<()> {
        kit::require_purpose(&self.name, key, purpose, op)?;
        if !mechanisms::SUPPORTED.contains(&key.algorithm) {
            return Err(ProviderError::unsupported(
                &self.name,
                format!("algorithm {}", key.algorithm),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl KeyProvider for Pkcs11Provider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            algorithms: mechanisms::SUPPORTED.to_vec(),
            rotate: true,
            disable: true,
            destroy: true,
            list: true,
            sign_digest: true,
            pins_version: true,
            // CKM_ECDSA and CKM_RSA_PKCS_PSS sign digests; messages are hashed here first.
            digest_only: true,
            import: false,
            settings: false,
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        keys::create_key(self, spec).await
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        keys::describe(self, key).await
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        listing::list(self, page).await
    }

    async fn encrypt(
        &self,
        key: &VersionRef,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        crypto::encrypt(self, key, plaintext, aad).await
    }

    async fn decrypt(
        &self,
        key: &VersionRef,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        crypto::decrypt(self, key, blob, aad).await
    }

    async fn generate_data_key(
        &self,
        key: &VersionRef,
        spec: DataKeySpec,
        aad: &[u8],
    ) -> Result<Replied<DataKey>> {
        crypto::generate_data_key(self, key, spec, aad).await
    }

    async fn sign(&self, key: &VersionRef, input: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        signing::sign(self, key, input).await
    }

    async fn verify(
        &self,
        key: &VersionRef,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<Replied<bool>> {
        signing::verify(self, key, input, signature).await
    }

    async fn public_key(&self, key: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        signing::public_key(self, key).await
    }

    async fn mac(&self, key: &VersionRef, message: &[u8]) -> Result<Replied<Vec<u8>>> {
        signing::mac(self, key, message).await
    }

    async fn verify_mac(
        &self,
        key: &VersionRef,
        message: &[u8],
        tag: &[u8],
    ) -> Result<Replied<bool>> {
        signing::verify_mac(self, key, message, tag).await
    }

    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        keys::rotate(self, key).await
    }

    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        keys::set_enabled(self, key, enabled).await
    }

    async fn retire_versions(&self, key: &KeyUri, below: u32) -> Result<Replied<()>> {
        keys::retire_versions(self, key, below).await
    }

    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        keys::destroy(self, key).await
    }

    async fn create_wrappable_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        keys::create_wrappable_key(self, spec).await
    }

    async fn wrap_for_import(
        &self,
        key: &VersionRef,
        params: &ImportParams,
    ) -> Result<Replied<WrappedForImport>> {
        let (key_id, id) = self.resolve(key)?;
        let wrapping = params.wrapping;
        let spki = params.wrapping_key_spki_der.clone();
        let (blob, ephemeral_left_source) = self
            .run(
                || format!("wrap {} with {wrapping} for import", key.uri),
                move |s| crate::wrap::wrap(s, &key_id, id, wrapping, &spki),
            )
            .await?;
        Ok(Replied::local(WrappedForImport {
            wrapped: WrappedKey::new(blob),
            ephemeral_left_source,
        }))
    }
}
