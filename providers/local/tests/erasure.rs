//! Destruction is cryptographic erasure, and the master key rotates: what the local provider
//! claims, checked against the files on disk.

use keygate_provider::{
    Algorithm, KeyProvider, KeySpec, KeyUri, ProviderError, SecretBytes, VersionRef,
};
use keygate_provider_local::{LocalProvider, MasterKeySource};
use std::path::{Path, PathBuf};

fn passphrase() -> MasterKeySource {
    MasterKeySource::Passphrase(SecretBytes::copy_from(b"correct horse battery"))
}

fn open(dir: &Path) -> LocalProvider {
    LocalProvider::open("local", dir, passphrase()).unwrap()
}

fn spec(key_id: &str, algorithm: Algorithm) -> KeySpec {
    KeySpec {
        name: key_id.into(),
        key_id: key_id.into(),
        algorithm,
        owner: "alice".into(),
        environment: "dev".into(),
        crypto_period: std::time::Duration::from_secs(86_400),
        labels: Default::default(),
    }
}

fn at(key_id: &str, algorithm: Algorithm, version: u32) -> VersionRef {
    VersionRef {
        uri: KeyUri::new(format!("local://{key_id}")),
        algorithm,
        version,
        provider_version: version.to_string(),
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The wrapped DEK files of a key (all generations).
fn dek_files(dir: &Path, key_id: &str) -> Vec<PathBuf> {
    let prefix = format!("{}.", hex::encode(key_id));
    files(&dir.join("keyring"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".dek"))
        })
        .collect()
}

/// True when `needle` occurs in any file under `dir`, raw or base64-encoded.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(needle);
    files(dir).iter().any(|f| {
        let bytes = std::fs::read(f).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
            || bytes.windows(b64.len()).any(|w| w == b64.as_bytes())
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

async fn encrypt(p: &LocalProvider, key_id: &str, version: u32, text: &[u8]) -> Vec<u8> {
    p.encrypt(
        &at(key_id, Algorithm::Aes256Gcm, version),
        &SecretBytes::copy_from(text),
        b"aad",
    )
    .await
    .unwrap()
    .value
}

#[tokio::test]
async fn a_destroyed_key_does_not_come_back_from_a_copy_of_its_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let provider = open(&dir);
    provider
        .create_key(&spec("doomed", Algorithm::Aes256Gcm))
        .await
        .unwrap();
    provider
        .create_key(&spec("kept", Algorithm::Aes256Gcm))
        .await
        .unwrap();
    provider
        .rotate(&KeyUri::new("local://doomed"))
        .await
        .unwrap();
    let blob = encrypt(&provider, "doomed", 2, b"secret").await;
    let deks: Vec<Vec<u8>> = dek_files(&dir, "doomed")
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(deks.len(), 2, "one DEK per version");
    // The key file's copy, taken before the destruction.
    let before = tmp.path().join("before");
    copy_dir(&dir.join("keys"), &before);

    provider
        .destroy(&KeyUri::new("local://doomed"))
        .await
        .unwrap();
    assert_eq!(
        provider.destruction_method(),
        Some(keygate_provider_local::ERASURE_STATEMENT)
    );
    assert!(dek_files(&dir, "doomed").is_empty());
    for dek in &deks {
        assert!(!on_disk(&dir, dek), "a wrapped DEK is still on disk");
    }
    drop(provider);

    // Put the pre-destruction key file back and open with the passphrase.
    copy_dir(&before, &dir.join("keys"));
    let reopened = open(&dir);
    let refused = reopened
        .decrypt(&at("doomed", Algorithm::Aes256Gcm, 2), &blob, b"aad")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ProviderError::NotFound { .. }),
        "{refused:?}"
    );
    // The other key is untouched.
    let kept = encrypt(&reopened, "kept", 1, b"still here").await;
    let plain = reopened
        .decrypt(&at("kept", Algorithm::Aes256Gcm, 1), &kept, b"aad")
        .await
        .unwrap()
        .value;
    assert_eq!(plain.expose(), b"still here");
    // Destroying again finishes the leftover key file, and succeeds.
    reopened
        .destroy(&KeyUri::new("local://doomed"))
        .await
        .unwrap();
    assert!(
        !dir.join("keys")
            .join(format!("{}.json", hex::encode("doomed")))
            .exists()
    );
}

#[tokio::test]
async fn a_crash_right_after_destruction_leaves_nothing_to_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let provider = open(&dir);
    provider
        .create_key(&spec("doomed", Algorithm::HmacSha256))
        .await
        .unwrap();
    let dek = std::fs::read(&dek_files(&dir, "doomed")[0]).unwrap();
    provider
        .destroy(&KeyUri::new("local://doomed"))
        .await
        .unwrap();
    // No clean shutdown: the provider is never dropped, nothing more is written.
    std::mem::forget(provider);
    let reopened = open(&dir);
    assert!(
        reopened
            .describe(&KeyUri::new("local://doomed"))
            .await
            .is_err()
    );
    assert!(!on_disk(&dir, &dek), "the wrapped DEK is still on disk");
    assert!(dek_files(&dir, "doomed").is_empty());
}

