//! [`Pkcs11Provider`]: the [`KeyProvider`] over one PKCS#11 token.

use crate::config::{Pkcs11Config, TokenSelector};
use crate::der;
use crate::errors::{
    OpError, OpenError, from_c_decrypt, is_rv, is_session_level, mechanism_refused,
};
use crate::mechanisms::{self, AES_GCM_IV_LEN, AES_GCM_TAG_LEN};
use crate::naming::VersionId;
use crate::oaep;
use crate::ops;
use crate::session_pool::{PoolError, PooledSession, SessionPool};
use crate::uri::ObjectUri;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use keygate_provider::{
    Algorithm, Capabilities, DataKey, DataKeySpec, KeyProvider, KeyPurpose, KeySpec, KeyUri,
    KeyVersionInfo, ListedKey, Listing, PageRequest, ProviderError, ProviderKey, ProviderKeyState,
    PublicKeyInfo, Replied, Result, SecretBytes, SignInput, VersionRef,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The largest data key one call hands out.
const MAX_DATA_KEY_LEN: usize = 1024;
const GCM_TAG_BITS: u64 = (AES_GCM_TAG_LEN * 8) as u64;

/// A key provider backed by one token of a PKCS#11 module.
pub struct Pkcs11Provider {
    name: Arc<str>,
    /// The token's label as the token reports it, used in every URI.
    token_label: String,
    pool: SessionPool,
    /// See [`Pkcs11Config::oaep_unpad_in_provider`].
    oaep_unpad_in_provider: bool,
    /// Serialises create and rotate, which pick the next version number by looking first.
    versioning: tokio::sync::Mutex<()>,
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
fn key_id_of(provider: &Pkcs11Provider, uri: &KeyUri) -> Result<String> {
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
    /// Loads the module, finds the token and logs in. `user_pin` is the resolved value of the
    /// config's `user_pin` reference; it is kept only inside the session pool (for re-login)
    /// and never logged. The blocking work runs on tokio's blocking pool.
    pub async fn connect(
        name: impl Into<String>,
        config: &Pkcs11Config,
        user_pin: SecretBytes,
    ) -> std::result::Result<Self, OpenError> {
        let name = name.into();
        let config = config.clone();
        let task_name = name.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(task_name, &config, user_pin))
            .await
            .map_err(|e| OpenError::Backend {
                provider: name,
                what: "opening the token".into(),
                reason: e.to_string(),
            })?
    }

    /// [`Pkcs11Provider::connect`] for callers outside an async runtime.
    pub fn open_blocking(
        name: impl Into<String>,
        config: &Pkcs11Config,
        user_pin: SecretBytes,
    ) -> std::result::Result<Self, OpenError> {
        let provider = name.into();
        if config.session_pool_size == 0 {
            return Err(OpenError::InvalidPoolSize { provider });
        }
        if !config.module.is_file() {
            return Err(OpenError::ModuleMissing {
                provider,
                path: config.module.clone(),
            });
        }
        let ctx = crate::module::load(&config.module).map_err(|e| OpenError::ModuleLoad {
            provider: provider.clone(),
            path: config.module.clone(),
            reason: e.to_string(),
        })?;
        let backend = |what: &str, e: CkError| OpenError::Backend {
            provider: provider.clone(),
            what: what.into(),
            reason: e.to_string(),
        };
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| backend("listing slots", e))?;
        let mut present = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| backend("reading token info", e))?;
            let label = info.label().trim_end().to_string();
            let matches = match &config.token {
                TokenSelector::Label(wanted) => &label == wanted,
                TokenSelector::SlotId(id) => slot.id() == *id,
            };
            if matches && chosen.is_none() {
                chosen = Some((slot, label.clone()));
            }
            present.push(format!("'{label}' in slot {}", slot.id()));
        }
        let Some((slot, token_label)) = chosen else {
            return Err(OpenError::TokenNotFound {
                provider,
                selector: config.token.to_string(),
                present: if present.is_empty() {
                    "none".into()
                } else {
                    present.join(", ")
                },
            });
        };
        let pool = SessionPool::open(ctx, slot, user_pin, config.session_pool_size, &provider)
            .map_err(|e| match e {
                PoolError::Login(
                    e @ CkError::Pkcs11(
                        RvError::PinIncorrect
                        | RvError::PinInvalid
                        | RvError::PinLenRange
                        | RvError::PinLocked
                        | RvError::PinExpired,
                        _,
                    ),
                ) => OpenError::PinRejected {
                    provider: provider.clone(),
                    reason: e.to_string(),
                },
                PoolError::Login(e) => backend("opening a session and logging in", e),
                PoolError::Thread(e) => OpenError::Backend {
                    provider: provider.clone(),
                    what: "starting the session threads".into(),
                    reason: e.to_string(),
                },
            })?;
        tracing::info!(provider = %provider, token = %token_label, slot = slot.id(), "PKCS#11 token opened");
        Ok(Self {
            name: provider.into(),
            token_label,
            pool,
            oaep_unpad_in_provider: config.oaep_unpad_in_provider,
            versioning: tokio::sync::Mutex::new(()),
        })
    }

    /// The label of the token this provider uses.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    fn key_uri(&self, key_id: &str) -> KeyUri {
        ObjectUri::key(&self.token_label, key_id).to_uri()
    }

    /// Runs `f` on a pooled session and maps its failure, naming `what` was attempted.
    async fn run<T, F>(&self, what: impl FnOnce() -> String, f: F) -> Result<T>
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
    fn resolve(&self, key: &VersionRef) -> Result<(String, VersionId)> {
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

    fn require(&self, key: &VersionRef, purpose: KeyPurpose, op: &str) -> Result<()> {
        if key.algorithm.purpose() != purpose {
            return Err(ProviderError::precondition(
                &self.name,
                format!(
                    "{op} with {}: a {} key is for {}, not {purpose}",
                    key.uri,
                    key.algorithm,
                    key.algorithm.purpose()
                ),
            ));
        }
        if !mechanisms::SUPPORTED.contains(&key.algorithm) {
            return Err(ProviderError::unsupported(
                &self.name,
                format!("algorithm {}", key.algorithm),
            ));
        }
        Ok(())
    }

    /// The digest to sign for `input`, checking a caller's digest length.
    fn digest(&self, key: &VersionRef, input: SignInput<'_>) -> Result<Vec<u8>> {
        let alg = mechanisms::digest_algorithm(key.algorithm);
        match input {
            SignInput::Message(m) => Ok(aws_lc_rs::digest::digest(alg, m).as_ref().to_vec()),
            SignInput::Digest(d) if d.len() == alg.output_len() => Ok(d.to_vec()),
            SignInput::Digest(d) => Err(ProviderError::invalid(
                &self.name,
                format!(
                    "{} signs a {}-byte digest; got {} bytes",
                    key.algorithm,
                    alg.output_len(),
                    d.len()
                ),
            )),
        }
    }

    async fn aes_seal(
        &self,
        key: &VersionRef,
        plaintext: SecretBytes,
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        let (key_id, id) = self.resolve(key)?;
        let aad = aad.to_vec();
        self.run(
            || format!("encrypt with {} version {}", key.uri, key.version),
            move |s| {
                s.with_object(&key_id, id, ObjectClass::SECRET_KEY, |s, handle| {
                    // A fresh IV per call from the token's RNG; it travels in the blob.
                    let mut iv = [0u8; AES_GCM_IV_LEN];
                    s.generate_random_slice(&mut iv)?;
                    let mut iv_param = iv;
                    let params = GcmParams::new(&mut iv_param, &aad, GCM_TAG_BITS.into())?;
                    let sealed =
                        s.encrypt(&Mechanism::AesGcm(params), handle, plaintext.expose())?;
                    let mut blob = Vec::with_capacity(AES_GCM_IV_LEN + sealed.len());
                    blob.extend_from_slice(&iv);
                    blob.extend_from_slice(&sealed);
                    Ok(blob)
                })
            },
        )
        .await
    }

    /// Public-half attributes of an asymmetric version.
    async fn public_parts(&self, key: &VersionRef) -> Result<(Vec<u8>, bool)> {
        let (key_id, id) = self.resolve(key)?;
        let algorithm = key.algorithm;
        self.run(
            || format!("read the public key of {} version {}", key.uri, key.version),
            move |s| {
                // Uncached: the usage flags read here change when the key is disabled.
                let handle = ops::version_object(s, &key_id, id, ObjectClass::PUBLIC_KEY)?;
                let usage = mechanisms::usage_attributes(algorithm, ObjectClass::PUBLIC_KEY);
                let attrs = s.get_attributes(handle, &usage)?;
                let enabled = usage
                    .iter()
                    .all(|k| ops::bool_of(&attrs, *k).unwrap_or(false));
                let spki = if let Some(oid) = mechanisms::curve_oid(algorithm) {
                    let point = ops::get_bytes(s, handle, AttributeType::EcPoint)?;
                    der::ec_spki(oid, &point).ok_or_else(|| {
                        OpError::Internal("the token returned a malformed CKA_EC_POINT".into())
                    })?
                } else {
                    let n = ops::get_bytes(s, handle, AttributeType::Modulus)?;
                    let e = ops::get_bytes(s, handle, AttributeType::PublicExponent)?;
                    der::rsa_spki(&n, &e)
                };
                Ok((spki, enabled))
            },
        )
        .await
    }

    /// C_Decrypt of one blob with the version's object: AES-GCM with its stored IV, or RSA-OAEP
    /// (on the token, or raw RSA there and the padding removed here).
    fn decrypt_blocking(
        s: &cryptoki::session::Session,
        handle: cryptoki::object::ObjectHandle,
        algorithm: Algorithm,
        blob: &[u8],
        aad: &[u8],
        unpad_here: bool,
    ) -> std::result::Result<Vec<u8>, OpError> {
        if algorithm == Algorithm::Aes256Gcm {
            let (iv, sealed) = blob.split_at(AES_GCM_IV_LEN);
            let mut iv = iv.to_vec();
            let params = GcmParams::new(&mut iv, aad, GCM_TAG_BITS.into())?;
            return Ok(s.decrypt(&Mechanism::AesGcm(params), handle, sealed)?);
        }
        if unpad_here {
            let em = Zeroizing::new(s.decrypt(&Mechanism::RsaX509, handle, blob)?);
            let k = algorithm.rsa_bits().unwrap_or(0) as usize / 8;
            return oaep::decode(&em, k).ok_or(OpError::AuthFailed);
        }
        match s.decrypt(&mechanisms::oaep_mechanism(), handle, blob) {
            Err(e) if mechanism_refused(&e) => Err(OpError::Unsupported(format!(
                "RSA-OAEP with SHA-256 on this token ({e}); set \
                 `oaep_unpad_in_provider = true` to remove the padding in keygate"
            ))),
            result => Ok(result?),
        }
    }

    fn describe_blocking(
        s: &cryptoki::session::Session,
        key_id: &str,
    ) -> std::result::Result<Option<(Algorithm, ProviderKeyState, Vec<KeyVersionInfo>)>, OpError>
    {
        let versions = ops::versions(s, key_id)?;
        let Some(last) = versions.last() else {
            return Ok(None);
        };
        let state = ops::enabled(s, last)?;
        let infos = versions
            .iter()
            .map(|f| KeyVersionInfo {
                number: f.id.version,
                provider_version: f.id.to_hex(),
            })
            .collect();
        Ok(Some((last.id.algorithm, state, infos)))
    }
}

