//! The `KeyProvider` implementation over the store and the loaded keys.

use crate::envelope::{EnvelopeError, RootWrapper};
use crate::keyring::Keyring;
use crate::master_key::MasterKey;
use crate::material::{self, LoadedKey, MaterialError};
use crate::sealing::{self, SealingError};
use crate::store::{KeyFile, Store, VersionFile};
use crate::{MasterKeySource, SCHEME};
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, Capabilities, KeyProvider, KeyPurpose, KeySpec, KeyUri, KeyVersionInfo, ListedKey,
    Listing, MasterKeyRotation, NeededKey, PageRequest, ProviderError, ProviderKey,
    ProviderKeyState, PublicKeyInfo, Replied, Result, SecretBytes, SignInput, VersionRef,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A key as held in memory: its file (for rewriting) and each version loaded for use.
struct Entry {
    file: KeyFile,
    versions: Vec<Arc<LoadedKey>>,
}

pub struct LocalProvider {
    name: String,
    dir: PathBuf,
    dev_mode: bool,
    store: Store,
    keyring: Keyring,
    /// Read on every operation; never held across an await.
    keys: RwLock<HashMap<String, Arc<Entry>>>,
    /// The master key, needed only to wrap and unwrap DEKs; its lock serialises changes
    /// (create, rotate, enable, destroy, master-key rotation) so files and map stay in step.
    changes: tokio::sync::Mutex<MasterKey>,
    /// The key in another provider that seals the root key (the envelope pattern), if any.
    root_wrapper: Option<RootWrapper>,
    /// The key that sealed the root key in force (the configured one, or the one before it
    /// until a rotation moves the root key). Never held across an await.
    root_sealed_by: RwLock<Option<NeededKey>>,
}

/// What a destruction does to a local key, for the destruction record.
pub const ERASURE_STATEMENT: &str = "cryptographic erasure: every version's data-encryption key \
     was overwritten in the keyring, fsynced and removed (directory fsynced), and the key file \
     likewise; the sealed material in any copy of the key file opens under nothing. A backup \
     of the keyring and master.json from before the destruction, with the passphrase, would \
     still hold the DEKs";

/// [`ERASURE_STATEMENT`]'s counterpart for a store whose root key another provider wraps.
pub const ERASURE_STATEMENT_ENVELOPE: &str = "cryptographic erasure: every version's \
     data-encryption key was overwritten in the keyring, fsynced and removed (directory \
     fsynced), and the key file likewise; the sealed material in any copy of the key file opens \
     under nothing. The store's root key is sealed by a key in another provider: a backup of \
     the data directory from before the destruction opens only while the key that sealed its \
     root key is recoverable there; moving the master key to a new key (rotate-master-key) \
     and destroying the old key in its provider, its backups and soft-delete included, ends it";

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn uri_for(key_id: &str) -> KeyUri {
    KeyUri::new(format!("{SCHEME}://{key_id}"))
}

