//! The master key of the local store, in two layers.
//!
//! The *root key* comes from the operator: derived from a passphrase with Argon2id, or (dev
//! mode) generated and stored in the clear. It wraps one random *key-encryption key* (KEK),
//! kept wrapped in `master.json`; the KEK wraps each key version's own data-encryption key
//! (the keyring). Rotating the master key replaces the KEK and needs no new passphrase.
//!
//! Stores written before the keyring sealed material under the root key itself ("legacy"
//! versions); the root key still opens them, so the provider can migrate them on open.

use crate::envelope::EnvelopeRecord;
use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::{NeededKey, SecretBytes};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MASTER_FILE: &str = "master.json";
const CHECK_AAD: &[u8] = b"keygate-local-master-check-v1";
const CHECK_TEXT: &[u8] = b"keygate master key check";
const KEK_AAD: &str = "keygate-local-kek-v1";
const NONCE_LEN: usize = 12;

/// Where the master key comes from.
pub enum MasterKeySource {
    /// Generate one on first start and keep it in the data directory. Dev mode only.
    DevGenerated,
    /// Derive it from a passphrase with Argon2id; the salt lives in the data directory.
    Passphrase(SecretBytes),
    /// A root key sealed by a key in another provider (see [`crate::envelope`]), already
    /// unsealed (or, for a new store, generated and sealed) by the caller.
    Envelope {
        root: SecretBytes,
        record: EnvelopeRecord,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid master key file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the passphrase does not open the keys in {dir}: it differs from the one they were created with"
    )]
    WrongPassphrase { dir: PathBuf },
    #[error(
        "{dir} was created in dev mode, with a master key stored in the clear; start with --dev, or use a new data directory for a passphrase-protected store"
    )]
    DevStoreWithPassphrase { dir: PathBuf },
    #[error(
        "{dir} is protected by a passphrase; dev mode cannot open it (give the passphrase reference in the configuration)"
    )]
    PassphraseStoreInDevMode { dir: PathBuf },
    #[error(
        "{dir} has its master key wrapped by key {key} of provider '{provider}'; configure `master_key = {{ provider = \"{provider}\", key = \"...\" }}` to open it"
    )]
    EnvelopeStore {
        dir: PathBuf,
        provider: String,
        key: String,
    },
    #[error(
        "{dir} was created with a {kind} master key; `master_key` opens only a store created with it (use a new data directory)"
    )]
    NotAnEnvelopeStore { dir: PathBuf, kind: &'static str },
    #[error(
        "a master-key rotation with a new root key needs every key version migrated to the keyring first"
    )]
    LegacyOpen,
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum MasterFile {
    /// Dev mode: the key itself, base64. Never used outside `--dev`.
    DevGenerated {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kek: Option<WrappedKek>,
    },
    Argon2id {
        salt: String,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        /// A known text sealed under the derived key, to tell a wrong passphrase at start-up.
        check: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kek: Option<WrappedKek>,
    },
    /// The root key sealed by another provider's key; nothing here opens it.
    Envelope {
        #[serde(flatten)]
        record: EnvelopeRecord,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kek: Option<WrappedKek>,
    },
}

impl MasterFile {
    fn kek_mut(&mut self) -> &mut Option<WrappedKek> {
        match self {
            MasterFile::DevGenerated { kek, .. }
            | MasterFile::Argon2id { kek, .. }
            | MasterFile::Envelope { kek, .. } => kek,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            MasterFile::DevGenerated { .. } => "dev-mode",
            MasterFile::Argon2id { .. } => "passphrase",
            MasterFile::Envelope { .. } => "provider-wrapped",
        }
    }
}

/// The KEK sealed under the root key. `generation` counts master-key rotations and names the
/// keyring directory whose DEKs this KEK wraps.
#[derive(Clone, Serialize, Deserialize)]
struct WrappedKek {
    generation: u32,
    sealed: String,
    /// Every version was migrated to a DEK of its own: material sealed under the root key
    /// (the format before the keyring) no longer opens, so a key file of that format restored
    /// from an old copy cannot bring a destroyed key back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    legacy_closed: bool,
}

