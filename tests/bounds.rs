//! Bounds on what a caller or a file can make keygate hold: one decode limit for every
//! service, labels per key (count, key and value sizes), and the Argon2id parameters read
//! back from the local provider's `master.json`.

mod common;

use common::{ROOT_TOKEN, Server, ServerOptions, create, team};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn labels_are_bounded_in_count_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;

    let mut many = create("labels/many", "aes-256-gcm", "alice");
    for i in 0..65 {
        many.labels.insert(format!("label-{i}"), "x".into());
    }
    let err = keys.create_key(many).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("65 labels") && err.message().contains("at most 64"),
        "{}",
        err.message()
    );

    // A request near the message limit: 3,000 labels of ~300 bytes each.
    let mut huge = create("labels/huge", "aes-256-gcm", "alice");
    for i in 0..3_000 {
        huge.labels.insert(format!("k{i:05}"), "v".repeat(256));
    }
    let err = keys.create_key(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let mut long_value = create("labels/long", "aes-256-gcm", "alice");
    long_value.labels.insert("note".into(), "v".repeat(257));
    let err = keys.create_key(long_value).await.unwrap_err();
    assert!(
        err.code() == Code::InvalidArgument && err.message().contains("at most 256 bytes"),
        "{err:?}"
    );
    let mut control = create("labels/control", "aes-256-gcm", "alice");
    control.labels.insert("note".into(), "line\nbreak".into());
    assert_eq!(
        keys.create_key(control).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut bad_key = create("labels/bad-key", "aes-256-gcm", "alice");
    bad_key.labels.insert("Team Name".into(), "payments".into());
    let err = keys.create_key(bad_key).await.unwrap_err();
    assert!(err.message().contains("label key"), "{err:?}");

    // None of them left a key behind; 64 well-formed labels are fine.
    for name in [
        "labels/many",
        "labels/huge",
        "labels/long",
        "labels/control",
    ] {
        let err = keys
            .get_key(keygate::pb::GetKeyRequest {
                key: name.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{name}");
    }
    let mut most = create("labels/most", "aes-256-gcm", "alice");
    for i in 0..64 {
        most.labels.insert(format!("label-{i}"), "v".repeat(256));
    }
    let key = keys.create_key(most).await.unwrap().into_inner();
    assert_eq!(key.labels.len(), 64);
}

const PASSPHRASE: (&str, &str) = ("KG_TEST_PASSPHRASE", "a passphrase for the bounds tests");

fn production(dir: &Path) -> ServerOptions {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.local]\nkind = \"local\"\npassphrase = {{ env = \"{}\" }}\n\n{}",
            PASSPHRASE.0,
            team::tokens_config()
        ),
    )
    .unwrap();
    let mut env: Vec<(String, String)> = team::PEOPLE
        .iter()
        .map(|(name, ..)| {
            (
                format!("KG_TEST_TOKEN_{}", name.replace('-', "_").to_uppercase()),
                team::token(name),
            )
        })
        .collect();
    env.push((PASSPHRASE.0.into(), PASSPHRASE.1.into()));
    ServerOptions {
        dev: false,
        config: Some(config),
        env,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_master_json_is_refused_before_deriving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let options = production(dir.path());
    let mut server = Server::start_with(&data, production(dir.path()));
    server
        .keys_as("bob")
        .await
        .create_key(create("tamper/k", "aes-256-gcm", "olga"))
        .await
        .ok();
    server.stop_gracefully();
    drop(server);

    let master = data.join("providers/local/master.json");
    let original = std::fs::read_to_string(&master).expect("master.json");
    let mut file: serde_json::Value = serde_json::from_str(&original).unwrap();
    assert_eq!(file["kind"], "argon2id", "{original}");
    // 4 TiB of memory: Argon2id would try to allocate it at start-up.
    file["memory_kib"] = serde_json::json!(u32::MAX);
    std::fs::write(&master, serde_json::to_vec(&file).unwrap()).unwrap();

    let stderr = refused(&data, &options);
    assert!(
        stderr.contains("master.json")
            && stderr.contains("memory_kib is 4294967295")
            && stderr.contains("the file was changed"),
        "{stderr}"
    );
    file["memory_kib"] = serde_json::json!(64 * 1024);
    file["iterations"] = serde_json::json!(1_000_000);
    std::fs::write(&master, serde_json::to_vec(&file).unwrap()).unwrap();
    let stderr = refused(&data, &options);
    assert!(stderr.contains("iterations is 1000000"), "{stderr}");

    // Restored, the store opens again with the passphrase.
    std::fs::write(&master, original).unwrap();
    let server = Server::start_with(&data, options);
    assert!(server.output().contains("keygate listening on"));
}

/// `keygate serve` with `options` that must stop with an error; its stderr.
fn refused(data: &Path, options: &ServerOptions) -> String {
    let mut cmd = Command::new(common::keygate_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(options.config.as_ref().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in &options.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn keygate");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("keygate started on a tampered master.json");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_decodes_at_most_one_mebibyte() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    // 2 MiB: under tonic's default of 4 MiB, over keygate's 1 MiB. Sent with a valid token:
    // without one the call is refused before its message is read at all
    // (tests/auth_before_decode.rs).
    let big = "x".repeat(2 * 1024 * 1024);
    let mut admin = server.admin(ROOT_TOKEN).await;
    let err = admin
        .explain_policy(keygate::pb::ExplainPolicyRequest {
            principal: big.clone(),
            action: "Encrypt".into(),
            key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let mut approvals = server.approvals(ROOT_TOKEN).await;
    let err = approvals
        .get_approval(keygate::pb::GetApprovalRequest { id: big.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let mut keys = server.keys(ROOT_TOKEN).await;
    let err = keys
        .get_key(keygate::pb::GetKeyRequest {
            key: big,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
}
