//! A key whose backend rotates it by itself (Transit's `auto_rotate_period`, set from the
//! crypto-period at creation) is rotated once per crypto-period by the scheduler, never twice:
//! it adopts the version the backend made, leaves a due key to the backend for
//! `[lifecycle] provider_rotation_grace`, and rotates it itself only when the backend is
//! overdue; a rotation by hand always makes new material. Against a real OpenBao dev server.
//!
//! The scheduler test runs the gateway in-process so its scan can be run at a time hours
//! ahead; the backend's own rotation is the one Transit performs when `auto_rotate_period`
//! passes (`POST transit/keys/NAME/rotate`), made by the test at the moment it stands for.
//! Needs the `bao` binary: `eval "$(tests/backends/install.sh openbao)"`.

mod common;

use common::{Server, ServerOptions, create, events_for, request_id};
use keygate::gateway::ops::{CreateKey, DurationInput};
use keygate::gateway::{Call, Credentials, Gateway};
use keygate::pb;
use keygate_test_backends::openbao::OpenBao;
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

/// Not `KEYGATE_…`: keygate would take that prefix for a configuration override.
const TOKEN_ENV: &str = "VAULT_TOKEN_FOR_NATIVE_ROTATION_TESTS";
const HOUR_MS: i64 = 3_600_000;

fn start_bao() -> OpenBao {
    OpenBao::start().unwrap_or_else(|e| {
        panic!("cannot start OpenBao: {e}\ninstall it with: eval \"$(tests/backends/install.sh openbao)\"")
    })
}

fn config(bao: &OpenBao, lifecycle: &str) -> String {
    format!(
        "[providers.vault]\n\
         kind = \"vault\"\n\
         address = \"{}\"\n\
         mount = \"transit\"\n\
         auth = {{ method = \"token\", token = {{ env = \"{TOKEN_ENV}\" }} }}\n\n\
         [lifecycle]\n{lifecycle}\n",
        bao.addr()
    )
}

/// Transit's own view of a key.
fn transit_key(bao: &OpenBao, name: &str) -> Value {
    let out = std::process::Command::new("curl")
        .args(["-sf", "-H"])
        .arg(format!("X-Vault-Token: {}", bao.token()))
        .arg(format!("{}/v1/transit/keys/{name}", bao.addr()))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "reading transit key {name} failed");
    serde_json::from_slice::<Value>(&out.stdout).expect("JSON")["data"].clone()
}

fn latest_version(bao: &OpenBao, name: &str) -> u64 {
    transit_key(bao, name)["latest_version"]
        .as_u64()
        .expect("latest_version")
}

/// What Transit does when a key's `auto_rotate_period` has passed.
fn transit_rotates_by_itself(bao: &OpenBao, name: &str) {
    let status = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", "-H"])
        .arg(format!("X-Vault-Token: {}", bao.token()))
        .arg(format!("{}/v1/transit/keys/{name}/rotate", bao.addr()))
        .output()
        .expect("curl runs")
        .status;
    assert!(status.success(), "Transit rotate of {name} failed");
}