impl LocalProvider {
    /// Opens the store in `dir` (created if missing) and loads every key. Versions from before
    /// the keyring are migrated here: each gets a DEK of its own and is resealed under it.
    pub fn open(
        name: &str,
        dir: &Path,
        source: MasterKeySource,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut master = MasterKey::open(dir, source)?;
        let keyring = Keyring::open(dir)?;
        let store = Store::open(dir)?;
        let mut keys = HashMap::new();
        for mut file in store.load_all()? {
            match sealing::migrate(&master, &keyring, &mut file) {
                Ok(true) => store.write(&file)?,
                Ok(false) => {}
                Err(e @ SealingError::LegacyAfterMigration { .. }) => {
                    // Only an old copy can hold such a file once the store was migrated; a
                    // key destroyed since must not come back through it.
                    tracing::warn!(provider = name, error = %e, "a key file is not loaded");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let versions = match sealing::load_versions(&master, &keyring, &file) {
                Ok(versions) => versions,
                Err(SealingError::Keyring(crate::keyring::KeyringError::Missing {
                    key_id,
                    version,
                })) => {
                    // A key file without its DEKs: destroyed (the erasure happened, the file
                    // came back from a copy or outlived a crash). Nothing can open it.
                    tracing::warn!(
                        provider = name,
                        key_id,
                        version,
                        "a key file whose DEKs were erased is not loaded: the key was destroyed"
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            keys.insert(file.key_id.clone(), Arc::new(Entry { file, versions }));
        }
        if !master.legacy_closed() {
            // Every version now has a DEK of its own.
            master.close_legacy(dir)?;
        }
        keyring.sweep(&master)?;
        Ok(Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            dev_mode: master.dev_mode,
            store,
            keyring,
            keys: RwLock::new(keys),
            changes: tokio::sync::Mutex::new(master),
            root_wrapper: None,
            root_sealed_by: RwLock::new(None),
        })
    }

    /// The provider whose root key `wrapper` sealed (opened with
    /// [`MasterKeySource::Envelope`]): master-key rotations seal their new root key with it.
    pub fn with_root_wrapper(mut self, wrapper: RootWrapper) -> Self {
        self.root_wrapper = Some(wrapper);
        self.root_sealed_by = RwLock::new(self.changes.get_mut().sealed_by());
        self
    }

    fn note_sealed_by(&self, master: &MasterKey) {
        if let Ok(mut sealed_by) = self.root_sealed_by.write() {
            *sealed_by = master.sealed_by();
        }
    }

    /// True when the master key was generated for dev mode (stored in the clear).
    pub fn is_dev_mode(&self) -> bool {
        self.dev_mode
    }

    fn key_id<'a>(&self, uri: &'a KeyUri) -> Result<&'a str> {
        uri.strip_scheme(SCHEME)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ProviderError::invalid(&self.name, format!("'{uri}' is not a {SCHEME}:// key URI"))
            })
    }

    fn entry(&self, uri: &KeyUri) -> Result<Arc<Entry>> {
        let id = self.key_id(uri)?;
        let keys = self.keys.read().map_err(|_| self.poisoned())?;
        keys.get(id)
            .cloned()
            .ok_or_else(|| ProviderError::not_found(&self.name, format!("key {uri}")))
    }

    fn poisoned(&self) -> ProviderError {
        ProviderError::internal(&self.name, "key table lock poisoned")
    }

    /// The loaded version, if the key is for `purpose` and enabled.
    fn usable_for(&self, v: &VersionRef, purpose: KeyPurpose, op: Op) -> Result<Arc<LoadedKey>> {
        kit::require_purpose(&self.name, v, purpose, op)?;
        self.usable(v)
    }

    /// The loaded version, if the key is enabled.
    fn usable(&self, v: &VersionRef) -> Result<Arc<LoadedKey>> {
        let entry = self.entry(&v.uri)?;
        if !entry.file.enabled {
            return Err(ProviderError::precondition(
                &self.name,
                format!("key {} is disabled", v.uri),
            ));
        }
        if v.version < entry.file.retired_below {
            return Err(ProviderError::precondition(
                &self.name,
                format!(
                    "version {} of key {} is retired (versions below {} no longer decrypt or verify)",
                    v.version, v.uri, entry.file.retired_below
                ),
            ));
        }
        let index = (v.version as usize).checked_sub(1);
        index
            .and_then(|i| entry.versions.get(i))
            .cloned()
            .ok_or_else(|| {
                ProviderError::not_found(
                    &self.name,
                    format!("version {} of key {}", v.version, v.uri),
                )
            })
    }

    fn map_err(&self, v: &VersionRef, e: MaterialError) -> ProviderError {
        match e {
            MaterialError::Authentication => ProviderError::auth_failed(&self.name),
            MaterialError::Invalid(reason) => ProviderError::invalid(&self.name, reason),
            MaterialError::WrongPurpose(op) => ProviderError::precondition(
                &self.name,
                format!(
                    "key {} is a {} key ({}); it cannot {op}",
                    v.uri,
                    v.algorithm.purpose(),
                    v.algorithm
                ),
            ),
            MaterialError::Crypto(what) => ProviderError::internal(&self.name, what),
        }
    }

