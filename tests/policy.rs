//! The default policies through the API: default deny, owners use their keys, key-users use
//! keys, only key admins manage keys, auditors read the audit log; denials are audited.

mod common;

use common::{ROOT_TOKEN, Server, ServerOptions, create};
use keygate::pb;
use tonic::Code;

const ALICE: &str = "kg_test_alice_0123456789abcdef";
const BOB: &str = "kg_test_bob_0123456789abcdef00";
const ADMIN: &str = "kg_test_admin_0123456789abcdef";
const AUDITOR: &str = "kg_test_auditor_0123456789abcd";

fn server(dir: &std::path::Path) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        r#"
[[tokens]]
principal = "alice"
kind = "user"
token = { env = "ALICE_TOKEN" }

[[tokens]]
principal = "svc-batch"
kind = "service-account"
roles = ["key-user"]
token = { env = "BOB_TOKEN" }

[[tokens]]
principal = "carol"
kind = "user"
roles = ["key-admin"]
token = { file = "ADMIN_FILE" }

[[tokens]]
principal = "dave"
kind = "user"
roles = ["auditor"]
token = { env = "AUDITOR_TOKEN" }
"#
        .replace("ADMIN_FILE", &dir.join("admin.token").display().to_string()),
    )
    .unwrap();
    std::fs::write(dir.join("admin.token"), format!("{ADMIN}\n")).unwrap();
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![
                ("ALICE_TOKEN".into(), ALICE.into()),
                ("BOB_TOKEN".into(), BOB.into()),
                ("AUDITOR_TOKEN".into(), AUDITOR.into()),
            ],
            ..Default::default()
        },
    )
}

fn mac(key: &str) -> pb::GenerateMacRequest {
    pb::GenerateMacRequest {
        key: key.into(),
        message: b"m".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn default_policies_separate_duties() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let mut admin = server.keys(ADMIN).await;
    let mut alice = server.keys(ALICE).await;
    let mut batch = server.keys(BOB).await;
    let mut auditor_keys = server.keys(AUDITOR).await;

    // Only key admins create keys.
    let denied = alice
        .create_key(create("alice/own", "hmac-sha256", "alice"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    admin
        .create_key(create("alice/own", "hmac-sha256", "alice"))
        .await
        .unwrap();
    admin
        .create_key(create("other/key", "hmac-sha256", "erin"))
        .await
        .unwrap();

    // Owners use their own keys, not others'.
    alice.generate_mac(mac("alice/own")).await.unwrap();
    assert_eq!(
        alice
            .generate_mac(mac("other/key"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Owners do not administer their keys.
    assert_eq!(
        alice
            .rotate_key(pb::RotateKeyRequest {
                key: "alice/own".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // A key-user service account uses any key.
    batch.generate_mac(mac("other/key")).await.unwrap();
    assert_eq!(
        batch
            .disable_key(pb::DisableKeyRequest {
                key: "other/key".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Admins manage keys but do not use them.
    admin
        .rotate_key(pb::RotateKeyRequest {
            key: "other/key".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        admin
            .generate_mac(mac("other/key"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Auditors read the log and the catalog, and use no key.
    assert_eq!(
        auditor_keys
            .generate_mac(mac("other/key"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    auditor_keys
        .get_key(pb::GetKeyRequest {
            key: "other/key".into(),
        })
        .await
        .unwrap();
    let mut auditor = server.audit(AUDITOR).await;
    let denials = auditor
        .query(pb::AuditQueryRequest {
            outcome: "denied".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(denials.len() >= 6, "{denials:?}");
    assert!(
        denials
            .iter()
            .any(|e| e.actor == "alice" && e.action == "CreateKey")
    );
    // Nobody but auditors (and dev root) reads the audit log.
    let mut alice_audit = server.audit(ALICE).await;
    assert_eq!(
        alice_audit
            .query(pb::AuditQueryRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // ListKeys shows only what the caller may see.
    let visible = alice
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(
        visible.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["alice/own"]
    );
    // Dev root still has every role.
    let mut root = server.root().await;
    root.generate_mac(mac("other/key")).await.unwrap();
    let _ = ROOT_TOKEN;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_policy_folder_replaces_the_defaults_and_bad_policies_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    // Only auditing is allowed: even dev root cannot create keys.
    std::fs::write(
        policies.join("only-audit.cedar"),
        "@id(\"audit-only\")\npermit (principal in Keygate::Role::\"auditor\", action in Keygate::Action::\"AuditRead\", resource);\n",
    )
    .unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!("[policy]\ndir = \"{}\"\n", policies.display()),
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config.clone()),
            ..Default::default()
        },
    );
    let mut root = server.root().await;
    let err = root
        .create_key(create("x", "aes-256-gcm", "alice"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    drop(server);

    // A policy that does not validate against the schema is refused at start, by file.
    std::fs::write(
        policies.join("bad.cedar"),
        "permit (principal, action, resource) when { resource.colour == \"red\" };\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::keygate_bin())
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("do not validate") || stderr.contains("bad.cedar"),
        "{stderr}"
    );
}