fn kek_aad(generation: u32) -> Vec<u8> {
    format!("{KEK_AAD}|{generation}").into_bytes()
}

/// AES-256-GCM keys: the root key and the KEK it wraps. Their bytes are dropped right after
/// the ciphers are built; aws-lc frees its own copies with cleansing.
pub struct MasterKey {
    /// Wraps the KEK; opens legacy versions, sealed under it directly.
    root: Arc<RandomizedNonceKey>,
    /// Wraps every DEK of the keyring.
    kek: RandomizedNonceKey,
    generation: u32,
    legacy_closed: bool,
    /// master.json as read or last written (its KEK field replaced on rotation).
    file: MasterFile,
    pub(crate) dev_mode: bool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

// Argon2id parameters: OWASP's recommended floor (19 MiB, 2 passes) raised for a key that
// guards every other key; start-up pays it once.
const MEMORY_KIB: u32 = 64 * 1024;
const ITERATIONS: u32 = 3;
const PARALLELISM: u32 = 1;

// The range accepted when the parameters are read back from master.json: from OWASP's floor
// (19 MiB, 2 passes) to 1 GiB, 16 passes and 16 lanes. Outside it the file was changed.
const MEMORY_KIB_RANGE: std::ops::RangeInclusive<u32> = 19 * 1024..=1024 * 1024;
const ITERATIONS_RANGE: std::ops::RangeInclusive<u32> = 2..=16;
const PARALLELISM_RANGE: std::ops::RangeInclusive<u32> = 1..=16;

fn check_params(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<(), String> {
    for (name, value, range) in [
        ("memory_kib", memory_kib, MEMORY_KIB_RANGE),
        ("iterations", iterations, ITERATIONS_RANGE),
        ("parallelism", parallelism, PARALLELISM_RANGE),
    ] {
        if !range.contains(&value) {
            return Err(format!(
                "Argon2id {name} is {value}, outside {}..={}; keygate never writes such a value, so the file was changed (restore it from a backup)",
                range.start(),
                range.end()
            ));
        }
    }
    Ok(())
}

impl MasterKey {
    /// Opens (or, on first start, creates) the master key of the store in `dir`. A store from
    /// before the keyring gets its KEK here (master.json rewritten atomically); its legacy
    /// versions still open under the root key until the provider migrates them.
    pub fn open(dir: &Path, source: MasterKeySource) -> Result<Self, MasterKeyError> {
        let path = dir.join(MASTER_FILE);
        let io = |source| MasterKeyError::Io {
            path: path.clone(),
            source,
        };
        // A rotation that crashed before its rename: the KEK it holds was never in force.
        crate::keyring::erase_file(&path.with_extension("tmp")).map_err(io)?;
        let existing = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice::<MasterFile>(&bytes).map_err(|e| {
                MasterKeyError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let corrupt = |reason: &str| MasterKeyError::Corrupt {
            path: path.clone(),
            reason: reason.into(),
        };
        let (root, file, dev_mode) = match (existing, source) {
            (
                Some(MasterFile::Envelope { record, .. }),
                MasterKeySource::DevGenerated | MasterKeySource::Passphrase(_),
            ) => {
                return Err(MasterKeyError::EnvelopeStore {
                    dir: dir.to_path_buf(),
                    provider: record.provider,
                    key: record.key.to_string(),
                });
            }
            (
                Some(file @ (MasterFile::DevGenerated { .. } | MasterFile::Argon2id { .. })),
                MasterKeySource::Envelope { .. },
            ) => {
                return Err(MasterKeyError::NotAnEnvelopeStore {
                    dir: dir.to_path_buf(),
                    kind: file.kind(),
                });
            }
            (Some(file), MasterKeySource::Envelope { root, record }) => {
                if !matches!(&file, MasterFile::Envelope { record: on_disk, .. } if *on_disk == record)
                {
                    return Err(corrupt("changed while the store was being opened"));
                }
                (
                    cipher(&root).ok_or_else(|| corrupt("bad root key"))?,
                    file,
                    false,
                )
            }
            (None, MasterKeySource::Envelope { root, record }) => {
                let file = MasterFile::Envelope { record, kek: None };
                (
                    cipher(&root).ok_or_else(|| corrupt("bad root key"))?,
                    file,
                    false,
                )
            }
            (Some(file @ MasterFile::DevGenerated { .. }), MasterKeySource::DevGenerated) => {
                let MasterFile::DevGenerated { key, .. } = &file else {
                    return Err(corrupt("unexpected kind"));
                };
                let key = SecretBytes::new(B64.decode(key).map_err(|_| corrupt("bad base64"))?);
                let root = cipher(&key).ok_or_else(|| corrupt("key is not 32 bytes"))?;
                (root, file, true)
            }
            (Some(MasterFile::DevGenerated { .. }), MasterKeySource::Passphrase(_)) => {
                return Err(MasterKeyError::DevStoreWithPassphrase {
                    dir: dir.to_path_buf(),
                });
            }
            (Some(MasterFile::Argon2id { .. }), MasterKeySource::DevGenerated) => {
                return Err(MasterKeyError::PassphraseStoreInDevMode {
                    dir: dir.to_path_buf(),
                });
            }
            (Some(file @ MasterFile::Argon2id { .. }), MasterKeySource::Passphrase(passphrase)) => {
                let MasterFile::Argon2id {
                    salt,
                    memory_kib,
                    iterations,
                    parallelism,
                    check,
                    ..
                } = &file
                else {
                    return Err(corrupt("unexpected kind"));
                };
                // Read back from a file anyone with write access to the directory could
                // change: bounded before Argon2id allocates `memory_kib`.
                check_params(*memory_kib, *iterations, *parallelism).map_err(|e| corrupt(&e))?;
                let salt = B64.decode(salt).map_err(|_| corrupt("bad salt"))?;
                if !(16..=64).contains(&salt.len()) {
                    return Err(corrupt("the salt is not 16-64 bytes"));
                }
                let key = derive(&passphrase, &salt, *memory_kib, *iterations, *parallelism)?;
                let root = cipher(&key).ok_or_else(|| corrupt("bad key"))?;
                let check = B64.decode(check).map_err(|_| corrupt("bad check value"))?;
                match open_with(&root, &check, CHECK_AAD) {
                    Ok(text) if text.expose() == CHECK_TEXT => (root, file, false),
                    _ => {
                        return Err(MasterKeyError::WrongPassphrase {
                            dir: dir.to_path_buf(),
                        });
                    }
                }
            }
            (None, MasterKeySource::DevGenerated) => {
                let key = random_secret(32).map_err(|e| MasterKeyError::Kdf(e.to_string()))?;
                let file = MasterFile::DevGenerated {
                    key: B64.encode(key.expose()),
                    kek: None,
                };
                (cipher(&key).ok_or_else(|| corrupt("bad key"))?, file, true)
            }
            (None, MasterKeySource::Passphrase(passphrase)) => {
                let salt = random_secret(16).map_err(|e| MasterKeyError::Kdf(e.to_string()))?;
                let key = derive(
                    &passphrase,
                    salt.expose(),
                    MEMORY_KIB,
                    ITERATIONS,
                    PARALLELISM,
                )?;
                let root = cipher(&key).ok_or_else(|| corrupt("bad key"))?;
                let check = seal_with(&root, CHECK_TEXT, CHECK_AAD)
                    .map_err(|_| MasterKeyError::Kdf("sealing the check value failed".into()))?;
                let file = MasterFile::Argon2id {
                    salt: B64.encode(salt.expose()),
                    memory_kib: MEMORY_KIB,
                    iterations: ITERATIONS,
                    parallelism: PARALLELISM,
                    check: B64.encode(check),
                    kek: None,
                };
                (root, file, false)
            }
        };
        let root = Arc::new(root);
        let mut file = file;
        match file.kek_mut().clone() {
            Some(wrapped) => {
                let sealed = B64
                    .decode(&wrapped.sealed)
                    .map_err(|_| corrupt("bad KEK base64"))?;
                let kek = open_with(&root, &sealed, &kek_aad(wrapped.generation))
                    .map_err(|_| corrupt("the KEK does not open under the root key"))?;
                let kek = cipher(&kek).ok_or_else(|| corrupt("the KEK is not 32 bytes"))?;
                Ok(Self {
                    root,
                    kek,
                    generation: wrapped.generation,
                    legacy_closed: wrapped.legacy_closed,
                    file,
                    dev_mode,
                })
            }
            None => {
                // A new store, or one from before the keyring: its first KEK.
                let master = Self::with_new_kek(root, file, 1, false, dev_mode)?;
                master.persist(dir).map_err(io)?;
                Ok(master)
            }
        }
    }

    fn with_new_kek(
        root: Arc<RandomizedNonceKey>,
        mut file: MasterFile,
        generation: u32,
        legacy_closed: bool,
        dev_mode: bool,
    ) -> Result<Self, MasterKeyError> {
        let failed = |what: &str| MasterKeyError::Kdf(format!("{what} failed"));
        let kek = random_secret(32).map_err(|_| failed("generating a KEK"))?;
        let sealed = seal_with(&root, kek.expose(), &kek_aad(generation))
            .map_err(|_| failed("wrapping the KEK"))?;
        *file.kek_mut() = Some(WrappedKek {
            generation,
            sealed: B64.encode(sealed),
            legacy_closed,
        });
        let kek = cipher(&kek).ok_or_else(|| failed("loading the KEK"))?;
        Ok(Self {
            root,
            kek,
            generation,
            legacy_closed,
            file,
            dev_mode,
        })
    }

    /// A new master key: a fresh random KEK under the same root key, one generation on. Not
    /// in force until [`MasterKey::persist`] writes it.
    pub(crate) fn rotated(&self) -> Result<Self, MasterKeyError> {
        Self::with_new_kek(
            self.root.clone(),
            self.file.clone(),
            self.generation + 1,
            self.legacy_closed,
            self.dev_mode,
        )
    }

    /// A new master key under a new root key sealed by another provider (`record`): a fresh
    /// KEK, one generation on. Copies of master.json from before need the key version that
    /// sealed their root; not in force until [`MasterKey::persist`] writes it.
    pub(crate) fn rotated_to_root(
        &self,
        root: &SecretBytes,
        record: EnvelopeRecord,
    ) -> Result<Self, MasterKeyError> {
        // Material from before the keyring is sealed under the root key itself.
        if !self.legacy_closed {
            return Err(MasterKeyError::LegacyOpen);
        }
        let root = cipher(root).ok_or_else(|| MasterKeyError::Kdf("bad root key".into()))?;
        let file = MasterFile::Envelope { record, kek: None };
        Self::with_new_kek(
            Arc::new(root),
            file,
            self.generation + 1,
            true,
            self.dev_mode,
        )
    }

    /// The record of the provider-wrapped root key in `dir`'s master.json: `None` for a new
    /// store; an error for a store whose master key is not provider-wrapped.
    pub fn envelope_on_disk(dir: &Path) -> Result<Option<EnvelopeRecord>, MasterKeyError> {
        let path = dir.join(MASTER_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(MasterKeyError::Io { path, source }),
        };
        match serde_json::from_slice::<MasterFile>(&bytes) {
            Ok(MasterFile::Envelope { record, .. }) => Ok(Some(record)),
            Ok(other) => Err(MasterKeyError::NotAnEnvelopeStore {
                dir: dir.to_path_buf(),
                kind: other.kind(),
            }),
            Err(e) => Err(MasterKeyError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Which key of which provider sealed the root key, for a provider-wrapped store.
    pub(crate) fn sealed_by(&self) -> Option<NeededKey> {
        match &self.file {
            MasterFile::Envelope { record, .. } => Some(NeededKey {
                provider: record.provider.clone(),
                uri: record.key.clone(),
                version: Some(record.version),
            }),
            _ => None,
        }
    }

    /// Whether material in the format before the keyring still opens (until every version
    /// of the store was migrated).
    pub(crate) fn legacy_closed(&self) -> bool {
        self.legacy_closed
    }

    /// Records in master.json that every version has a DEK: from now on the root key opens
    /// no material.
    pub(crate) fn close_legacy(&mut self, dir: &Path) -> std::io::Result<()> {
        if let Some(wrapped) = self.file.kek_mut() {
            wrapped.legacy_closed = true;
        }
        self.persist(dir)?;
        self.legacy_closed = true;
        Ok(())
    }

    /// Writes master.json (temp file, fsync, rename, fsync the directory).
    pub(crate) fn persist(&self, dir: &Path) -> std::io::Result<()> {
        write_private(&dir.join(MASTER_FILE), &self.file)
    }

    /// The generation the master.json in `dir` names, if it can be read.
    pub(crate) fn generation_on_disk(dir: &Path) -> Option<u32> {
        let bytes = std::fs::read(dir.join(MASTER_FILE)).ok()?;
        let mut file: MasterFile = serde_json::from_slice(&bytes).ok()?;
        file.kek_mut().as_ref().map(|k| k.generation)
    }

    /// The keyring generation whose DEKs this KEK wraps.
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    /// Wraps a DEK under the KEK: nonce ‖ ciphertext ‖ tag.
    pub(crate) fn wrap_dek(&self, dek: &[u8], aad: &[u8]) -> Result<Vec<u8>, ()> {
        seal_with(&self.kek, dek, aad)
    }

    pub(crate) fn unwrap_dek(&self, wrapped: &[u8], aad: &[u8]) -> Result<SecretBytes, ()> {
        open_with(&self.kek, wrapped, aad)
    }

    /// Opens a version sealed under the root key itself (the format before the keyring).
    pub(crate) fn open_legacy(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, ()> {
        if self.legacy_closed {
            return Err(());
        }
        open_with(&self.root, sealed, aad)
    }

    /// Seals as the format before the keyring did (for tests of the migration).
    #[cfg(test)]
    pub(crate) fn seal_legacy(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, ()> {
        seal_with(&self.root, plaintext, aad)
    }
}

fn cipher(key: &SecretBytes) -> Option<RandomizedNonceKey> {
    RandomizedNonceKey::new(&AES_256_GCM, key.expose()).ok()
}

/// AES-256-GCM with a random nonce: nonce ‖ ciphertext ‖ tag.
pub(crate) fn seal_with(
    cipher: &RandomizedNonceKey,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, ()> {
    let mut in_out = plaintext.to_vec();
    let sealed = cipher.seal_in_place_append_tag(Aad::from(aad), &mut in_out);
    let result = sealed.map(|nonce| {
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&in_out);
        out
    });
    zeroize::Zeroize::zeroize(&mut in_out);
    result.map_err(|_| ())
}

pub(crate) fn open_with(
    cipher: &RandomizedNonceKey,
    sealed: &[u8],
    aad: &[u8],
) -> Result<SecretBytes, ()> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(());
    }
    let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).map_err(|_| ())?;
    let mut buf = SecretBytes::copy_from(&sealed[NONCE_LEN..]);
    let len = cipher
        .open_in_place(nonce, Aad::from(aad), buf.expose_mut())
        .map_err(|_| ())?
        .len();
    buf.expose_mut().truncate(len);
    Ok(buf)
}

fn derive(
    passphrase: &SecretBytes,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<SecretBytes, MasterKeyError> {
    if passphrase.is_empty() {
        return Err(MasterKeyError::EmptyPassphrase);
    }
    let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|e| MasterKeyError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = SecretBytes::zeroed(32);
    argon
        .hash_password_into(passphrase.expose(), salt, key.expose_mut())
        .map_err(|e| MasterKeyError::Kdf(e.to_string()))?;
    Ok(key)
}

pub(crate) fn random_secret(len: usize) -> Result<SecretBytes, aws_lc_rs::error::Unspecified> {
    let mut bytes = SecretBytes::zeroed(len);
    aws_lc_rs::rand::fill(bytes.expose_mut())?;
    Ok(bytes)
}

/// Writes JSON readable only by the owner, atomically (temp file, fsync, rename, fsync the
/// directory).
pub(crate) fn write_private<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    crate::keyring::write_durably(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passphrase_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let pass = || MasterKeySource::Passphrase(SecretBytes::copy_from(b"correct horse"));
        MasterKey::open(dir.path(), pass()).unwrap();
        MasterKey::open(dir.path(), pass()).unwrap();
        let wrong = MasterKeySource::Passphrase(SecretBytes::copy_from(b"battery staple"));
        assert!(matches!(
            MasterKey::open(dir.path(), wrong),
            Err(MasterKeyError::WrongPassphrase { .. })
        ));
        assert!(matches!(
            MasterKey::open(dir.path(), MasterKeySource::DevGenerated),
            Err(MasterKeyError::PassphraseStoreInDevMode { .. })
        ));
    }

    #[test]
    fn dev_key_persists_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::open(dir.path(), MasterKeySource::DevGenerated).unwrap();
        let sealed = a.wrap_dek(b"material", b"aad").unwrap();
        let b = MasterKey::open(dir.path(), MasterKeySource::DevGenerated).unwrap();
        assert_eq!(b.unwrap_dek(&sealed, b"aad").unwrap().expose(), b"material");
        assert!(b.unwrap_dek(&sealed, b"other").is_err());
    }

    #[test]
    fn rotation_replaces_the_kek_under_the_same_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let pass = || MasterKeySource::Passphrase(SecretBytes::copy_from(b"correct horse"));
        let old = MasterKey::open(dir.path(), pass()).unwrap();
        let wrapped = old.wrap_dek(b"dek", b"aad").unwrap();
        let new = old.rotated().unwrap();
        assert_eq!(new.generation(), old.generation() + 1);
        assert!(new.unwrap_dek(&wrapped, b"aad").is_err());
        new.persist(dir.path()).unwrap();
        let reopened = MasterKey::open(dir.path(), pass()).unwrap();
        assert_eq!(reopened.generation(), new.generation());
        assert!(reopened.unwrap_dek(&wrapped, b"aad").is_err());
        let fresh = new.wrap_dek(b"dek", b"aad").unwrap();
        assert_eq!(
            reopened.unwrap_dek(&fresh, b"aad").unwrap().expose(),
            b"dek"
        );
    }

    #[test]
    fn a_store_without_a_kek_gets_one_and_keeps_its_root_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = random_secret(32).unwrap();
        let legacy = serde_json::json!({"kind": "dev-generated", "key": B64.encode(key.expose())});
        std::fs::write(dir.path().join(MASTER_FILE), legacy.to_string()).unwrap();
        let root = cipher(&key).unwrap();
        let sealed = seal_with(&root, b"old material", b"aad").unwrap();
        let master = MasterKey::open(dir.path(), MasterKeySource::DevGenerated).unwrap();
        assert_eq!(master.generation(), 1);
        assert_eq!(
            master.open_legacy(&sealed, b"aad").unwrap().expose(),
            b"old material"
        );
        let text = std::fs::read_to_string(dir.path().join(MASTER_FILE)).unwrap();
        assert!(text.contains("\"kek\""), "{text}");
    }
}