    fn seal_version(
        &self,
        master: &MasterKey,
        key_id: &str,
        number: u32,
        material: &SecretBytes,
    ) -> Result<VersionFile> {
        sealing::seal_version(master, &self.keyring, key_id, number, material)
            .map_err(|e| ProviderError::internal(&self.name, e.to_string()))
    }

    async fn generate(&self, algorithm: Algorithm) -> Result<SecretBytes> {
        // RSA generation takes up to seconds: keep it off the async workers.
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || material::generate(algorithm))
            .await
            .map_err(|e| ProviderError::internal(&name, format!("key generation task: {e}")))?
            .map_err(|e| match e {
                MaterialError::Invalid(reason) => ProviderError::unsupported(&name, reason),
                other => ProviderError::internal(&name, format!("{other:?}")),
            })
    }

    /// Writes `file` and swaps the in-memory entry; caller holds `changes`.
    fn commit(&self, file: KeyFile, versions: Vec<Arc<LoadedKey>>) -> Result<Arc<Entry>> {
        self.store.write(&file).map_err(|e| {
            ProviderError::internal(&self.name, format!("writing key {}: {e}", file.key_id))
        })?;
        let entry = Arc::new(Entry { file, versions });
        self.keys
            .write()
            .map_err(|_| self.poisoned())?
            .insert(entry.file.key_id.clone(), entry.clone());
        Ok(entry)
    }

    fn describe_entry(entry: &Entry) -> ProviderKey {
        ProviderKey {
            uri: uri_for(&entry.file.key_id),
            algorithm: entry.file.algorithm,
            state: if entry.file.enabled {
                ProviderKeyState::Enabled
            } else {
                ProviderKeyState::Disabled
            },
            versions: entry
                .file
                .versions
                .iter()
                .map(|v| KeyVersionInfo {
                    number: v.number,
                    provider_version: v.number.to_string(),
                })
                .collect(),
        }
    }
}

