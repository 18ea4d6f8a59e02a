//! [`AwsKmsProvider`]: the [`KeyProvider`] trait over one AWS KMS account and region. The
//! operations live by family in `lifecycle`, `listing`, `crypto` and `signing`.

use crate::arn;
use crate::config::AwsKmsConfig;
use crate::errors::Attempt;
use crate::{algorithms, crypto, import, lifecycle, listing, settings, signing};
use aws_sdk_kms::Client;
use keygate_provider::{
    Capabilities, DataKey, DataKeySpec, ImportOptions, ImportParams, ImportSpec, KeyProvider,
    KeySpec, KeyUri, KeyVersionInfo, Listing, OwnRotation, PageRequest, ProviderKey, PublicKeyInfo,
    Replied, Result, SecretBytes, SettingConflict, SignInput, VersionRef, WrappedKey,
};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The encryption-context entry that carries keygate's associated data. KMS binds the context
/// to the ciphertext like GCM AAD, but it is a string map, so the bytes travel as base64.
pub const AAD_CONTEXT_KEY: &str = "keygate:aad";

/// KMS's deletion window, in days.
pub const DELETION_WINDOW_DAYS: std::ops::RangeInclusive<u64> = 7..=30;

/// One AWS KMS account and region.
pub struct AwsKmsProvider {
    pub(crate) name: String,
    region: String,
    /// From the config, or learned from the first key this account creates or lists (never
    /// from a describe, which may name another account's key).
    account: OnceLock<String>,
    /// Whether the endpoint answers ListKeyRotations (LocalStack 4.10 does not).
    pub(crate) rotations_listed: AtomicBool,
    pub(crate) client: Client,
}

impl AwsKmsProvider {
    /// Builds the instance `name` from `config`. Loads credentials as configured (the standard
    /// chain may consult the environment, profile files and instance metadata); sends nothing
    /// to KMS.
    pub async fn new(name: impl Into<String>, config: AwsKmsConfig) -> Result<Self> {
        let name = name.into();
        let client = crate::client::build(&name, &config).await?;
        let account = OnceLock::new();
        if let Some(a) = &config.account_id {
            let _ = account.set(a.clone());
        }
        Ok(Self {
            name,
            region: config.region,
            account,
            rotations_listed: AtomicBool::new(true),
            client,
        })
    }

    /// The SDK client, for callers that need a KMS call the trait does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn at<'a>(&'a self, op: &'static str, key: &'a str) -> Attempt<'a> {
        Attempt {
            provider: &self.name,
            op,
            key,
        }
    }

    pub(crate) fn key_id(&self, uri: &KeyUri) -> Result<String> {
        arn::key_id(
            &self.name,
            uri,
            &self.region,
            self.account.get().map(String::as_str),
        )
    }

    pub(crate) fn learn_account(&self, arn: &str) {
        if let Some(a) = arn::account_of(arn) {
            let _ = self.account.set(a.to_string());
        }
    }
}

#[async_trait::async_trait]
impl KeyProvider for AwsKmsProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "aws-kms"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            algorithms: algorithms::SUPPORTED.to_vec(),
            // Symmetric encryption keys only; rotate() says so for the others.
            rotate: true,
            disable: true,
            destroy: true,
            list: true,
            sign_digest: true,
            // KMS always uses a key's newest material; its blobs name their own.
            pins_version: false,
            digest_only: false,
            import: true,
            settings: true,
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        lifecycle::create_key(self, spec).await
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        const OP: &str = "describe";
        let reply = self.metadata(OP, key).await?;
        let described = self.provider_key(OP, &reply.value).await?;
        Ok(Replied::with_request_id(described, reply.request_id))
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        listing::list(self, page).await
    }

    async fn setting_conflicts(&self, key: &KeyUri) -> Result<Replied<Vec<SettingConflict>>> {
        settings::setting_conflicts(self, key).await
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

    async fn own_rotation(
        &self,
        key: &KeyUri,
        newest: &KeyVersionInfo,
    ) -> Result<Replied<OwnRotation>> {
        lifecycle::own_rotation(self, key, newest).await
    }

    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        lifecycle::set_enabled(self, key, enabled).await
    }

    /// Starts KMS's own deletion window, which must be 7 to 30 whole days.
    async fn schedule_destroy(&self, key: &KeyUri, window: Duration) -> Result<Replied<()>> {
        lifecycle::schedule_destroy(self, key, window).await
    }

    /// Cancels the deletion and re-enables the key (KMS leaves a cancelled key disabled).
    async fn cancel_destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        lifecycle::cancel_destroy(self, key).await
    }

    /// KMS deletes the key itself when the window set by `schedule_destroy` ends, and offers no
    /// earlier deletion; so this only checks the key is pending deletion or already gone.
    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        lifecycle::destroy(self, key).await
    }

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
        import::import_key(self, key, wrapped, params, &ImportOptions::default()).await
    }

    async fn import_key_with(
        &self,
        key: &KeyUri,
        wrapped: &WrappedKey,
        params: &ImportParams,
        options: &ImportOptions,
    ) -> Result<Replied<KeyVersionInfo>> {
        import::import_key(self, key, wrapped, params, options).await
    }
}
