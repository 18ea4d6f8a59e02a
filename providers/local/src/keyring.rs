//! The keyring: each key version's data-encryption key (DEK), wrapped under the KEK, in a file
//! of its own (`keyring/g<GENERATION>/<hex key id>.<version>.dek`, 60 bytes).
//!
//! A DEK file is written once (temp file, fsync, rename, fsync the directory) and never
//! rewritten, so no older copy of it is left behind by an update. Destroying a key erases its
//! DEK files: each is overwritten in place with random bytes, fsynced, removed, and the
//! directory fsynced. Without its DEK, a version's sealed material (in the key file, or in
//! any copy of it) opens under nothing: that is the cryptographic erasure.
//!
//! Master-key rotation writes the next generation's directory beside the current one, with
//! every DEK wrapped under the new KEK, and fsyncs it; master.json then names the new
//! generation (atomic rename), and the old directory is erased. A crash at any point leaves
//! master.json naming a complete generation; [`Keyring::sweep`] erases the other one at open.

use crate::master_key::MasterKey;
use keygate_provider::SecretBytes;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const DIR: &str = "keyring";
const EXT: &str = "dek";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key {key_id} version {version} has no DEK in the keyring (erased by a destruction)")]
    Missing { key_id: String, version: u32 },
    #[error(
        "the keyring generation {generation} that master.json names is missing from {dir}: master.json and the keyring must be restored together"
    )]
    GenerationMissing { generation: u32, dir: PathBuf },
    #[error("the DEK of key {key_id} version {version} does not open under this master key")]
    Unwrap { key_id: String, version: u32 },
    #[error("{0} failed")]
    Crypto(&'static str),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyringError + '_ {
    move |source| KeyringError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Binds a wrapped DEK to its key and version, so DEK files cannot be swapped.
fn dek_aad(key_id: &str, version: u32) -> Vec<u8> {
    format!("keygate-local-dek-v1|{key_id}|{version}").into_bytes()
}

pub struct Keyring {
    root: PathBuf,
}

impl Keyring {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let root = dir.join(DIR);
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn generation_dir(&self, generation: u32) -> PathBuf {
        self.root.join(format!("g{generation}"))
    }

    fn path(&self, generation: u32, key_id: &str, version: u32) -> PathBuf {
        self.generation_dir(generation)
            .join(format!("{}.{version}.{EXT}", hex::encode(key_id)))
    }

    /// A fresh random DEK for a new version, wrapped and written (durably) before it is used.
    pub fn create(
        &self,
        master: &MasterKey,
        key_id: &str,
        version: u32,
    ) -> Result<SecretBytes, KeyringError> {
        let dek = crate::master_key::random_secret(32)
            .map_err(|_| KeyringError::Crypto("generating a DEK"))?;
        self.put(master, key_id, version, &dek, DirSync::Directory)?;
        Ok(dek)
    }

    fn put(
        &self,
        master: &MasterKey,
        key_id: &str,
        version: u32,
        dek: &SecretBytes,
        sync: DirSync,
    ) -> Result<(), KeyringError> {
        let wrapped = master
            .wrap_dek(dek.expose(), &dek_aad(key_id, version))
            .map_err(|_| KeyringError::Crypto("wrapping a DEK"))?;
        let path = self.path(master.generation(), key_id, version);
        write_file(&path, &wrapped, sync).map_err(io(&path))
    }

    pub fn get(
        &self,
        master: &MasterKey,
        key_id: &str,
        version: u32,
    ) -> Result<SecretBytes, KeyringError> {
        let path = self.path(master.generation(), key_id, version);
        let wrapped = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let generation = master.generation();
                if !self.generation_dir(generation).is_dir() {
                    return Err(KeyringError::GenerationMissing {
                        generation,
                        dir: self.root.clone(),
                    });
                }
                return Err(KeyringError::Missing {
                    key_id: key_id.to_string(),
                    version,
                });
            }
            Err(e) => return Err(io(&path)(e)),
        };
        master
            .unwrap_dek(&wrapped, &dek_aad(key_id, version))
            .map_err(|_| KeyringError::Unwrap {
                key_id: key_id.to_string(),
                version,
            })
    }

    /// Erases every DEK of `key_id` in the current generation; returns how many.
    pub fn erase_key(&self, master: &MasterKey, key_id: &str) -> Result<usize, KeyringError> {
        let dir = self.generation_dir(master.generation());
        let prefix = format!("{}.", hex::encode(key_id));
        let mut erased = 0;
        for path in list(&dir).map_err(io(&dir))? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // `hex.` then a version number: a longer hex id never matches this prefix.
            let is_key = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(&format!(".{EXT}")))
                .is_some_and(|n| n.parse::<u32>().is_ok());
            if is_key {
                erase_file(&path).map_err(io(&path))?;
                erased += 1;
            }
        }
        sync_dir(&dir).map_err(io(&dir))?;
        Ok(erased)
    }

    /// Writes the next generation: every DEK of the current one wrapped under `new`'s KEK,
    /// durably. The caller then persists `new` and calls [`Keyring::sweep`].
    pub fn rewrap_all(&self, old: &MasterKey, new: &MasterKey) -> Result<usize, KeyringError> {
        let next = self.generation_dir(new.generation());
        if next.exists() {
            // Left by a rotation that crashed before master.json named it.
            erase_dir(&next).map_err(io(&next))?;
        }
        let current = self.generation_dir(old.generation());
        let mut count = 0;
        for path in list(&current).map_err(io(&current))? {
            let Some((key_id, version)) = parse_name(&path) else {
                continue;
            };
            let dek = self.get(old, &key_id, version)?;
            // One directory fsync for the whole generation, below.
            self.put(new, &key_id, version, &dek, DirSync::FileOnly)?;
            count += 1;
        }
        sync_dir(&next).map_err(io(&next))?;
        sync_dir(&self.root).map_err(io(&self.root))?;
        Ok(count)
    }

    /// Erases every generation but the one `master` names (superseded ones, or one a crashed
    /// rotation left unnamed), and stray temp files. Called once the keys have loaded, so a
    /// master.json restored without its keyring fails the open instead of losing a generation.
    pub fn sweep(&self, master: &MasterKey) -> Result<(), KeyringError> {
        let keep = self.generation_dir(master.generation());
        for path in list(&self.root).map_err(io(&self.root))? {
            if path != keep && path.is_dir() {
                erase_dir(&path).map_err(io(&path))?;
            }
        }
        if keep.exists() {
            for path in list(&keep).map_err(io(&keep))? {
                if path.extension().and_then(|e| e.to_str()) == Some("tmp") {
                    erase_file(&path).map_err(io(&path))?;
                }
            }
        }
        sync_dir(&self.root).map_err(io(&self.root))
    }
}

