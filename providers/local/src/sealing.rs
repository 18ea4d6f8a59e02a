//! A version's material at rest: sealed with AES-256-GCM under the version's own DEK (held in
//! the keyring), or, in stores written before the keyring, under the master's root key
//! ("legacy", migrated on open).

use crate::keyring::{Keyring, KeyringError};
use crate::master_key::{MasterKey, open_with, seal_with};
use crate::material::LoadedKey;
use crate::store::{KeyFile, VersionFile};
use aws_lc_rs::aead::{AES_256_GCM, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::SecretBytes;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(
        "key {key_id} version {version} is in the format from before the keyring, which this store no longer opens: the file comes from an old copy"
    )]
    LegacyAfterMigration { key_id: String, version: u32 },
    #[error("key {key_id} version {version}: {reason}")]
    Material {
        key_id: String,
        version: u32,
        reason: String,
    },
}

/// Binds sealed material to its key and version, so files cannot be swapped.
fn legacy_aad(key_id: &str, version: u32) -> Vec<u8> {
    format!("keygate-local-material-v1|{key_id}|{version}").into_bytes()
}

fn material_aad(key_id: &str, version: u32) -> Vec<u8> {
    format!("keygate-local-material-v2|{key_id}|{version}").into_bytes()
}

fn dek_cipher(dek: &SecretBytes) -> Result<RandomizedNonceKey, KeyringError> {
    RandomizedNonceKey::new(&AES_256_GCM, dek.expose())
        .map_err(|_| KeyringError::Crypto("loading a DEK"))
}

/// Seals a new version's material under a fresh DEK, written to the keyring first.
pub fn seal_version(
    master: &MasterKey,
    keyring: &Keyring,
    key_id: &str,
    number: u32,
    material: &SecretBytes,
) -> Result<VersionFile, KeyringError> {
    let dek = keyring.create(master, key_id, number)?;
    let sealed = seal_with(
        &dek_cipher(&dek)?,
        material.expose(),
        &material_aad(key_id, number),
    )
    .map_err(|_| KeyringError::Crypto("sealing key material"))?;
    Ok(VersionFile {
        number,
        sealed: B64.encode(sealed),
        dek: true,
    })
}

/// A version's material, opened under its DEK (or, for a legacy version, the root key).
pub fn open_version(
    master: &MasterKey,
    keyring: &Keyring,
    key_id: &str,
    version: &VersionFile,
) -> Result<SecretBytes, SealingError> {
    let bad = |reason: &str| SealingError::Material {
        key_id: key_id.to_string(),
        version: version.number,
        reason: reason.into(),
    };
    if !version.dek && master.legacy_closed() {
        return Err(SealingError::LegacyAfterMigration {
            key_id: key_id.to_string(),
            version: version.number,
        });
    }
    let sealed = B64.decode(&version.sealed).map_err(|_| bad("bad base64"))?;
    if !version.dek {
        return master
            .open_legacy(&sealed, &legacy_aad(key_id, version.number))
            .map_err(|_| bad("material does not open under this master key"));
    }
    let dek = keyring.get(master, key_id, version.number)?;
    open_with(
        &dek_cipher(&dek)?,
        &sealed,
        &material_aad(key_id, version.number),
    )
    .map_err(|_| bad("material does not open under its DEK"))
}

/// Reseals every legacy version of `file` under a DEK of its own; true when it changed
/// anything (the caller then writes the file). Each DEK is in the keyring before the file
/// names it, so a crash leaves either the legacy version (still readable) or the new one.
pub fn migrate(
    master: &MasterKey,
    keyring: &Keyring,
    file: &mut KeyFile,
) -> Result<bool, SealingError> {
    let mut changed = false;
    for i in 0..file.versions.len() {
        if file.versions[i].dek {
            continue;
        }
        let number = file.versions[i].number;
        let material = open_version(master, keyring, &file.key_id, &file.versions[i])?;
        file.versions[i] = seal_version(master, keyring, &file.key_id, number, &material)?;
        changed = true;
    }
    Ok(changed)
}