/// Whether a decrypt failure is the ciphertext's fault. SoftHSM2 reports a GCM tag mismatch
/// as CKR_GENERAL_ERROR, so anything from C_Decrypt itself counts, except errors that say the
/// session or device is gone.
fn decrypt_failed(e: &OpError) -> bool {
    matches!(e, OpError::Ck(ck) if from_c_decrypt(ck) && !is_session_level(ck))
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
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        let algorithm = spec.algorithm;
        if !mechanisms::SUPPORTED.contains(&algorithm) {
            return Err(ProviderError::unsupported(
                &self.name,
                format!("algorithm {algorithm}"),
            ));
        }
        if spec.key_id.is_empty() {
            return Err(ProviderError::invalid(&self.name, "empty key id"));
        }
        let uri = self.key_uri(&spec.key_id);
        let _guard = self.versioning.lock().await;
        let key_id = spec.key_id.clone();
        let id = self
            .run(
                || format!("create {algorithm} key {uri}"),
                move |s| {
                    if !ops::key_objects(s, &key_id)?.is_empty() {
                        return Err(OpError::AlreadyExists(format!("key '{key_id}'")));
                    }
                    ops::generate(s, &key_id, algorithm, 1)
                },
            )
            .await?;
        tracing::info!(provider = %self.name, key = %uri, %algorithm, "PKCS#11 key created");
        Ok(Replied::local(ProviderKey {
            uri,
            algorithm,
            state: ProviderKeyState::Enabled,
            versions: vec![KeyVersionInfo {
                number: 1,
                provider_version: id.to_hex(),
            }],
        }))
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        let key_id = key_id_of(self, key)?;
        let found = self
            .run(
                || format!("describe {key}"),
                move |s| Self::describe_blocking(s, &key_id),
            )
            .await?;
        let (algorithm, state, versions) =
            found.ok_or_else(|| ProviderError::not_found(&self.name, format!("key {key}")))?;
        Ok(Replied::local(ProviderKey {
            uri: key.clone(),
            algorithm,
            state,
            versions,
        }))
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        let offset: usize = if page.page_token.is_empty() {
            0
        } else {
            page.page_token.parse().map_err(|_| {
                ProviderError::invalid(&self.name, format!("bad page token '{}'", page.page_token))
            })?
        };
        let size = if page.page_size == 0 {
            100
        } else {
            page.page_size as usize
        };
        let token = self.token_label.clone();
        let mut keys = self
            .run(
                || "list the token's keys".to_string(),
                move |s| list_blocking(s, &token),
            )
            .await?;
        keys.sort_by(|a, b| a.uri.as_str().cmp(b.uri.as_str()));
        let total = keys.len();
        let keys: Vec<ListedKey> = keys.into_iter().skip(offset).take(size).collect();
        let next = offset + keys.len();
        Ok(Replied::local(Listing {
            keys,
            next_page_token: if next < total {
                next.to_string()
            } else {
                String::new()
            },
        }))
    }

    async fn encrypt(
        &self,
        key: &VersionRef,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        self.require(key, KeyPurpose::Encrypt, "encrypt")?;
        if key.algorithm == Algorithm::Aes256Gcm {
            let pt = SecretBytes::copy_from(plaintext.expose());
            return self.aes_seal(key, pt, aad).await.map(Replied::local);
        }
        // RSA-OAEP: encryption needs only the public key, so it runs here with aws-lc-rs.
        if !aad.is_empty() {
            return Err(ProviderError::invalid(
                &self.name,
                format!("{} takes no associated data", key.algorithm),
            ));
        }
        let max = key.algorithm.max_plaintext().unwrap_or(0);
        if plaintext.len() > max {
            return Err(ProviderError::invalid(
                &self.name,
                format!(
                    "{} encrypts at most {max} bytes; got {}",
                    key.algorithm,
                    plaintext.len()
                ),
            ));
        }
        let (spki, enabled) = self.public_parts(key).await?;
        if !enabled {
            return Err(ProviderError::precondition(
                &self.name,
                format!("encrypt with {}: the key is disabled on the token", key.uri),
            ));
        }
        use aws_lc_rs::rsa::{
            OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey,
        };
        let internal = |what: &str| {
            ProviderError::internal(
                &self.name,
                format!("RSA-OAEP encrypt with {}: {what}", key.uri),
            )
        };
        let public = PublicEncryptingKey::from_der(&spki)
            .map_err(|_| internal("the token's public key was rejected"))?;
        let oaep =
            OaepPublicEncryptingKey::new(public).map_err(|_| internal("unusable public key"))?;
        let mut out = vec![0u8; oaep.ciphertext_size()];
        let len = oaep
            .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext.expose(), &mut out, None)
            .map_err(|_| internal("encryption failed"))?
            .len();
        out.truncate(len);
        Ok(Replied::local(out))
    }

    async fn decrypt(
        &self,
        key: &VersionRef,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        self.require(key, KeyPurpose::Encrypt, "decrypt")?;
        let (key_id, id) = self.resolve(key)?;
        let algorithm = key.algorithm;
        if algorithm == Algorithm::Aes256Gcm && blob.len() < AES_GCM_IV_LEN + AES_GCM_TAG_LEN {
            return Err(ProviderError::auth_failed(&self.name));
        }
        if algorithm != Algorithm::Aes256Gcm && !aad.is_empty() {
            return Err(ProviderError::invalid(
                &self.name,
                format!("{algorithm} takes no associated data"),
            ));
        }
        let blob = blob.to_vec();
        let aad = aad.to_vec();
        let unpad_here = self.oaep_unpad_in_provider;
        let result = self
            .pool
            .run(move |s| {
                let class = mechanisms::secret_class(algorithm);
                let out = s.with_object(&key_id, id, class, |s, handle| {
                    Self::decrypt_blocking(s, handle, algorithm, &blob, &aad, unpad_here)
                })?;
                Ok(SecretBytes::new(out))
            })
            .await;
        match result {
            Ok(pt) => Ok(Replied::local(pt)),
            Err(e) if decrypt_failed(&e) => Err(ProviderError::auth_failed(&self.name)),
            Err(e) => Err(e.into_provider(
                &self.name,
                &format!("decrypt with {} version {}", key.uri, key.version),
            )),
        }
    }

    async fn generate_data_key(
        &self,
        key: &VersionRef,
        spec: DataKeySpec,
        aad: &[u8],
    ) -> Result<Replied<DataKey>> {
        self.require(key, KeyPurpose::Encrypt, "generate a data key")?;
        if key.algorithm != Algorithm::Aes256Gcm {
            return Err(ProviderError::precondition(
                &self.name,
                format!(
                    "data keys are sealed under aes-256-gcm keys, not {}",
                    key.algorithm
                ),
            ));
        }
        if spec.len == 0 || spec.len > MAX_DATA_KEY_LEN {
            return Err(ProviderError::invalid(
                &self.name,
                format!(
                    "data key length must be 1..={MAX_DATA_KEY_LEN} bytes; got {}",
                    spec.len
                ),
            ));
        }
        let len = spec.len;
        let plaintext = self
            .run(
                || "draw random bytes from the token".to_string(),
                move |s| {
                    let mut bytes = SecretBytes::zeroed(len);
                    s.generate_random_slice(bytes.expose_mut())?;
                    Ok(bytes)
                },
            )
            .await?;
        let sealed = self
            .aes_seal(key, SecretBytes::copy_from(plaintext.expose()), aad)
            .await?;
        Ok(Replied::local(DataKey { plaintext, sealed }))
    }

    async fn sign(&self, key: &VersionRef, input: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        self.require(key, KeyPurpose::Sign, "sign")?;
        let digest = self.digest(key, input)?;
        let (key_id, id) = self.resolve(key)?;
        let algorithm = key.algorithm;
        let raw = self
            .run(
                || format!("sign with {} version {}", key.uri, key.version),
                move |s| {
                    s.with_object(&key_id, id, ObjectClass::PRIVATE_KEY, |s, handle| {
                        Ok(s.sign(&mechanisms::sign_mechanism(algorithm), handle, &digest)?)
                    })
                },
            )
            .await?;
        if mechanisms::curve_oid(algorithm).is_none() {
            return Ok(Replied::local(raw));
        }
        // The token gives raw r‖s; keygate's encoding for ECDSA is DER on every provider.
        der::ecdsa_raw_to_der(&raw)
            .map(Replied::local)
            .ok_or_else(|| {
                ProviderError::internal(
                    &self.name,
                    "the token returned a malformed ECDSA signature",
                )
            })
    }

    async fn verify(
        &self,
        key: &VersionRef,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<Replied<bool>> {
        self.require(key, KeyPurpose::Sign, "verify")?;
        let digest = self.digest(key, input)?;
        let (key_id, id) = self.resolve(key)?;
        let algorithm = key.algorithm;
        let signature = if mechanisms::curve_oid(algorithm).is_some() {
            let field = if algorithm == Algorithm::EcdsaP384 {
                48
            } else {
                32
            };
            match der::ecdsa_der_to_raw(signature, field) {
                Some(raw) => raw,
                None => return Ok(Replied::local(false)),
            }
        } else {
            signature.to_vec()
        };
        self.run(
            || format!("verify with {} version {}", key.uri, key.version),
            move |s| {
                s.with_object(&key_id, id, ObjectClass::PUBLIC_KEY, |s, handle| {
                    match s.verify(
                        &mechanisms::sign_mechanism(algorithm),
                        handle,
                        &digest,
                        &signature,
                    ) {
                        Ok(()) => Ok(true),
                        Err(e)
                            if is_rv(&e, RvError::SignatureInvalid)
                                || is_rv(&e, RvError::SignatureLenRange) =>
                        {
                            Ok(false)
                        }
                        Err(e) => Err(e.into()),
                    }
                })
            },
        )
        .await
        .map(Replied::local)
    }

    async fn public_key(&self, key: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        if key.algorithm.is_symmetric() {
            return Err(ProviderError::precondition(
                &self.name,
                format!("{} is a symmetric key: it has no public key", key.uri),
            ));
        }
        let (spki_der, _) = self.public_parts(key).await?;
        Ok(Replied::local(PublicKeyInfo { spki_der }))
    }

    async fn mac(&self, key: &VersionRef, message: &[u8]) -> Result<Replied<Vec<u8>>> {
        self.require(key, KeyPurpose::Mac, "mac")?;
        let (key_id, id) = self.resolve(key)?;
        let message = message.to_vec();
        self.run(
            || format!("mac with {} version {}", key.uri, key.version),
            move |s| {
                s.with_object(&key_id, id, ObjectClass::SECRET_KEY, |s, handle| {
                    Ok(s.sign(&Mechanism::Sha256Hmac, handle, &message)?)
                })
            },
        )
        .await
        .map(Replied::local)
    }

    async fn verify_mac(
        &self,
        key: &VersionRef,
        message: &[u8],
        tag: &[u8],
    ) -> Result<Replied<bool>> {
        // Recompute and compare in constant time here rather than trusting the module's
        // C_Verify to do so.
        let expected = self.mac(key, message).await?.value;
        let ok = aws_lc_rs::constant_time::verify_slices_are_equal(&expected, tag).is_ok();
        Ok(Replied::local(ok))
    }

    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        let key_id = key_id_of(self, key)?;
        let _guard = self.versioning.lock().await;
        let info = self
            .run(
                || format!("rotate {key}"),
                move |s| {
                    let versions = ops::versions(s, &key_id)?;
                    let last = versions
                        .last()
                        .ok_or_else(|| OpError::NotFound(format!("key '{key_id}'")))?;
                    let state = ops::enabled(s, last)?;
                    let next = last.id.version + 1;
                    let id = ops::generate(s, &key_id, last.id.algorithm, next)?;
                    if state == ProviderKeyState::Disabled {
                        // A new version of a disabled key starts disabled too.
                        let objects: Vec<_> = ops::key_objects(s, &key_id)?
                            .into_iter()
                            .filter(|o| o.id.version == next)
                            .collect();
                        ops::set_usage(s, &objects, false)?;
                    }
                    Ok(KeyVersionInfo {
                        number: next,
                        provider_version: id.to_hex(),
                    })
                },
            )
            .await?;
        tracing::info!(provider = %self.name, key = %key, version = info.number, "PKCS#11 key rotated");
        Ok(Replied::local(info))
    }

    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        let key_id = key_id_of(self, key)?;
        let verb = if enabled { "enable" } else { "disable" };
        self.run(
            || format!("{verb} {key} (C_SetAttributeValue on its usage flags)"),
            move |s| {
                let objects = ops::key_objects(s, &key_id)?;
                if objects.is_empty() {
                    return Err(OpError::NotFound(format!("key '{key_id}'")));
                }
                ops::set_usage(s, &objects, enabled)
            },
        )
        .await
        .map(Replied::local)
    }

    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        let key_id = key_id_of(self, key)?;
        let count = self
            .run(
                || format!("destroy {key}"),
                move |s| {
                    let objects = ops::key_objects(s, &key_id)?;
                    if objects.is_empty() {
                        return Err(OpError::NotFound(format!("key '{key_id}'")));
                    }
                    for object in &objects {
                        s.destroy_object(object.handle)?;
                    }
                    if !ops::key_objects(s, &key_id)?.is_empty() {
                        return Err(OpError::Internal(
                            "objects remain on the token after C_DestroyObject".into(),
                        ));
                    }
                    Ok(objects.len())
                },
            )
            .await;
        // Whatever happened, some objects may be gone: no session may keep their handles.
        self.pool.forget_handles();
        let count = count?;
        tracing::info!(provider = %self.name, key = %key, objects = count, "PKCS#11 key destroyed");
        Ok(Replied::local(()))
    }
}

