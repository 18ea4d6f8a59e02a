//! Issue 16, end to end through gRPC: the local provider's root key sealed by a key in an HSM
//! (SoftHSM2), the envelope pattern. The data directory alone opens nothing; a master-key
//! rotation moves the root key to a new HSM key; once the old HSM key is destroyed (through
//! keygate), a full copy of the data directory from before a destruction opens nothing, while
//! the live store keeps every other key.

mod common;

use common::hsm::TestHsm as Hsm;
use common::{Server, ServerOptions, create, open, seal, team};
use keygate::pb;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "e2e-envelope";
const PIN_VAR: &str = "E2E_ENVELOPE_HSM_PIN";
const USER_PIN: &str = "5678";

/// The enveloped store (beside the dev-mode store the first start makes by default).
fn store(dir: &Path) -> PathBuf {
    dir.join("enveloped-store")
}

/// The gateway's configuration: the HSM always, the local provider wrapped by `wrap_key`
/// when given (and then the default).
fn config(dir: &Path, hsm: &Hsm, wrap_key: Option<&str>) -> PathBuf {
    let local = match wrap_key {
        Some(uri) => format!(
            "default_provider = \"local\"\n\n[providers.local]\nkind = \"local\"\n\
             dir = \"{store}\"\n\
             master_key = {{ provider = \"onprem-hsm\", key = \"{uri}\" }}\n\n",
            store = store(dir).display()
        ),
        None => "default_provider = \"onprem-hsm\"\n\n".into(),
    };
    let path = dir.join("keygate.toml");
    std::fs::write(
        &path,
        format!(
            "{local}[providers.onprem-hsm]\nkind = \"pkcs11\"\nmodule = \"{module}\"\n\
             token = {{ label = \"{TOKEN}\" }}\nuser_pin = {{ env = \"{PIN_VAR}\" }}\n\n\
             [lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"200ms\"\n\n{tokens}",
            module = hsm.hsm.module_path().display(),
            tokens = team::tokens_config(),
        ),
    )
    .unwrap();
    path
}

fn env() -> Vec<(String, String)> {
    let mut env = team::token_env();
    env.push((PIN_VAR.into(), USER_PIN.into()));
    env
}

fn start(dir: &Path, config: PathBuf) -> Server {
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: env(),
            ..Default::default()
        },
    )
}

/// Starts `keygate serve` expecting it to stop with an error before listening; its stderr.
fn refused_start(dir: &Path, config: &Path) -> String {
    let mut cmd = Command::new(common::keygate_bin());
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--dev")
        .arg("--dev-token")
        .arg(common::ROOT_TOKEN)
        .arg("--config")
        .arg(common::dev_only_copy(config, true));
    for (k, v) in env() {
        cmd.env(k, v);
    }
    let ran = common::run_to_exit(cmd, dir, Duration::from_secs(60));
    assert!(!ran.status.success(), "keygate started: {}", ran.stdout);
    ran.stderr
}

