//! [`AwsKmsProvider`]: the [`KeyProvider`] trait over one AWS KMS account and region.

use crate::algorithms::{self, MAX_KMS_INPUT};
use crate::arn;
use crate::config::AwsKmsConfig;
use crate::errors::{Attempt, from_sdk};
use crate::keys::{self, tag};
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::Tag;
use aws_smithy_runtime_api::http::Response;
use keygate_provider::{
    Algorithm, Capabilities, DataKey, DataKeySpec, KeyProvider, KeyPurpose, KeySpec, KeyUri,
    KeyVersionInfo, ListedKey, Listing, PageRequest, ProviderError, ProviderKey, PublicKeyInfo,
    Replied, Result, SecretBytes, SignInput, VersionRef,
};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

    pub(crate) fn sdk<E>(
        &self,
        op: &'static str,
        key: &str,
        err: SdkError<E, Response>,
    ) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        from_sdk(self.at(op, key), err)
    }

    pub(crate) fn missing(&self, op: &'static str, key: &str, field: &str) -> ProviderError {
        ProviderError::internal(
            &self.name,
            format!("{}: the reply has no {field}", self.at(op, key).what()),
        )
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
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        const OP: &str = "create key";
        let (kms_spec, usage) = algorithms::key_spec(spec.algorithm).ok_or_else(|| {
            ProviderError::unsupported(&self.name, format!("algorithm {}", spec.algorithm))
        })?;
        let days = keys::crypto_period_days(spec).to_string();
        let mut tags = vec![
            (tag::KEY_ID, spec.key_id.as_str()),
            (tag::NAME, spec.name.as_str()),
            (tag::ALGORITHM, spec.algorithm.as_str()),
            (tag::OWNER, spec.owner.as_str()),
            (tag::PURPOSE, spec.algorithm.purpose().as_str()),
            (tag::ENVIRONMENT, spec.environment.as_str()),
            (tag::CRYPTO_PERIOD_DAYS, days.as_str()),
        ];
        tags.extend(spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut request = self
            .client
            .create_key()
            .key_spec(kms_spec)
            .key_usage(usage)
            .description(keys::description(spec));
        for (k, v) in tags {
            let t = Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| ProviderError::invalid(&self.name, format!("tag {k}: {e}")))?;
            request = request.tags(t);
        }
        let out = request
            .send()
            .await
            .map_err(|e| self.sdk(OP, &spec.name, e))?;
        let request_id = out.request_id().map(str::to_string);
        let metadata = out
            .key_metadata
            .ok_or_else(|| self.missing(OP, &spec.name, "KeyMetadata"))?;
        let key_id = metadata.key_id().to_string();
        if let Some(a) = metadata.arn() {
            self.learn_account(a);
        }

        let alias = arn::alias_for(&spec.name);
        if let Err(e) = self
            .client
            .create_alias()
            .alias_name(&alias)
            .target_key_id(&key_id)
            .send()
            .await
        {
            let err = self.sdk("create alias", &alias, e);
            // Don't leave an unnamed key behind; KMS's shortest window applies.
            let _ = self
                .client
                .schedule_key_deletion()
                .key_id(&key_id)
                .pending_window_in_days(7)
                .send()
                .await;
            return Err(err);
        }
        if keys::rotates(&metadata) {
            self.client
                .enable_key_rotation()
                .key_id(&key_id)
                .rotation_period_in_days(keys::rotation_period_days(spec))
                .send()
                .await
                .map_err(|e| self.sdk("enable automatic rotation", &key_id, e))?;
        }
        let key = self.provider_key(OP, &metadata).await?;
        Ok(Replied::with_request_id(key, request_id))
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        const OP: &str = "describe";
        let reply = self.metadata(OP, key).await?;
        let described = self.provider_key(OP, &reply.value).await?;
        Ok(Replied::with_request_id(described, reply.request_id))
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        const OP: &str = "list keys";
        let limit = match page.page_size {
            0 => 100,
            n => n.min(1000) as i32,
        };
        let marker = (!page.page_token.is_empty()).then(|| page.page_token.clone());
        let out = self
            .client
            .list_keys()
            .limit(limit)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| self.sdk(OP, "", e))?;
        let request_id = out.request_id().map(str::to_string);
        let mut keys = Vec::new();
        for entry in out.keys() {
            let Some(id) = entry.key_arn().or(entry.key_id()) else {
                continue;
            };
            // ListKeys lists only this account's keys: a safe place to learn the account.
            self.learn_account(id);
            let uri = arn::uri(id);
            // A key deleted between ListKeys and DescribeKey is simply gone.
            let metadata = match self.metadata(OP, &uri).await {
                Ok(r) => r.value,
                Err(ProviderError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let tags = self.tags(OP, metadata.key_id()).await?;
            keys.push(ListedKey {
                uri: arn::uri(metadata.arn().unwrap_or(id)),
                algorithm: keys::algorithm(&metadata, &tags),
                state: keys::state(&metadata),
                keygate_id: keys::tag_value(&tags, tag::KEY_ID).map(str::to_string),
            });
        }
        let next_page_token = match out.next_marker {
            Some(m) if out.truncated => m,
            _ => String::new(),
        };
        Ok(Replied::with_request_id(
            Listing {
                keys,
                next_page_token,
            },
            request_id,
        ))
    }

    async fn encrypt(
        &self,
        v: &VersionRef,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        const OP: &str = "encrypt";
        self.require(v, KeyPurpose::Encrypt, OP)?;
        let limit = v.algorithm.max_plaintext().unwrap_or(MAX_KMS_INPUT);
        if plaintext.len() > limit {
            return Err(self.too_big(OP, &v.uri, plaintext.len(), limit));
        }
        let alg = algorithms::encryption(v.algorithm).ok_or_else(|| {
            ProviderError::unsupported(&self.name, format!("encrypt with {}", v.algorithm))
        })?;
        let mut request = self
            .client
            .encrypt()
            .key_id(self.key_id(&v.uri)?)
            .plaintext(Blob::new(plaintext.expose()))
            .encryption_algorithm(alg);
        if let Some(ctx) = self.context(v, aad, OP)? {
            request = request.encryption_context(AAD_CONTEXT_KEY, ctx);
        }
        let out = request
            .send()
            .await
            .map_err(|e| self.sdk(OP, v.uri.as_str(), e))?;
        let request_id = out.request_id().map(str::to_string);
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| self.missing(OP, v.uri.as_str(), "CiphertextBlob"))?;
        Ok(Replied::with_request_id(blob.into_inner(), request_id))
    }

    async fn decrypt(
        &self,
        v: &VersionRef,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        const OP: &str = "decrypt";
        self.require(v, KeyPurpose::Encrypt, OP)?;
        let alg = algorithms::encryption(v.algorithm).ok_or_else(|| {
            ProviderError::unsupported(&self.name, format!("decrypt with {}", v.algorithm))
        })?;
        // KeyId is sent so that a blob made under another key fails instead of decrypting.
        let mut request = self
            .client
            .decrypt()
            .key_id(self.key_id(&v.uri)?)
            .ciphertext_blob(Blob::new(blob))
            .encryption_algorithm(alg);
        if let Some(ctx) = self.context(v, aad, OP)? {
            request = request.encryption_context(AAD_CONTEXT_KEY, ctx);
        }
        let out = request
            .send()
            .await
            .map_err(|e| self.sdk(OP, v.uri.as_str(), e))?;
        let request_id = out.request_id().map(str::to_string);
        let plaintext = out
            .plaintext
            .ok_or_else(|| self.missing(OP, v.uri.as_str(), "Plaintext"))?;
        Ok(Replied::with_request_id(
            SecretBytes::new(plaintext.into_inner()),
            request_id,
        ))
    }

    async fn generate_data_key(
        &self,
        v: &VersionRef,
        spec: DataKeySpec,
        aad: &[u8],
    ) -> Result<Replied<DataKey>> {
        const OP: &str = "generate data key";
        self.require(v, KeyPurpose::Encrypt, OP)?;
        if v.algorithm != Algorithm::Aes256Gcm {
            return Err(ProviderError::unsupported(
                &self.name,
                format!(
                    "data keys under {} keys (AWS KMS makes them only under symmetric keys)",
                    v.algorithm
                ),
            ));
        }
        if !(1..=1024).contains(&spec.len) {
            return Err(ProviderError::invalid(
                &self.name,
                format!(
                    "{}: data keys are 1 to 1024 bytes in AWS KMS, asked for {}",
                    self.at(OP, v.uri.as_str()).what(),
                    spec.len
                ),
            ));
        }
        let mut request = self
            .client
            .generate_data_key()
            .key_id(self.key_id(&v.uri)?)
            .number_of_bytes(spec.len as i32);
        if let Some(ctx) = self.context(v, aad, OP)? {
            request = request.encryption_context(AAD_CONTEXT_KEY, ctx);
        }
        let out = request
            .send()
            .await
            .map_err(|e| self.sdk(OP, v.uri.as_str(), e))?;
        let request_id = out.request_id().map(str::to_string);
        let (Some(plaintext), Some(sealed)) = (out.plaintext, out.ciphertext_blob) else {
            return Err(self.missing(OP, v.uri.as_str(), "Plaintext or CiphertextBlob"));
        };
        Ok(Replied::with_request_id(
            DataKey {
                plaintext: SecretBytes::new(plaintext.into_inner()),
                sealed: sealed.into_inner(),
            },
            request_id,
        ))
    }

    async fn sign(&self, v: &VersionRef, input: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        const OP: &str = "sign";
        self.require(v, KeyPurpose::Sign, OP)?;
        let alg = algorithms::signing(v.algorithm).ok_or_else(|| {
            ProviderError::unsupported(&self.name, format!("sign with {}", v.algorithm))
        })?;
        let (message, kind) = self.sign_input(v, input, OP)?;
        let out = self
            .client
            .sign()
            .key_id(self.key_id(&v.uri)?)
            .message(Blob::new(message))
            .message_type(kind)
            .signing_algorithm(alg)
            .send()
            .await
            .map_err(|e| self.sdk(OP, v.uri.as_str(), e))?;
        let request_id = out.request_id().map(str::to_string);
        let signature = out
            .signature
            .ok_or_else(|| self.missing(OP, v.uri.as_str(), "Signature"))?;
        Ok(Replied::with_request_id(signature.into_inner(), request_id))
    }

    async fn verify(
        &self,
        v: &VersionRef,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<Replied<bool>> {
        const OP: &str = "verify";
        self.require(v, KeyPurpose::Sign, OP)?;
        let alg = algorithms::signing(v.algorithm).ok_or_else(|| {
            ProviderError::unsupported(&self.name, format!("verify with {}", v.algorithm))
        })?;
        let (message, kind) = self.sign_input(v, input, OP)?;
        let result = self
            .client
            .verify()
            .key_id(self.key_id(&v.uri)?)
            .message(Blob::new(message))
            .message_type(kind)
            .signature(Blob::new(signature))
            .signing_algorithm(alg)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Replied::with_request_id(
                out.signature_valid,
                out.request_id().map(str::to_string),
            )),
            // KMS answers a bad signature with an error; to keygate it is `false`.
            Err(e) if e.code() == Some("KMSInvalidSignatureException") => Ok(
                Replied::with_request_id(false, e.request_id().map(str::to_string)),
            ),
            Err(e) => Err(self.sdk(OP, v.uri.as_str(), e)),
        }
    }

    async fn public_key(&self, v: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        const OP: &str = "get public key";
        if v.algorithm.is_symmetric() {
            return Err(ProviderError::precondition(
                &self.name,
                format!(
                    "{}: {} keys have no public key",
                    self.at(OP, v.uri.as_str()).what(),
                    v.algorithm
                ),
            ));
        }
        let out = self
            .client
            .get_public_key()
            .key_id(self.key_id(&v.uri)?)
            .send()
            .await
            .map_err(|e| self.sdk(OP, v.uri.as_str(), e))?;
        let request_id = out.request_id().map(str::to_string);
        let spki = out
            .public_key
            .ok_or_else(|| self.missing(OP, v.uri.as_str(), "PublicKey"))?;
        Ok(Replied::with_request_id(
            PublicKeyInfo {
                spki_der: spki.into_inner(),
            },
            request_id,
        ))
    }

    async fn mac(&self, v: &VersionRef, message: &[u8]) -> Result<Replied<Vec<u8>>> {
        const OP: &str = "generate MAC";
        self.require(v, KeyPurpose::Mac, OP)?;
        if message.len() > MAX_KMS_INPUT {
            return Err(self.too_big(OP, &v.uri, message.len(), MAX_KMS_INPUT));
        }
        let alg = algorithms::mac(v.algorithm).ok_or_else(|| {
            ProviderError::unsupported(&self.name, format!("MAC with {}", v.algorithm))
        })?;
        let out = self
            .client
            .generate_mac()
            .key_id(self.key_id(&v.uri)?)
            .message(Blob::new(message))
            .mac_algorithm(alg)
            .send()
            .await
            .map_err(|e| self.sdk(OP, v.uri.as_str(), e))?;
        let request_id = out.request_id().map(str::to_string);
        let tag = out
            .mac
            .ok_or_else(|| self.missing(OP, v.uri.as_str(), "Mac"))?;
        Ok(Replied::with_request_id(tag.into_inner(), request_id))
    }

    async fn verify_mac(
        &self,
        v: &VersionRef,
        message: &[u8],
        tag: &[u8],
    ) -> Result<Replied<bool>> {
        const OP: &str = "verify MAC";
        self.require(v, KeyPurpose::Mac, OP)?;
        if message.len() > MAX_KMS_INPUT {
            return Err(self.too_big(OP, &v.uri, message.len(), MAX_KMS_INPUT));
        }
        let alg = algorithms::mac(v.algorithm).ok_or_else(|| {
            ProviderError::unsupported(&self.name, format!("MAC with {}", v.algorithm))
        })?;
        let result = self
            .client
            .verify_mac()
            .key_id(self.key_id(&v.uri)?)
            .message(Blob::new(message))
            .mac(Blob::new(tag))
            .mac_algorithm(alg)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Replied::with_request_id(
                out.mac_valid,
                out.request_id().map(str::to_string),
            )),
            // KMS answers a wrong tag with an error; to keygate it is `false`.
            Err(e) if e.code() == Some("KMSInvalidMacException") => Ok(Replied::with_request_id(
                false,
                e.request_id().map(str::to_string),
            )),
            Err(e) => Err(self.sdk(OP, v.uri.as_str(), e)),
        }
    }

    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        const OP: &str = "rotate";
        let (metadata, before) = self.rotation_count(OP, key).await?;
        if !keys::rotates(&metadata) {
            return Err(ProviderError::unsupported(
                &self.name,
                format!(
                    "rotating key {key}: AWS KMS rotates only symmetric encryption keys with KMS-made material (this one is {})",
                    metadata
                        .key_spec()
                        .map(|s| s.as_str())
                        .unwrap_or("of unknown spec")
                ),
            ));
        }
        let out = self
            .client
            .rotate_key_on_demand()
            .key_id(metadata.key_id())
            .send()
            .await
            .map_err(|e| self.sdk(OP, key.as_str(), e))?;
        let request_id = out.request_id().map(str::to_string);
        if !self.rotations_listed.load(Ordering::Relaxed) {
            let count = (before.len() as u32).to_string();
            let t = Tag::builder()
                .tag_key(tag::ROTATIONS)
                .tag_value(count)
                .build()
                .map_err(|e| ProviderError::internal(&self.name, format!("tag: {e}")))?;
            self.client
                .tag_resource()
                .key_id(metadata.key_id())
                .tags(t)
                .send()
                .await
                .map_err(|e| self.sdk("record rotation", key.as_str(), e))?;
        }
        // The rotation may take a moment to show in ListKeyRotations.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let versions = self.versions(OP, &metadata).await?;
            if versions.len() > before.len()
                && let Some(newest) = versions.last()
            {
                return Ok(Replied::with_request_id(newest.clone(), request_id));
            }
            if Instant::now() > deadline {
                return Err(ProviderError::internal(
                    &self.name,
                    format!(
                        "rotating key {key}: KMS accepted the rotation{} but ListKeyRotations does not show it yet; describe the key later",
                        request_id
                            .as_deref()
                            .map(|r| format!(" (request id {r})"))
                            .unwrap_or_default()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        let id = self.key_id(key)?;
        let request_id = if enabled {
            let out = self.client.enable_key().key_id(&id).send().await;
            out.map_err(|e| self.sdk("enable", key.as_str(), e))?
                .request_id()
                .map(str::to_string)
        } else {
            let out = self.client.disable_key().key_id(&id).send().await;
            out.map_err(|e| self.sdk("disable", key.as_str(), e))?
                .request_id()
                .map(str::to_string)
        };
        Ok(Replied::with_request_id((), request_id))
    }

    /// Starts KMS's own deletion window, which must be 7 to 30 whole days.
    async fn schedule_destroy(&self, key: &KeyUri, window: Duration) -> Result<Replied<()>> {
        const OP: &str = "schedule destruction";
        let secs = window.as_secs();
        let days = secs / 86_400;
        if !secs.is_multiple_of(86_400)
            || window.subsec_nanos() != 0
            || !DELETION_WINDOW_DAYS.contains(&days)
        {
            return Err(ProviderError::invalid(
                &self.name,
                format!(
                    "{}: AWS KMS's deletion window is 7 to 30 whole days, asked for {window:?}",
                    self.at(OP, key.as_str()).what()
                ),
            ));
        }
        let out = self
            .client
            .schedule_key_deletion()
            .key_id(self.key_id(key)?)
            .pending_window_in_days(days as i32)
            .send()
            .await
            .map_err(|e| self.sdk(OP, key.as_str(), e))?;
        Ok(Replied::with_request_id(
            (),
            out.request_id().map(str::to_string),
        ))
    }

    /// Cancels the deletion and re-enables the key (KMS leaves a cancelled key disabled).
    async fn cancel_destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        const OP: &str = "cancel destruction";
        let id = self.key_id(key)?;
        let out = self
            .client
            .cancel_key_deletion()
            .key_id(&id)
            .send()
            .await
            .map_err(|e| self.sdk(OP, key.as_str(), e))?;
        let request_id = out.request_id().map(str::to_string);
        self.client
            .enable_key()
            .key_id(&id)
            .send()
            .await
            .map_err(|e| self.sdk("re-enable after cancelled destruction", key.as_str(), e))?;
        Ok(Replied::with_request_id((), request_id))
    }

    /// KMS deletes the key itself when the window set by `schedule_destroy` ends, and offers no
    /// earlier deletion; so this only checks the key is pending deletion or already gone.
    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        const OP: &str = "destroy";
        match self.metadata(OP, key).await {
            Err(ProviderError::NotFound { .. }) => Ok(Replied::local(())),
            Err(e) => Err(e),
            Ok(r)
                if keys::state(&r.value)
                    == keygate_provider::ProviderKeyState::PendingDestruction =>
            {
                Ok(Replied::with_request_id((), r.request_id))
            }
            Ok(_) => Err(ProviderError::precondition(
                &self.name,
                format!(
                    "{}: the key is not scheduled for deletion; schedule it first (AWS KMS deletes keys only at the end of their window)",
                    self.at(OP, key.as_str()).what()
                ),
            )),
        }
    }
}