/// Every private and secret key on the token: keygate's grouped per key, others one by one.
fn list_blocking(
    s: &cryptoki::session::Session,
    token: &str,
) -> std::result::Result<Vec<ListedKey>, OpError> {
    let mut keygate: BTreeMap<String, (Algorithm, u32, ProviderKeyState)> = BTreeMap::new();
    let mut foreign = Vec::new();
    for class in [ObjectClass::SECRET_KEY, ObjectClass::PRIVATE_KEY] {
        let handles = s.find_objects(&[Attribute::Token(true), Attribute::Class(class)])?;
        for handle in handles {
            let attrs = s.get_attributes(handle, &[AttributeType::Label, AttributeType::Id])?;
            let mut label = Vec::new();
            let mut id = Vec::new();
            for a in attrs {
                match a {
                    Attribute::Label(v) => label = v,
                    Attribute::Id(v) => id = v,
                    _ => {}
                }
            }
            let label = String::from_utf8_lossy(&label).into_owned();
            match VersionId::parse(&id).filter(|v| v.belongs_to(&label)) {
                Some(v) => {
                    let found = ops::Found {
                        handle,
                        class,
                        id: v,
                    };
                    let state = ops::enabled(s, &found)?;
                    let entry = keygate.entry(label).or_insert((v.algorithm, 0, state));
                    if v.version >= entry.1 {
                        *entry = (v.algorithm, v.version, state);
                    }
                }
                None => foreign.push(ListedKey {
                    uri: ObjectUri {
                        token: token.to_string(),
                        object: label,
                        id: Some(id),
                    }
                    .to_uri(),
                    // A foreign key's algorithm is not knowable from the token alone (RSA for
                    // signing or decryption, which hash…).
                    algorithm: None,
                    state: ProviderKeyState::Enabled,
                    keygate_id: None,
                }),
            }
        }
    }
    let mut keys: Vec<ListedKey> = keygate
        .into_iter()
        .map(|(key_id, (algorithm, _, state))| ListedKey {
            uri: ObjectUri::key(token, &key_id).to_uri(),
            algorithm: Some(algorithm),
            state,
            keygate_id: Some(key_id),
        })
        .collect();
    keys.extend(foreign);
    Ok(keys)
}
