//! What a caller learns about keys it may not see: a refusal on a key it may not read
//! (GetKey) is answered exactly as a name that does not exist, while the audit log keeps the
//! refusal; and CreateKey names the configured providers only to a caller allowed to create.

mod common;

use common::team::{self, create_in, error_info};
use keygate::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_caller_may_not_see_answers_as_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    server
        .keys_as("alice")
        .await
        .create_key(create_in("prod/secret", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .expect("a prod key");

    // svc-dev may act only in dev: the prod key is as invisible to it as one never made.
    let mut dev = server.keys_as("svc-dev").await;
    let encrypt = |key: &str| pb::EncryptRequest {
        key: key.into(),
        plaintext: b"probe".to_vec(),
        associated_data: Vec::new(),
    };
    let existing = dev.encrypt(encrypt("prod/secret")).await.unwrap_err();
    let missing = dev.encrypt(encrypt("prod/absent")).await.unwrap_err();
    assert_eq!(existing.code(), Code::NotFound, "{existing:?}");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(
        existing.message().replace("prod/secret", "NAME"),
        missing.message().replace("prod/absent", "NAME")
    );
    assert_eq!(error_info(&existing), error_info(&missing));
    for key in ["prod/secret", "prod/absent"] {
        let err = dev
            .get_key(pb::GetKeyRequest {
                key: key.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{key}: {err:?}");
        let err = dev
            .rotate_key(pb::RotateKeyRequest {
                key: key.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{key}: {err:?}");
    }

    // The audit log records what really happened: a denial by environment isolation.
    let id = common::status_request_id(&existing);
    let mut audit = server.audit_as("dave").await;
    let events = common::events_for(&mut audit, &id).await;
    let event = events.last().expect("the refusal's event");
    assert_eq!(event.outcome, "denied", "{event:?}");
    assert_eq!(event.error_reason, "POLICY_DENIED", "{event:?}");
    assert!(event.reason.contains("environment"), "{event:?}");

    // A caller that may read the key hears the real refusal, reason and all.
    let err = server
        .keys_as("svc-pay")
        .await
        .rotate_key(pb::RotateKeyRequest {
            key: "prod/secret".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn create_key_names_the_providers_only_to_a_caller_allowed_to_create() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let request = || pb::CreateKeyRequest {
        provider: "elsewhere".into(),
        ..create_in("dev/probe", "aes-256-gcm", "svc-dev", "dev")
    };
    // A key user may not create keys: it learns that, not which providers exist.
    let err = server
        .keys_as("svc-dev")
        .await
        .create_key(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(!err.message().contains("configured"), "{}", err.message());
    // A key admin of dev is told what is configured.
    let err = server
        .keys_as("bob")
        .await
        .create_key(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("configured: local"),
        "{}",
        err.message()
    );
}
