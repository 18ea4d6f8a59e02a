//! Key files on disk: one JSON file per key, rewritten atomically on every change. They hold
//! sealed material only; the DEKs that open it are in the keyring.

use crate::master_key::write_private;
use keygate_provider::Algorithm;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub key_id: String,
    pub name: String,
    pub algorithm: Algorithm,
    pub enabled: bool,
    pub versions: Vec<VersionFile>,
    /// Versions below this are retired: kept, but no longer used (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retired_below: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionFile {
    pub number: u32,
    /// The version's material sealed, base64 (nonce ‖ ciphertext ‖ tag): under its own DEK
    /// from the keyring when `dek`, else (stores from before the keyring) under the master key.
    pub sealed: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dek: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let dir = dir.join("keys");
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, key_id: &str) -> PathBuf {
        // Hex keeps any id (slashes, dots) a plain file name.
        self.dir.join(format!("{}.json", hex::encode(key_id)))
    }

    pub fn load_all(&self) -> std::io::Result<Vec<KeyFile>> {
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            let key: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a valid key file: {e}", path.display()),
                )
            })?;
            keys.push(key);
        }
        Ok(keys)
    }

    pub fn exists(&self, key_id: &str) -> bool {
        self.path(key_id).exists()
    }

    pub fn write(&self, key: &KeyFile) -> std::io::Result<()> {
        write_private(&self.path(&key.key_id), key)
    }

    /// Overwrites the key's file, removes it and fsyncs the directory (nothing if absent).
    pub fn erase(&self, key_id: &str) -> std::io::Result<()> {
        crate::keyring::erase_file(&self.path(key_id))
    }
}