/// Loads every version of `file` for use.
pub fn load_versions(
    master: &MasterKey,
    keyring: &Keyring,
    file: &KeyFile,
) -> Result<Vec<Arc<LoadedKey>>, SealingError> {
    let mut versions = Vec::with_capacity(file.versions.len());
    for v in &file.versions {
        let material = open_version(master, keyring, &file.key_id, v)?;
        let loaded =
            LoadedKey::load(file.algorithm, &material).map_err(|e| SealingError::Material {
                key_id: file.key_id.clone(),
                version: v.number,
                reason: format!("{e:?}"),
            })?;
        versions.push(Arc::new(loaded));
    }
    Ok(versions)
}

/// Seals as the format before the keyring did, for tests of the migration.
#[cfg(test)]
pub fn seal_legacy(
    master: &MasterKey,
    key_id: &str,
    number: u32,
    material: &SecretBytes,
) -> VersionFile {
    let sealed = master
        .seal_legacy(material.expose(), &legacy_aad(key_id, number))
        .expect("sealing");
    VersionFile {
        number,
        sealed: B64.encode(sealed),
        dek: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::{LocalProvider, MasterKeySource};
    use keygate_provider::{Algorithm, KeyProvider, KeyUri, VersionRef};

    /// A store as written before the keyring: master.json without a KEK, material sealed
    /// under the root key. It opens, every version is resealed under a DEK of its own, and the
    /// key is usable; a second open finds nothing left to migrate.
    #[tokio::test]
    async fn a_store_from_before_the_keyring_is_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = random_root(dir.path());
        let master = MasterKey::open(dir.path(), MasterKeySource::DevGenerated).unwrap();
        // Undo the KEK `open` just added, to leave master.json exactly in the old format.
        std::fs::write(dir.path().join("master.json"), root).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let materials: Vec<SecretBytes> = (0..2)
            .map(|_| crate::material::generate(Algorithm::Aes256Gcm).unwrap())
            .collect();
        let file = KeyFile {
            key_id: "old".into(),
            name: "old".into(),
            algorithm: Algorithm::Aes256Gcm,
            enabled: true,
            versions: vec![
                seal_legacy(&master, "old", 1, &materials[0]),
                seal_legacy(&master, "old", 2, &materials[1]),
            ],
            retired_below: 0,
        };
        store.write(&file).unwrap();
        let blob = {
            let loaded = LoadedKey::load(Algorithm::Aes256Gcm, &materials[0]).unwrap();
            loaded.encrypt(b"from before", b"").unwrap()
        };
        drop(master);

        let provider =
            LocalProvider::open("local", dir.path(), MasterKeySource::DevGenerated).unwrap();
        let v1 = VersionRef {
            uri: KeyUri::new("local://old"),
            algorithm: Algorithm::Aes256Gcm,
            version: 1,
            provider_version: "1".into(),
        };
        let plain = provider.decrypt(&v1, &blob, b"").await.unwrap().value;
        assert_eq!(plain.expose(), b"from before");
        let migrated = &store.load_all().unwrap()[0];
        assert!(migrated.versions.iter().all(|v| v.dek));
        let text = std::fs::read_to_string(dir.path().join("master.json")).unwrap();
        assert!(text.contains("\"kek\""), "{text}");
        drop(provider);

        // Once migrated, the root key alone no longer opens anything in the key file.
        let reopened =
            LocalProvider::open("local", dir.path(), MasterKeySource::DevGenerated).unwrap();
        let plain = reopened.decrypt(&v1, &blob, b"").await.unwrap().value;
        assert_eq!(plain.expose(), b"from before");
        let master = MasterKey::open(dir.path(), MasterKeySource::DevGenerated).unwrap();
        let mut legacy_view = migrated.versions[0].clone();
        legacy_view.dek = false;
        let keyring = Keyring::open(dir.path()).unwrap();
        assert!(open_version(&master, &keyring, "old", &legacy_view).is_err());
        drop((reopened, master));

        // The key file from before the migration, put back (say, after the key was
        // destroyed): the store opens, but that file's key does not come back.
        store.write(&file).unwrap();
        let restored =
            LocalProvider::open("local", dir.path(), MasterKeySource::DevGenerated).unwrap();
        assert!(restored.decrypt(&v1, &blob, b"").await.is_err());
    }

    /// Writes a dev-mode master.json in the old format; returns its text.
    fn random_root(dir: &std::path::Path) -> String {
        let key = crate::master_key::random_secret(32).unwrap();
        let text = serde_json::json!({
            "kind": "dev-generated",
            "key": B64.encode(key.expose()),
        })
        .to_string();
        std::fs::write(dir.join("master.json"), &text).unwrap();
        text
    }
}
