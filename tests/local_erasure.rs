//! Issue 16, end to end through gRPC on a passphrase-protected local provider: destruction
//! is a cryptographic erasure (the pre-destruction key file, put back, opens nothing; the
//! wrapped DEKs are nowhere on disk, also after a kill -9), it says so in the destruction
//! record, and the master key rotates as an audited admin call that keeps every key usable.

mod common;

use common::{Server, ServerOptions, create, open, seal, team};
use keygate::pb;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PASSPHRASE: (&str, &str) = ("KG_TEST_PASSPHRASE", "a passphrase for the erasure tests");

fn start(dir: &Path) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"200ms\"\n\n\
             [providers.local]\nkind = \"local\"\npassphrase = {{ env = \"{}\" }}\n\n{}",
            PASSPHRASE.0,
            team::tokens_config()
        ),
    )
    .unwrap();
    let mut env = team::token_env();
    env.push((PASSPHRASE.0.into(), PASSPHRASE.1.into()));
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env,
            ..Default::default()
        },
    )
}

fn provider_dir(dir: &Path) -> PathBuf {
    dir.join("data/providers/local")
}

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

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .collect()
}

/// Whether `needle` occurs in any file under `dir`, raw or base64-encoded.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(needle);
    files(dir).iter().any(|f| {
        let bytes = std::fs::read(f).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
            || bytes.windows(b64.len()).any(|w| w == b64.as_bytes())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_local_key_is_erased_even_from_a_restored_key_file_and_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut keys = server.root().await;
    keys.create_key(create("doomed", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    keys.rotate_key(pb::RotateKeyRequest {
        key: "doomed".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    keys.create_key(create("kept", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    let doomed_ct = seal(&mut keys, "doomed", b"gone for good").await;
    let kept_ct = seal(&mut keys, "kept", b"still here").await;
    let doomed_uri = keys
        .get_key(pb::GetKeyRequest {
            key: "doomed".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner()
        .provider_uri;
    let store = provider_dir(dir.path());
    let before = snapshot(&store);
    let key_files_before = dir.path().join("keys-before");
    std::fs::create_dir_all(&key_files_before).unwrap();
    for f in files(&store.join("keys")) {
        std::fs::copy(&f, key_files_before.join(f.file_name().unwrap())).unwrap();
    }

    common::destroy_as_root(&mut keys, "doomed").await;
    // A crash right after: no clean shutdown.
    server.kill9();
    drop(server);

    // The DEK files that went away are the doomed key's two versions'; their bytes are
    // nowhere in the data directory (keyring, key files, database, audit log).
    let after = snapshot(&store);
    let erased: Vec<&Vec<u8>> = before
        .iter()
        .filter(|(path, _)| path.extension().is_some_and(|e| e == "dek"))
        .filter(|(path, _)| !after.contains_key(*path))
        .map(|(_, bytes)| bytes)
        .collect();
    assert_eq!(erased.len(), 2, "one DEK per version of the destroyed key");
    for dek in &erased {
        assert!(
            !on_disk(&dir.path().join("data"), dek),
            "a wrapped DEK of the destroyed key is still on disk"
        );
    }

    // Put the pre-destruction key files back, as a restore from a copy would.
    for f in files(&key_files_before) {
        std::fs::copy(&f, store.join("keys").join(f.file_name().unwrap())).unwrap();
    }
    let server = start(dir.path());
    let mut keys = server.root().await;
    assert!(open(&mut keys, &doomed_ct).await.is_err());
    assert_eq!(
        open(&mut keys, &kept_ct).await.unwrap().plaintext,
        b"still here"
    );
    // The record says how the key was destroyed.
    let records = common::destruction_records(&server, "doomed").await;
    assert_eq!(records.len(), 1);
    assert!(
        records[0].method.contains("cryptographic erasure"),
        "{}",
        records[0].method
    );
    drop(server);

    // Below the gateway: the provider itself, opened on the restored files with the
    // passphrase, holds nothing for the doomed key (its DEKs are gone).
    use keygate_provider::{KeyProvider, KeyUri, SecretBytes};
    let provider = keygate_provider_local::LocalProvider::open(
        "local",
        &store,
        keygate_provider_local::MasterKeySource::Passphrase(SecretBytes::copy_from(
            PASSPHRASE.1.as_bytes(),
        )),
    )
    .unwrap();
    assert!(provider.describe(&KeyUri::new(doomed_uri)).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn master_key_rotation_is_an_audited_admin_call_that_keeps_every_key_usable() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut keys = server.root().await;
    let mut sealed = Vec::new();
    for name in ["app/a", "app/b"] {
        keys.create_key(create(name, "aes-256-gcm", "alice"))
            .await
            .unwrap();
        sealed.push((seal(&mut keys, name, name.as_bytes()).await, name));
        keys.rotate_key(pb::RotateKeyRequest {
            key: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
        sealed.push((seal(&mut keys, name, name.as_bytes()).await, name));
    }
    keys.create_key(create("app/sign", "ecdsa-p256", "alice"))
        .await
        .unwrap();
    let master_before = std::fs::read(provider_dir(dir.path()).join("master.json")).unwrap();

    // An auditor may not; the refusal is audited.
    let denied = server
        .admin_as("dave")
        .await
        .rotate_master_key(pb::RotateMasterKeyRequest {
            provider: "local".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let rotated = server
        .admin_as("alice")
        .await
        .rotate_master_key(pb::RotateMasterKeyRequest {
            provider: "local".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (rotated.provider.as_str(), rotated.generation),
        ("local", 2)
    );
    // 2 + 2 versions, the signing key, and keygate's own audit-checkpoint key.
    assert!(rotated.rewrapped >= 5, "{rotated:?}");
    assert_ne!(
        std::fs::read(provider_dir(dir.path()).join("master.json")).unwrap(),
        master_before
    );
    for (ct, name) in &sealed {
        assert_eq!(
            open(&mut keys, ct).await.unwrap().plaintext,
            name.as_bytes()
        );
    }
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let events = audit
        .query(pb::AuditQueryRequest {
            action: "RotateMasterKey".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let outcomes: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.actor.as_str(), e.outcome.as_str()))
        .collect();
    assert!(outcomes.contains(&("dave", "denied")), "{outcomes:?}");
    assert!(outcomes.contains(&("alice", "ok")), "{outcomes:?}");
    drop(server);

    // After a restart, under the new master key: every key still works.
    let server = start(dir.path());
    let mut keys = server.root().await;
    for (ct, name) in &sealed {
        assert_eq!(
            open(&mut keys, ct).await.unwrap().plaintext,
            name.as_bytes()
        );
    }
    keys.sign(pb::SignRequest {
        key: "app/sign".into(),
        input: Some(pb::sign_request::Input::Message(b"hello".to_vec())),
    })
    .await
    .unwrap();
}
