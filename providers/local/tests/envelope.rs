//! The envelope pattern: a local store whose root key another provider seals. Here the other
//! provider is a second local store (the end-to-end test in `tests/local_erasure.rs` uses
//! SoftHSM2); what matters is that nothing in the enveloped store's directory opens it.

use keygate_provider::kit::BuildContext;
use keygate_provider::{Algorithm, KeyProvider, KeySpec, KeyUri, SecretBytes, VersionRef};
use keygate_provider_local::{LocalProvider, MasterKeySource, factory};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

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

fn at(key_id: &str, version: u32) -> VersionRef {
    VersionRef {
        uri: KeyUri::new(format!("local://{key_id}")),
        algorithm: Algorithm::Aes256Gcm,
        version,
        provider_version: version.to_string(),
    }
}

/// The "HSM": a passphrase-protected local store holding the wrapping keys.
struct Wrapper {
    provider: Arc<LocalProvider>,
}

impl Wrapper {
    fn open(dir: &Path) -> Self {
        let source = MasterKeySource::Passphrase(SecretBytes::copy_from(b"hsm passphrase"));
        Self {
            provider: Arc::new(LocalProvider::open("hsm", dir, source).unwrap()),
        }
    }

    async fn key(&self, key_id: &str, algorithm: Algorithm) -> KeyUri {
        self.provider
            .create_key(&spec(key_id, algorithm))
            .await
            .unwrap()
            .value
            .uri
    }
}

async fn build(
    wrapper: &Wrapper,
    dir: &Path,
    settings: serde_json::Value,
) -> Result<Arc<dyn KeyProvider>, String> {
    let mut settings = settings;
    settings["dir"] = serde_json::json!(dir);
    let context = BuildContext {
        data_dir: dir.to_path_buf(),
        dev: false,
        built: BTreeMap::from([(
            "hsm".to_string(),
            wrapper.provider.clone() as Arc<dyn KeyProvider>,
        )]),
    };
    factory()
        .build("local", settings, &context)
        .await
        .map(|built| built.provider)
        .map_err(|e| e.to_string())
}

fn wrapped_by(key: &KeyUri) -> serde_json::Value {
    serde_json::json!({ "master_key": { "provider": "hsm", "key": key } })
}

async fn seal(p: &Arc<dyn KeyProvider>, key_id: &str, text: &[u8]) -> Vec<u8> {
    p.encrypt(&at(key_id, 1), &SecretBytes::copy_from(text), b"")
        .await
        .unwrap()
        .value
}

async fn open(p: &Arc<dyn KeyProvider>, key_id: &str, blob: &[u8]) -> Vec<u8> {
    p.decrypt(&at(key_id, 1), blob, b"")
        .await
        .unwrap()
        .value
        .expose()
        .to_vec()
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

#[tokio::test]
async fn an_enveloped_store_opens_only_through_its_wrapping_key() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = Wrapper::open(&dir.path().join("hsm"));
    let wrap_key = wrapper.key("root-wrap", Algorithm::Aes256Gcm).await;
    let store = dir.path().join("store");

    let local = build(&wrapper, &store, wrapped_by(&wrap_key))
        .await
        .unwrap();
    local
        .create_key(&spec("app", Algorithm::Aes256Gcm))
        .await
        .unwrap();
    let blob = seal(&local, "app", b"payroll").await;
    drop(local);

    // master.json holds the root key only as the wrapping provider's ciphertext.
    let master: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("master.json")).unwrap()).unwrap();
    assert_eq!(master["kind"], "envelope");
    assert_eq!(master["provider"], "hsm");
    assert_eq!(master["key"], wrap_key.as_str());
    assert!(master.get("salt").is_none() && master.get("key_material").is_none());

    // Reopened through the wrapping key: the key is there.
    let local = build(&wrapper, &store, wrapped_by(&wrap_key))
        .await
        .unwrap();
    assert_eq!(open(&local, "app", &blob).await, b"payroll");
    drop(local);

    // Nothing else opens it: not a passphrase, not dev mode, each refused by name.
    let with_passphrase = LocalProvider::open(
        "local",
        &store,
        MasterKeySource::Passphrase(SecretBytes::copy_from(b"hsm passphrase")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        with_passphrase.contains("wrapped by key local://root-wrap of provider 'hsm'"),
        "{with_passphrase}"
    );
    let dev = LocalProvider::open("local", &store, MasterKeySource::DevGenerated)
        .unwrap_err()
        .to_string();
    assert!(dev.contains("master_key"), "{dev}");

    // Without the wrapping key the store does not open, and the error says which key.
    wrapper.provider.destroy(&wrap_key).await.unwrap();
    let gone = build(&wrapper, &store, wrapped_by(&wrap_key))
        .await
        .err()
        .expect("the store must not open without its wrapping key");
    assert!(
        gone.contains("wrapping key local://root-wrap of provider 'hsm'")
            && gone.contains("not found"),
        "{gone}"
    );
}