#[tokio::test]
async fn master_key_rotation_keeps_every_key_usable_and_retires_the_old_kek() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let provider = open(&dir);
    let mut blobs = Vec::new();
    for id in ["a", "b", "c"] {
        provider
            .create_key(&spec(id, Algorithm::Aes256Gcm))
            .await
            .unwrap();
        for version in 1..=3 {
            if version > 1 {
                provider
                    .rotate(&KeyUri::new(format!("local://{id}")))
                    .await
                    .unwrap();
            }
            blobs.push((
                id,
                version,
                encrypt(&provider, id, version, id.as_bytes()).await,
            ));
        }
    }
    provider
        .create_key(&spec("signer", Algorithm::Ed25519))
        .await
        .unwrap();
    provider
        .retire_versions(&KeyUri::new("local://b"), 3)
        .await
        .unwrap();
    let old_master = std::fs::read(dir.join("master.json")).unwrap();
    let old_keyring = tmp.path().join("old-keyring");
    copy_dir(&dir.join("keyring"), &old_keyring);

    let rotation = provider.rotate_master_key().await.unwrap().value;
    assert_eq!(rotation.generation, 2);
    assert_eq!(rotation.rewrapped, 10);
    assert_ne!(std::fs::read(dir.join("master.json")).unwrap(), old_master);
    assert!(dir.join("keyring/g2").is_dir() && !dir.join("keyring/g1").exists());
    // In use straight away, and a new version after the rotation works too.
    provider.rotate(&KeyUri::new("local://a")).await.unwrap();
    blobs.push(("a", 4, encrypt(&provider, "a", 4, b"a").await));
    drop(provider);

    let reopened = open(&dir);
    for (id, version, blob) in &blobs {
        let result = reopened
            .decrypt(&at(id, Algorithm::Aes256Gcm, *version), blob, b"aad")
            .await;
        if *id == "b" && *version < 3 {
            // Retired before the rotation, and still retired; its DEK was rewrapped all the same.
            assert!(matches!(
                result,
                Err(ProviderError::FailedPrecondition { .. })
            ));
        } else {
            assert_eq!(result.unwrap().value.expose(), id.as_bytes());
        }
    }
    let signer = at("signer", Algorithm::Ed25519, 1);
    reopened.public_key(&signer).await.unwrap();
    drop(reopened);

    // The old master key does not open the new keyring (master.json restored alone fails to
    // open, naming the missing generation, and erases nothing).
    let new_master = std::fs::read(dir.join("master.json")).unwrap();
    std::fs::write(dir.join("master.json"), &old_master).unwrap();
    let err = LocalProvider::open("local", &dir, passphrase()).unwrap_err();
    assert!(err.to_string().contains("generation 1"), "{err}");
    assert!(dir.join("keyring/g2").is_dir());
    std::fs::write(dir.join("master.json"), &new_master).unwrap();
    // Nor the new master key the old keyring (a backup of it from before the rotation).
    let current = tmp.path().join("current-keyring");
    std::fs::rename(dir.join("keyring"), &current).unwrap();
    std::fs::create_dir_all(dir.join("keyring")).unwrap();
    copy_dir(&old_keyring.join("g1"), &dir.join("keyring/g2"));
    assert!(LocalProvider::open("local", &dir, passphrase()).is_err());
}

#[tokio::test]
async fn a_rotation_cut_short_before_master_json_leaves_a_store_that_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let provider = open(&dir);
    provider
        .create_key(&spec("k", Algorithm::Aes256Gcm))
        .await
        .unwrap();
    let blob = encrypt(&provider, "k", 1, b"survives").await;
    drop(provider);
    // What a crash mid-rotation leaves: the next generation half written, master.json unchanged.
    let next = dir.join("keyring/g2");
    std::fs::create_dir_all(&next).unwrap();
    std::fs::write(next.join(format!("{}.1.dek", hex::encode("k"))), [7u8; 60]).unwrap();
    std::fs::write(next.join("half.tmp"), [7u8; 12]).unwrap();
    std::fs::write(dir.join("master.tmp"), b"{\"half\": ").unwrap();
    let reopened = open(&dir);
    assert!(!next.exists(), "the abandoned generation is erased at open");
    assert!(!dir.join("master.tmp").exists());
    let plain = reopened
        .decrypt(&at("k", Algorithm::Aes256Gcm, 1), &blob, b"aad")
        .await
        .unwrap()
        .value;
    assert_eq!(plain.expose(), b"survives");
    // And the rotation, run again, completes.
    assert_eq!(
        reopened.rotate_master_key().await.unwrap().value.generation,
        2
    );
}