async fn provider_uri(keys: &mut common::Keys, key: &str) -> String {
    keys.get_key(pb::GetKeyRequest {
        key: key.into(),
        usage: false,
    })
    .await
    .unwrap()
    .into_inner()
    .provider_uri
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hsm_wrapped_local_store_outlives_its_backups_once_the_old_hsm_key_is_destroyed() {
    let hsm = Hsm::new(TOKEN, "1234", USER_PIN);
    let dir = tempfile::tempdir().unwrap();

    // The security officer makes two wrapping keys in the HSM through keygate.
    let server = start(dir.path(), config(dir.path(), &hsm, None));
    let mut keys = server.root().await;
    for name in ["local-root/2025", "local-root/2026"] {
        let mut request = create(name, "aes-256-gcm", "alice");
        request.provider = "onprem-hsm".into();
        keys.create_key(request).await.unwrap();
    }
    let old_wrap = provider_uri(&mut keys, "local-root/2025").await;
    let new_wrap = provider_uri(&mut keys, "local-root/2026").await;
    assert!(old_wrap.starts_with("pkcs11:"), "{old_wrap}");
    drop(server);

    // The local store, its root key sealed by the first: keys made and used.
    let server = start(dir.path(), config(dir.path(), &hsm, Some(&old_wrap)));
    let mut keys = server.root().await;
    for name in ["app/kept", "app/doomed"] {
        keys.create_key(create(name, "aes-256-gcm", "alice"))
            .await
            .unwrap();
    }
    assert!(
        provider_uri(&mut keys, "app/kept")
            .await
            .starts_with("local://")
    );
    let kept_ct = seal(&mut keys, "app/kept", b"still here").await;
    let doomed_ct = seal(&mut keys, "app/doomed", b"gone for good").await;
    let store = store(dir.path());
    let master: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("master.json")).unwrap()).unwrap();
    assert_eq!(
        (master["kind"].as_str(), master["key"].as_str()),
        (Some("envelope"), Some(old_wrap.as_str()))
    );

    // A full backup of the store, then the destruction it must not undo.
    let backup = dir.path().join("backup");
    common::copy_dir(&store, &backup);
    common::destroy_as_root(&mut keys, "app/doomed").await;
    let records = common::destruction_records(&server, "app/doomed").await;
    assert_eq!(records.len(), 1);
    assert!(
        records[0].method.contains("cryptographic erasure")
            && records[0]
                .method
                .contains("sealed by a key in another provider"),
        "the destruction record states the envelope: {}",
        records[0].method
    );
    drop(server);

    // The configuration names the new HSM key; the store opens under the old one until the
    // rotation seals a new root key under the new one.
    let server = start(dir.path(), config(dir.path(), &hsm, Some(&new_wrap)));
    let rotated = server
        .admin_as("alice")
        .await
        .rotate_master_key(pb::RotateMasterKeyRequest {
            provider: "local".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.provider, "local");
    let master: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("master.json")).unwrap()).unwrap();
    assert_eq!(master["key"].as_str(), Some(new_wrap.as_str()));
    let mut keys = server.root().await;
    assert_eq!(
        open(&mut keys, &kept_ct).await.unwrap().plaintext,
        b"still here"
    );
    // The HSM key that seals the root key now cannot be destroyed through keygate.
    let refused = keys
        .schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
            family: false,
            key: "local-root/2026".into(),
            pending_window: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert_eq!(common::reason(&refused), "KEY_WRAPS_MASTER_KEY");
    assert!(
        refused.message().contains("'local'"),
        "{}",
        refused.message()
    );
    // Nor disabled: the next start could not unwrap the root key either.
    let refused = keys
        .disable_key(pb::DisableKeyRequest {
            key: "local-root/2026".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        common::reason(&refused),
        "KEY_WRAPS_MASTER_KEY",
        "{refused:?}"
    );
    // The rotation's audit event names the key that now seals the root key.
    let events = server
        .audit(common::ROOT_TOKEN)
        .await
        .query(pb::AuditQueryRequest {
            action: "RotateMasterKey".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(
        details["root_key_sealed_by_key"].as_str(),
        Some(new_wrap.as_str()),
        "{details}"
    );
    // The old one is destroyed, deliberately, through keygate.
    common::destroy_as_root(&mut keys, "local-root/2025").await;
    drop(server);

    // The backup from before the destruction, put back whole: it needs the destroyed HSM key.
    let live = dir.path().join("live");
    std::fs::rename(&store, &live).unwrap();
    common::copy_dir(&backup, &store);
    let stderr = refused_start(dir.path(), &config(dir.path(), &hsm, Some(&new_wrap)));
    assert!(
        stderr.contains("providers.local") && stderr.contains(&old_wrap),
        "the refusal names the HSM key the backup needs: {stderr}"
    );

    // The live store: the kept key works after a restart, the destroyed one is gone.
    std::fs::remove_dir_all(&store).unwrap();
    std::fs::rename(&live, &store).unwrap();
    let server = start(dir.path(), config(dir.path(), &hsm, Some(&new_wrap)));
    let mut keys = server.root().await;
    assert_eq!(
        open(&mut keys, &kept_ct).await.unwrap().plaintext,
        b"still here"
    );
    let gone = open(&mut keys, &doomed_ct).await.unwrap_err();
    assert_ne!(gone.code(), tonic::Code::Ok);
}
