//! The master key that seals every local key's material at rest.

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::SecretBytes;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const MASTER_FILE: &str = "master.json";
const CHECK_AAD: &[u8] = b"keygate-local-master-check-v1";
const CHECK_TEXT: &[u8] = b"keygate master key check";
const NONCE_LEN: usize = 12;

/// Where the master key comes from.
pub enum MasterKeySource {
    /// Generate one on first start and keep it in the data directory. Dev mode only.
    DevGenerated,
    /// Derive it from a passphrase with Argon2id; the salt lives in the data directory.
    Passphrase(SecretBytes),
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
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum MasterFile {
    /// Dev mode: the key itself, base64. Never used outside `--dev`.
    DevGenerated { key: String },
    Argon2id {
        salt: String,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        /// A known text sealed under the derived key, to tell a wrong passphrase at start-up.
        check: String,
    },
}

/// AES-256-GCM key that seals key material. Its bytes are dropped right after the cipher is
/// built; aws-lc frees its own copy with cleansing.
pub struct MasterKey {
    cipher: RandomizedNonceKey,
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
    /// Opens (or, on first start, creates) the master key of the store in `dir`.
    pub fn open(dir: &Path, source: MasterKeySource) -> Result<Self, MasterKeyError> {
        let path = dir.join(MASTER_FILE);
        let io = |source| MasterKeyError::Io {
            path: path.clone(),
            source,
        };
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
        match (existing, source) {
            (Some(MasterFile::DevGenerated { key }), MasterKeySource::DevGenerated) => {
                let key = SecretBytes::new(B64.decode(key).map_err(|_| corrupt("bad base64"))?);
                Self::from_bytes(&key, true).ok_or_else(|| corrupt("key is not 32 bytes"))
            }
            (Some(MasterFile::DevGenerated { .. }), MasterKeySource::Passphrase(_)) => {
                Err(MasterKeyError::DevStoreWithPassphrase {
                    dir: dir.to_path_buf(),
                })
            }
            (Some(MasterFile::Argon2id { .. }), MasterKeySource::DevGenerated) => {
                Err(MasterKeyError::PassphraseStoreInDevMode {
                    dir: dir.to_path_buf(),
                })
            }
            (
                Some(MasterFile::Argon2id {
                    salt,
                    memory_kib,
                    iterations,
                    parallelism,
                    check,
                }),
                MasterKeySource::Passphrase(passphrase),
            ) => {
                // Read back from a file anyone with write access to the directory could
                // change: bounded before Argon2id allocates `memory_kib`.
                check_params(memory_kib, iterations, parallelism).map_err(|e| corrupt(&e))?;
                let salt = B64.decode(salt).map_err(|_| corrupt("bad salt"))?;
                if !(16..=64).contains(&salt.len()) {
                    return Err(corrupt("the salt is not 16-64 bytes"));
                }
                let key = derive(&passphrase, &salt, memory_kib, iterations, parallelism)?;
                let master = Self::from_bytes(&key, false).ok_or_else(|| corrupt("bad key"))?;
                let check = B64.decode(check).map_err(|_| corrupt("bad check value"))?;
                match master.open_sealed(&check, CHECK_AAD) {
                    Ok(text) if text.expose() == CHECK_TEXT => Ok(master),
                    _ => Err(MasterKeyError::WrongPassphrase {
                        dir: dir.to_path_buf(),
                    }),
                }
            }
            (None, MasterKeySource::DevGenerated) => {
                let key = random_secret(32).map_err(|e| MasterKeyError::Kdf(e.to_string()))?;
                let file = MasterFile::DevGenerated {
                    key: B64.encode(key.expose()),
                };
                write_private(&path, &file).map_err(io)?;
                Self::from_bytes(&key, true).ok_or_else(|| corrupt("bad key"))
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
                let master = Self::from_bytes(&key, false).ok_or_else(|| corrupt("bad key"))?;
                let check = master
                    .seal(CHECK_TEXT, CHECK_AAD)
                    .map_err(|_| MasterKeyError::Kdf("sealing the check value failed".into()))?;
                let file = MasterFile::Argon2id {
                    salt: B64.encode(salt.expose()),
                    memory_kib: MEMORY_KIB,
                    iterations: ITERATIONS,
                    parallelism: PARALLELISM,
                    check: B64.encode(check),
                };
                write_private(&path, &file).map_err(io)?;
                Ok(master)
            }
        }
    }

    fn from_bytes(key: &SecretBytes, dev_mode: bool) -> Option<Self> {
        let cipher = RandomizedNonceKey::new(&AES_256_GCM, key.expose()).ok()?;
        Some(Self { cipher, dev_mode })
    }

    /// nonce ‖ ciphertext ‖ tag
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, ()> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .cipher
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| ())?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&in_out);
        zeroize::Zeroize::zeroize(&mut in_out);
        Ok(out)
    }

    pub(crate) fn open_sealed(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, ()> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(());
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).map_err(|_| ())?;
        let mut buf = SecretBytes::copy_from(&sealed[NONCE_LEN..]);
        let len = self
            .cipher
            .open_in_place(nonce, Aad::from(aad), buf.expose_mut())
            .map_err(|_| ())?
            .len();
        buf.expose_mut().truncate(len);
        Ok(buf)
    }
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

/// Writes JSON readable only by the owner, atomically (temp file, fsync, rename).
pub(crate) fn write_private<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write as _;
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
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
        let sealed = a.seal(b"material", b"aad").unwrap();
        let b = MasterKey::open(dir.path(), MasterKeySource::DevGenerated).unwrap();
        assert_eq!(
            b.open_sealed(&sealed, b"aad").unwrap().expose(),
            b"material"
        );
        assert!(b.open_sealed(&sealed, b"other").is_err());
    }
}