/// `<hex id>.<version>.dek` back to its key id and version.
fn parse_name(path: &Path) -> Option<(String, u32)> {
    let name = path
        .file_name()?
        .to_str()?
        .strip_suffix(&format!(".{EXT}"))?;
    let (hex_id, version) = name.rsplit_once('.')?;
    let key_id = String::from_utf8(hex::decode(hex_id).ok()?).ok()?;
    Some((key_id, version.parse().ok()?))
}

fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Whether a write fsyncs the directory too, or leaves that to its caller (many files).
#[derive(Clone, Copy, PartialEq, Eq)]
enum DirSync {
    Directory,
    FileOnly,
}

/// Writes a file owner-only, atomically and durably: temp file, fsync, rename, fsync the
/// directory (created if missing).
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_file(path, bytes, DirSync::Directory)
}

fn write_file(path: &Path, bytes: &[u8], sync: DirSync) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent"))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        // The new directory's own entry must be durable too, or a power loss could keep a
        // key file while losing the keyring generation that holds its DEKs.
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
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
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if sync == DirSync::Directory {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Overwrites a file in place with random bytes, fsyncs it, removes it and fsyncs its
/// directory. On a copy-on-write or journalling file system, or flash with wear levelling,
/// the old blocks may outlive the overwrite; the removal itself is certain.
pub(crate) fn erase_file(path: &Path) -> std::io::Result<()> {
    let len = match std::fs::metadata(path) {
        Ok(meta) => usize::try_from(meta.len()).unwrap_or(usize::MAX),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    {
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        let mut noise = crate::master_key::random_secret(len.min(1 << 20))
            .map_err(|_| std::io::Error::other("random bytes for the overwrite"))?;
        let mut left = len;
        while left > 0 {
            let n = left.min(noise.len());
            file.write_all(&noise.expose()[..n])?;
            left -= n;
        }
        file.sync_all()?;
        noise.expose_mut().fill(0);
    }
    std::fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn erase_dir(dir: &Path) -> std::io::Result<()> {
    for path in list(dir)? {
        erase_file(&path)?;
    }
    std::fs::remove_dir(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