#[async_trait::async_trait]
impl KeyProvider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            algorithms: material::SUPPORTED.to_vec(),
            rotate: true,
            disable: true,
            destroy: true,
            list: true,
            sign_digest: true,
            pins_version: true,
            digest_only: false,
            import: false,
            settings: false,
        }
    }

    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        if !material::SUPPORTED.contains(&spec.algorithm) {
            return Err(ProviderError::unsupported(
                &self.name,
                format!("algorithm {}", spec.algorithm),
            ));
        }
        let material = self.generate(spec.algorithm).await?;
        let loaded = LoadedKey::load(spec.algorithm, &material).map_err(|e| {
            ProviderError::internal(&self.name, format!("loading new key material: {e:?}"))
        })?;
        let master = self.changes.lock().await;
        let exists = self
            .keys
            .read()
            .map_err(|_| self.poisoned())?
            .contains_key(&spec.key_id)
            || self.store.exists(&spec.key_id);
        if exists {
            return Err(ProviderError::AlreadyExists {
                provider: self.name.clone(),
                what: format!("key {}", uri_for(&spec.key_id)),
            });
        }
        let file = KeyFile {
            key_id: spec.key_id.clone(),
            name: spec.name.clone(),
            algorithm: spec.algorithm,
            enabled: true,
            versions: vec![self.seal_version(&master, &spec.key_id, 1, &material)?],
            retired_below: 0,
        };
        let entry = self.commit(file, vec![Arc::new(loaded)])?;
        Ok(Replied::local(Self::describe_entry(&entry)))
    }

    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        Ok(Replied::local(Self::describe_entry(&*self.entry(key)?)))
    }

    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        let keys = self.keys.read().map_err(|_| self.poisoned())?;
        let mut entries: Vec<&Arc<Entry>> = keys.values().collect();
        entries.sort_by(|a, b| a.file.key_id.cmp(&b.file.key_id));
        let (entries, next_page_token) =
            kit::page_after(&self.name, entries, |e| e.file.key_id.as_str(), page)?;
        let listed = entries
            .into_iter()
            .map(|e| ListedKey {
                uri: uri_for(&e.file.key_id),
                algorithm: Some(e.file.algorithm),
                state: Self::describe_entry(e).state,
                keygate_id: Some(e.file.key_id.clone()),
            })
            .collect();
        Ok(Replied::local(Listing {
            keys: listed,
            next_page_token,
        }))
    }

    async fn encrypt(
        &self,
        key: &VersionRef,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<Replied<Vec<u8>>> {
        let loaded = self.usable_for(key, KeyPurpose::Encrypt, Op::Encrypt)?;
        let blob = loaded
            .encrypt(plaintext.expose(), aad)
            .map_err(|e| self.map_err(key, e))?;
        Ok(Replied::local(blob))
    }

    async fn decrypt(
        &self,
        key: &VersionRef,
        blob: &[u8],
        aad: &[u8],
    ) -> Result<Replied<SecretBytes>> {
        let loaded = self.usable_for(key, KeyPurpose::Encrypt, Op::Decrypt)?;
        let plaintext = loaded
            .decrypt(blob, aad)
            .map_err(|e| self.map_err(key, e))?;
        Ok(Replied::local(plaintext))
    }

    async fn sign(&self, key: &VersionRef, input: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        let loaded = self.usable_for(key, KeyPurpose::Sign, Op::Sign)?;
        let sig = loaded
            .sign(key.algorithm, input)
            .map_err(|e| self.map_err(key, e))?;
        Ok(Replied::local(sig))
    }

    async fn verify(
        &self,
        key: &VersionRef,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<Replied<bool>> {
        let loaded = self.usable_for(key, KeyPurpose::Sign, Op::Verify)?;
        let ok = loaded
            .verify(key.algorithm, input, signature)
            .map_err(|e| self.map_err(key, e))?;
        Ok(Replied::local(ok))
    }

    async fn public_key(&self, key: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        let loaded = self.usable(key)?;
        let spki_der = loaded.public_key_der().map_err(|e| self.map_err(key, e))?;
        Ok(Replied::local(PublicKeyInfo { spki_der }))
    }

    async fn mac(&self, key: &VersionRef, message: &[u8]) -> Result<Replied<Vec<u8>>> {
        let loaded = self.usable_for(key, KeyPurpose::Mac, Op::Mac)?;
        Ok(Replied::local(
            loaded.mac(message).map_err(|e| self.map_err(key, e))?,
        ))
    }

    async fn verify_mac(
        &self,
        key: &VersionRef,
        message: &[u8],
        tag: &[u8],
    ) -> Result<Replied<bool>> {
        let loaded = self.usable_for(key, KeyPurpose::Mac, Op::VerifyMac)?;
        Ok(Replied::local(
            loaded
                .verify_mac(message, tag)
                .map_err(|e| self.map_err(key, e))?,
        ))
    }

    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        let algorithm = self.entry(key)?.file.algorithm;
        let material = self.generate(algorithm).await?;
        let loaded = LoadedKey::load(algorithm, &material).map_err(|e| {
            ProviderError::internal(&self.name, format!("loading new key material: {e:?}"))
        })?;
        let master = self.changes.lock().await;
        let entry = self.entry(key)?;
        let number = entry.file.versions.len() as u32 + 1;
        let mut file = entry.file.clone();
        file.versions
            .push(self.seal_version(&master, &file.key_id, number, &material)?);
        let mut versions = entry.versions.clone();
        versions.push(Arc::new(loaded));
        self.commit(file, versions)?;
        Ok(Replied::local(KeyVersionInfo {
            number,
            provider_version: number.to_string(),
        }))
    }

    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        let _guard = self.changes.lock().await;
        let entry = self.entry(key)?;
        let mut file = entry.file.clone();
        file.enabled = enabled;
        self.commit(file, entry.versions.clone())?;
        Ok(Replied::local(()))
    }

    async fn retire_versions(&self, key: &KeyUri, below: u32) -> Result<Replied<()>> {
        let _guard = self.changes.lock().await;
        let entry = self.entry(key)?;
        let mut file = entry.file.clone();
        // Retirement only moves forward.
        file.retired_below = file.retired_below.max(below);
        self.commit(file, entry.versions.clone())?;
        Ok(Replied::local(()))
    }

    /// Cryptographic erasure: the DEKs first (after which nothing opens the material), then
    /// the key file. Idempotent: a key already gone, or half gone after a crash, is finished.
    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        let master = self.changes.lock().await;
        let id = self.key_id(key)?.to_string();
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            ProviderError::internal(&self.name, format!("{what} of key {key}: {e}"))
        };
        // Out of the table first: no use of the key starts once its erasure has.
        self.keys.write().map_err(|_| self.poisoned())?.remove(&id);
        let erased = self
            .keyring
            .erase_key(&master, &id)
            .map_err(|e| failed("erasing the DEKs", &e))?;
        self.store
            .erase(&id)
            .map_err(|e| failed("erasing the key file", &e))?;
        tracing::info!(provider = %self.name, key = %key, deks_erased = erased, "key erased");
        Ok(Replied::local(()))
    }

    fn keys_it_needs(&self) -> Vec<NeededKey> {
        let sealed_by = self
            .root_sealed_by
            .read()
            .ok()
            .and_then(|sealed_by| sealed_by.clone());
        let configured = self.root_wrapper.as_ref().map(|w| NeededKey {
            provider: w.provider_name().to_string(),
            uri: w.key().clone(),
            version: None,
        });
        match (sealed_by, configured) {
            // The configured key is the one in force: its sealing version counts.
            (Some(sealed), Some(configured))
                if sealed.provider == configured.provider && sealed.uri == configured.uri =>
            {
                vec![sealed]
            }
            (sealed, configured) => sealed.into_iter().chain(configured).collect(),
        }
    }

    fn destruction_method(&self) -> Option<&'static str> {
        Some(match self.root_wrapper {
            Some(_) => ERASURE_STATEMENT_ENVELOPE,
            None => ERASURE_STATEMENT,
        })
    }

    /// A new KEK: every DEK rewrapped under it in the next keyring generation (fsynced), then
    /// master.json names it (atomic rename), then the old generation is erased. With a root
    /// wrapper, the root key is new too, sealed by the configured key's primary version.
    async fn rotate_master_key(&self) -> Result<Replied<MasterKeyRotation>> {
        let failed = |e: &dyn std::fmt::Display| {
            ProviderError::internal(&self.name, format!("rotating the master key: {e}"))
        };
        // The new root key is sealed before the store is locked: changes to it need not wait
        // for the wrapping provider.
        let sealed =
            match &self.root_wrapper {
                Some(wrapper) => Some(wrapper.seal_new_root().await.map_err(|e| match e {
                    // Worth retrying: the wrapping provider is down or throttling.
                    EnvelopeError::Provider {
                        source:
                            source @ (ProviderError::Unavailable { .. }
                            | ProviderError::Throttled { .. }),
                        ..
                    } => source,
                    other => ProviderError::FailedPrecondition {
                        provider: self.name.clone(),
                        reason: format!("rotating the master key: {other}"),
                    },
                })?),
                None => None,
            };
        let mut master = self.changes.lock().await;
        let new = match sealed {
            Some((root, record)) => master.rotated_to_root(&root, record),
            None => master.rotated(),
        }
        .map_err(|e| failed(&e))?;
        let rewrapped = self
            .keyring
            .rewrap_all(&master, &new)
            .map_err(|e| failed(&e))?;
        let generation = new.generation();
        if let Err(e) = new.persist(&self.dir) {
            // The rename may have happened before the failure (an fsync of the directory):
            // then the new generation is what a restart opens, and must be used from now on.
            if MasterKey::generation_on_disk(&self.dir) == Some(generation) {
                *master = new;
                self.note_sealed_by(&master);
            }
            return Err(failed(&e));
        }
        *master = new;
        self.note_sealed_by(&master);
        // The new generation is in force; the old one is only leftovers now.
        if let Err(e) = self.keyring.sweep(&master) {
            tracing::warn!(provider = %self.name, error = %e, "erasing the previous keyring generation failed; it is erased at the next start");
        }
        Ok(Replied::local(MasterKeyRotation {
            generation,
            rewrapped,
            sealed_by: master.sealed_by(),
        }))
    }
}