fn rotated_by(event: &pb::AuditEvent) -> String {
    let details: Value = serde_json::from_str(&event.details).expect("details are JSON");
    details["rotated_by"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The Transit name of a keygate key on the `vault` provider (`vault://transit/NAME`).
fn vault_name(provider_uri: &str) -> String {
    provider_uri
        .rsplit('/')
        .next()
        .expect("a Transit name")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_by_hand_makes_new_material_and_overdue_keys_are_listed() {
    let bao = start_bao();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("keygate.toml");
    std::fs::write(
        &config_path,
        config(&bao, "min_crypto_period = \"1s\"\nscan_interval = \"1h\""),
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config_path),
            env: vec![(TOKEN_ENV.into(), bao.token().into())],
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let mut audit = server.audit(common::ROOT_TOKEN).await;

    // A 2-hour crypto-period is one Transit rotates by itself (its floor is an hour).
    let mut req = create("native/dek", "aes-256-gcm", "root");
    req.provider = "vault".into();
    req.crypto_period = Some(prost_types::Duration {
        seconds: 7200,
        nanos: 0,
    });
    let key = keys.create_key(req).await.expect("create").into_inner();
    let name = vault_name(&key.provider_uri);
    // Transit rotates it a tenth of the crypto-period early (at most an hour), so its version
    // is there when keygate's due date comes.
    assert_eq!(transit_key(&bao, &name)["auto_rotate_period"], 6480);

    // A rotation asked for by hand makes new material even when Transit rotated on its own
    // (the version it made is not taken in its place).
    transit_rotates_by_itself(&bao, &name);
    let rotated = keys
        .rotate_key(pb::RotateKeyRequest {
            key: "native/dek".into(),
            ..Default::default()
        })
        .await
        .expect("rotate");
    let rid = request_id(&rotated);
    assert_eq!(rotated.into_inner().primary_version, 2);
    assert_eq!(latest_version(&bao, &name), 3, "a fresh Transit version");
    let event = events_for(&mut audit, &rid)
        .await
        .into_iter()
        .find(|e| e.action == "RotateKey" && e.outcome == "ok")
        .expect("the rotation's outcome event");
    assert_eq!(rotated_by(&event), "keygate", "{}", event.details);

    let sealed = keys
        .encrypt(pb::EncryptRequest {
            key: "native/dek".into(),
            plaintext: b"after".to_vec(),
            associated_data: vec![],
        })
        .await
        .expect("encrypt")
        .into_inner();
    assert_eq!(sealed.key_version, 2);
    assert!(
        String::from_utf8_lossy(&sealed.ciphertext).contains("vault:v3:"),
        "keygate's version 2 is Transit's version 3"
    );

    // The overdue report: a key past its rotation date (the scheduler scans hourly here), and
    // not the key that is not due.
    let mut short = create("native/short", "aes-256-gcm", "root");
    short.crypto_period = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    keys.create_key(short).await.expect("create");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let overdue = keys
        .list_keys(pb::ListKeysRequest {
            rotation_overdue: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let names: Vec<&str> = overdue.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["native/short"]);
    let listed = server
        .cli()
        .args(["key", "list", "--overdue"])
        .output()
        .expect("the CLI runs");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{text}");
    assert!(
        text.contains("native/short") && !text.contains("native/dek"),
        "{text}"
    );
}

const ROOT: &str = "native-rotation-root-token";

fn root_call() -> Call {
    Call {
        request_id: keygate::gateway::new_request_id(),
        client_address: "127.0.0.1:1".into(),
        credentials: Credentials::Bearer(Zeroizing::new(ROOT.as_bytes().to_vec())),
    }
}

async fn scan(gateway: &Arc<Gateway>, at_ms: i64) -> keygate::gateway::ScheduledWork {
    gateway.run_due_work(at_ms, &CancellationToken::new()).await
}

fn versions(gateway: &Gateway, name: &str) -> Vec<(u32, String)> {
    let key = gateway
        .keys_snapshot()
        .into_iter()
        .find(|k| k.name == name)
        .expect("the key");
    key.versions
        .iter()
        .map(|v| (v.version, v.provider_version.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_leaves_a_due_key_to_the_backend_and_rotates_it_only_when_overdue() {
    let bao = start_bao();
    let dir = tempfile::tempdir().unwrap();
    // The token from a file: this test runs the gateway in its own process, and setting an
    // environment variable while the other test spawns its server would not be sound.
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, bao.token()).unwrap();
    let text = config(
        &bao,
        "min_crypto_period = \"1h\"\nprovider_rotation_grace = \"6h\"",
    )
    .replace(
        &format!("{{ env = \"{TOKEN_ENV}\" }}"),
        &format!("{{ file = \"{}\" }}", token_file.display()),
    );
    let mut config = keygate::config::Config::from_toml(&text).expect("config");
    config.storage.data_dir = dir.path().join("data");
    let started = keygate::server::startup::build(&config, Some(ROOT))
        .await
        .expect("gateway");
    let gateway = started.gateway.clone();

    let now = keygate::time::now_ms();
    gateway
        .run(
            root_call(),
            CreateKey {
                name: "sched/dek".into(),
                purpose: String::new(),
                algorithm: "aes-256-gcm".into(),
                owner: "alice".into(),
                environment: String::new(),
                crypto_period: Some(DurationInput {
                    seconds: 7200,
                    nanos: 0,
                }),
                provider: "vault".into(),
                labels: Default::default(),
                ttl: None,
                draft: None,
            },
        )
        .await
        .expect("create");
    let uri = gateway
        .keys_snapshot()
        .into_iter()
        .find(|k| k.name == "sched/dek")
        .expect("the key")
        .provider_uri
        .to_string();
    let name = vault_name(&uri);

    // Due, and Transit has not rotated yet: left to Transit; nothing rotates.
    let due = now + 2 * HOUR_MS + 60_000;
    let work = scan(&gateway, due).await;
    assert_eq!(
        (work.left_to_provider, work.rotated, work.failed),
        (1, 0, 0)
    );
    assert_eq!(latest_version(&bao, &name), 1);
    assert_eq!(versions(&gateway, "sched/dek").len(), 1);

    // A scan half a minute on does not even ask: it looks again after as long as the key has
    // been due (a minute here), at least a scan interval (60 s).
    let work = scan(&gateway, due + 30_000).await;
    assert_eq!(
        (work.left_to_provider, work.rotated, work.failed),
        (0, 0, 0)
    );

    // Transit rotates by itself; the next look adopts its version, and Transit stays at 2.
    transit_rotates_by_itself(&bao, &name);
    let work = scan(&gateway, due + HOUR_MS).await;
    assert_eq!(
        (work.left_to_provider, work.rotated, work.failed),
        (0, 1, 0)
    );
    assert_eq!(latest_version(&bao, &name), 2);
    assert_eq!(
        versions(&gateway, "sched/dek"),
        [(1, "1".to_string()), (2, "2".to_string())]
    );

    // Version 2 comes due and Transit does not rotate it (stopped, say): within the grace
    // keygate still waits; past it, keygate rotates it itself, once.
    let v2_due = keygate::time::now_ms() + 2 * HOUR_MS;
    let work = scan(&gateway, v2_due + HOUR_MS).await;
    assert_eq!((work.left_to_provider, work.rotated), (1, 0));
    let work = scan(&gateway, v2_due + 6 * HOUR_MS + 60_000).await;
    assert_eq!(
        (work.left_to_provider, work.rotated, work.failed),
        (0, 1, 0)
    );
    assert_eq!(latest_version(&bao, &name), 3);
    assert_eq!(versions(&gateway, "sched/dek").len(), 3);
    // Version 3 is not due for another crypto-period: nothing to do or ask before then.
    let work = scan(&gateway, keygate::time::now_ms() + HOUR_MS).await;
    assert_eq!((work.left_to_provider, work.rotated), (0, 0));

    gateway.drain(std::time::Duration::from_secs(5)).await;
    started.audit.shutdown().await;
}
