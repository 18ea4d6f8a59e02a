//! [`KeyProvider`] over Vault / OpenBao Transit. The operations live by family in `keys`
//! (reading and lifecycle), `listing`, `crypto` and `signing`.

use crate::algorithms::SUPPORTED;
use crate::auth::{self, AppRoleLogin};
use crate::client::{self, Answer, Reply, TokenCell, VaultHttp, WipedOnDrop};
use crate::config::{VaultConfig, VaultCredentials};
use crate::errors::Op;
use crate::{crypto, import, keys, listing, settings, signing};
use keygate_provider::{
    BatchItem, Capabilities, DataKey, DataKeySpec, ImportParams, ImportSpec, KeyProvider, KeySpec,
    KeyUri, KeyVersionInfo, Listing, OwnRotation, PageRequest, ProviderError, ProviderKey,
    PublicKeyInfo, Replied, Result, SecretBytes, SettingConflict, SignInput, VersionRef,
    WrappedKey,
};
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// URI scheme of Vault keys: `hashivault://MOUNT/keys/NAME`.
pub const SCHEME: &str = "hashivault";

/// A Vault / OpenBao Transit mount as a keygate provider.
pub struct VaultProvider {
    pub(crate) name: String,
    pub(crate) mount: String,
    pub(crate) http: Arc<VaultHttp>,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for VaultProvider {
    fn drop(&mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

impl VaultProvider {
    /// Builds the provider. With AppRole this logs in (so it fails fast on bad credentials);
    /// with a token it makes no request. Either way a background task then keeps the token
    /// renewed; it must be called inside a Tokio runtime.
    pub async fn connect(
        name: impl Into<String>,
        config: VaultConfig,
        credentials: VaultCredentials,
    ) -> Result<Self> {
        let name = name.into();
        client::check_address(&name, &config.address)?;
        let (token, approle, lease) = match credentials {
            VaultCredentials::Token(token) => (token, None, auth::Next::Lookup),
            VaultCredentials::AppRole { role_id, secret_id } => {
                let login = AppRoleLogin {
                    mount: config.approle_mount().to_string(),
                    role_id,
                    secret_id,
                };
                let lease = auth::approle_login(&name, &config, &login).await?;
                let next = auth::Next::Lease {
                    ttl: lease.ttl,
                    renewable: lease.renewable,
                };
                (lease.token, Some(login), next)
            }
        };
        let cell = TokenCell::new(&token).map_err(|e| ProviderError::invalid(&name, e))?;
        let http = Arc::new(VaultHttp::new(&name, &config, cell)?);
        let mount = config.mount.trim_matches('/').to_string();
        if config.audit_request_header {
            // In the background: building the provider makes no request to Vault.
            let (http, name) = (http.clone(), name.clone());
            tokio::spawn(async move { http.register_audit_header(&name).await });
        }
        let renewal = tokio::spawn(auth::maintain(
            name.clone(),
            config,
            http.clone(),
            approle,
            lease,
        ));
        Ok(Self {
            name,
            mount,
            http,
            renewal: Some(renewal),
        })
    }

    /// The URI of a Transit key in this provider's mount.
    pub fn uri_for(&self, vault_name: &str) -> KeyUri {
        KeyUri::new(format!("{SCHEME}://{}/keys/{vault_name}", self.mount))
    }

    /// The Transit key name inside a URI of this provider's mount.
    pub(crate) fn key_name<'u>(&self, uri: &'u KeyUri) -> Result<&'u str> {
        let rest = uri.strip_scheme(SCHEME).ok_or_else(|| {
            ProviderError::invalid(&self.name, format!("{uri} is not a {SCHEME}:// URI"))
        })?;
        let (mount, name) = rest.rsplit_once("/keys/").ok_or_else(|| {
            ProviderError::invalid(
                &self.name,
                format!("{uri} is not of the form {SCHEME}://MOUNT/keys/NAME"),
            )
        })?;
        if mount != self.mount {
            return Err(ProviderError::invalid(
                &self.name,
                format!(
                    "{uri} belongs to mount '{mount}'; this provider serves '{}'",
                    self.mount
                ),
            ));
        }
        // Only Transit's own name characters, so a URI cannot steer the request to another path.
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ProviderError::invalid(
                &self.name,
                format!("{uri} has no valid key name"),
            ));
        }
        Ok(name)
    }

    pub(crate) fn op<'a>(&'a self, name: &'static str, key: &'a KeyUri) -> Op<'a> {
        Op::new(&self.name, name, key.as_str())
    }

    /// One request to `MOUNT/tail`.
    pub(crate) async fn send(
        &self,
        op: &Op<'_>,
        method: Method,
        tail: &str,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let path = format!("{}/{tail}", self.mount);
        self.http.call(op, method, &path, body).await
    }

    /// A POST to `MOUNT/tail` with a JSON body.
    pub(crate) async fn post(&self, op: &Op<'_>, tail: &str, body: &Value) -> Result<Reply> {
        self.send(op, Method::POST, tail, Some(body)).await
    }

    /// A POST to `MOUNT/tail` with a serialized body, its answer read as `T` (see
    /// [`VaultHttp::call_typed`]).
    pub(crate) async fn post_typed<T: serde::de::DeserializeOwned>(
        &self,
        op: &Op<'_>,
        tail: &str,
        body: WipedOnDrop,
    ) -> Result<Answer<T>> {
        let path = format!("{}/{tail}", self.mount);
        self.http.call_typed(op, Method::POST, &path, body).await
    }

    /// [`VaultProvider::send`] for requests that generate key material (longer timeout).
    pub(crate) async fn send_keygen(
        &self,
        op: &Op<'_>,
        tail: &str,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let path = format!("{}/{tail}", self.mount);
        self.http.call_keygen(op, Method::POST, &path, body).await
    }

    /// The Transit version number an operation pins.
    pub(crate) fn version_of(&self, v: &VersionRef) -> Result<u32> {
        v.provider_version.parse::<u32>().map_err(|_| {
            ProviderError::invalid(
                &self.name,
                format!(
                    "{}: provider version '{}' is not a Transit version number",
                    v.uri, v.provider_version
                ),
            )
        })
    }
}