#[tokio::test]
async fn a_rotation_moves_the_root_to_the_configured_key_and_old_copies_die_with_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = Wrapper::open(&dir.path().join("hsm"));
    let old_key = wrapper.key("root-wrap-2025", Algorithm::Aes256Gcm).await;
    let new_key = wrapper.key("root-wrap-2026", Algorithm::Aes256Gcm).await;
    let store = dir.path().join("store");

    let local = build(&wrapper, &store, wrapped_by(&old_key)).await.unwrap();
    local
        .create_key(&spec("app", Algorithm::Aes256Gcm))
        .await
        .unwrap();
    let blob = seal(&local, "app", b"ledger").await;
    drop(local);
    let backup = dir.path().join("backup");
    copy_dir(&store, &backup);

    // The configuration names the new key; the store still opens under the old one until
    // the rotation, which seals a new root key under the new one.
    let local = build(&wrapper, &store, wrapped_by(&new_key)).await.unwrap();
    let rotation = local.rotate_master_key().await.unwrap().value;
    assert_eq!(rotation.rewrapped, 1);
    assert_eq!(open(&local, "app", &blob).await, b"ledger");
    drop(local);
    let master: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("master.json")).unwrap()).unwrap();
    assert_eq!(master["key"], new_key.as_str());

    // The old wrapping key is destroyed in its provider: the backup opens nothing, the
    // store itself everything.
    wrapper.provider.destroy(&old_key).await.unwrap();
    let from_backup = build(&wrapper, &backup, wrapped_by(&new_key))
        .await
        .err()
        .expect("a backup sealed under a destroyed key must not open");
    assert!(
        from_backup.contains("local://root-wrap-2025"),
        "{from_backup}"
    );
    let local = build(&wrapper, &store, wrapped_by(&new_key)).await.unwrap();
    assert_eq!(open(&local, "app", &blob).await, b"ledger");
}

#[tokio::test]
async fn misconfigured_wrapping_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = Wrapper::open(&dir.path().join("hsm"));
    let signing = wrapper.key("signer", Algorithm::EcdsaP256).await;

    let store = dir.path().join("store");
    let refused = build(&wrapper, &store, wrapped_by(&signing))
        .await
        .err()
        .unwrap();
    assert!(
        refused.contains("needs a symmetric encryption key"),
        "{refused}"
    );
    assert!(!store.join("master.json").exists());

    let elsewhere = serde_json::json!({ "master_key": { "provider": "vault", "key": "x" } });
    let refused = build(&wrapper, &store, elsewhere).await.err().unwrap();
    assert!(
        refused.contains("'vault' is not a configured provider"),
        "{refused}"
    );

    let both = serde_json::json!({
        "master_key": { "provider": "hsm", "key": signing.as_str() },
        "passphrase": { "env": "UNUSED" },
    });
    let refused = build(&wrapper, &store, both).await.err().unwrap();
    assert!(refused.contains("not both"), "{refused}");

    // A passphrase store is not silently turned into an enveloped one.
    let passphrase_store = dir.path().join("passphrase-store");
    LocalProvider::open(
        "local",
        &passphrase_store,
        MasterKeySource::Passphrase(SecretBytes::copy_from(b"another passphrase")),
    )
    .unwrap();
    let wrap_key = wrapper.key("root-wrap", Algorithm::Aes256Gcm).await;
    let refused = build(&wrapper, &passphrase_store, wrapped_by(&wrap_key))
        .await
        .err()
        .unwrap();
    assert!(
        refused.contains("created with a passphrase master key"),
        "{refused}"
    );
}