#[async_trait::async_trait]
impl KeyProvider for VaultProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "vault"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            algorithms: SUPPORTED.to_vec(),
            rotate: true,
            disable: true,
            destroy: true,
            list: true,
            sign_digest: true,
            pins_version: true,
            digest_only: false,
            import: true,
            settings: true,
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        keys::create_key(self, spec).await
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        let (reply, key) = self.read_key(key).await?;
        Ok(Replied::with_request_id(key, reply.request_id))
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        listing::list(self, page).await
    }

    async fn setting_conflicts(&self, key: &KeyUri) -> Result<Replied<Vec<SettingConflict>>> {
        settings::setting_conflicts(self, key).await
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

    fn batch_limit(&self) -> usize {
        crypto::BATCH_LIMIT
    }

    async fn encrypt_batch(
        &self,
        key: &VersionRef,
        items: &[BatchItem<'_>],
    ) -> Result<Replied<Vec<Result<Vec<u8>>>>> {
        crypto::encrypt_batch(self, key, items).await
    }

    async fn decrypt_batch(
        &self,
        key: &VersionRef,
        items: &[BatchItem<'_>],
    ) -> Result<Replied<Vec<Result<SecretBytes>>>> {
        crypto::decrypt_batch(self, key, items).await
    }

    async fn own_rotation(
        &self,
        key: &KeyUri,
        newest: &KeyVersionInfo,
    ) -> Result<Replied<OwnRotation>> {
        keys::own_rotation(self, key, newest).await
    }

    /// Disabling uses OpenBao's Transit soft-delete (`DELETE keys/NAME/soft-delete`), which the
    /// server enforces for every operation and reverses with `soft-delete-restore`. HashiCorp
    /// Vault has no such endpoint; there this returns `Unsupported` rather than pretend.
    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        keys::set_enabled(self, key, enabled).await
    }

    /// Sets Transit's `min_decryption_version`.
    async fn retire_versions(&self, key: &KeyUri, below: u32) -> Result<Replied<()>> {
        keys::retire_versions(self, key, below).await
    }

    /// Soft-deletes the key for the pending window, so nothing uses it meanwhile. Cancelling
    /// (the default `cancel_destroy`) leaves it disabled; the gateway re-enables it explicitly.
    /// On servers without soft-delete (HashiCorp Vault) nothing is done here, as the trait
    /// allows: the gateway keeps the window and refuses use of the key itself.
    async fn schedule_destroy(&self, key: &KeyUri, _window: Duration) -> Result<Replied<()>> {
        match keys::set_enabled(self, key, false).await {
            Err(ProviderError::Unsupported { .. }) => {
                tracing::info!(
                    provider = %self.name,
                    key = %key,
                    "no Transit soft-delete on this server; the gateway alone guards the pending window"
                );
                Ok(Replied::local(()))
            }
            other => other,
        }
    }

    /// Sets `deletion_allowed` and deletes the key with all its versions.
    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        keys::destroy(self, key).await
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
        import::import_key(self, key, wrapped, params).await
    }
}
