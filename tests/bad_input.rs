//! Every bad input gets its gRPC code and a message that says what was wrong; a failed call
//! changes nothing but the audit log.

mod common;

use common::{ROOT_TOKEN, Server, ServerOptions, create, events_for, status_request_id};
use keygate::pb;
use tonic::Code;

const NOBODY_TOKEN: &str = "kg_test_nobody_token_0123456789";

fn server(dir: &std::path::Path) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        "[[tokens]]\nprincipal = \"nobody\"\nkind = \"user\"\nroles = []\ntoken = { env = \"NOBODY_TOKEN\" }\n",
    )
    .unwrap();
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![("NOBODY_TOKEN".into(), NOBODY_TOKEN.into())],
            ..Default::default()
        },
    )
}

fn expect<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    says: &str,
) -> tonic::Status {
    let s = r.expect_err("expected an error");
    assert_eq!(s.code(), code, "{s:?}");
    assert!(
        s.message().to_lowercase().contains(&says.to_lowercase()),
        "message {:?} does not mention {says:?}",
        s.message()
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_input_has_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let mut keys = server.root().await;
    keys.create_key(create("enc", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    keys.create_key(create("sig", "ecdsa-p256", "alice"))
        .await
        .unwrap();
    let ct = keys
        .encrypt(pb::EncryptRequest {
            key: "enc".into(),
            plaintext: b"hello".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext;

    // Unknown key.
    expect(
        keys.encrypt(pb::EncryptRequest {
            key: "nope".into(),
            plaintext: b"x".to_vec(),
            associated_data: vec![],
        })
        .await,
        Code::NotFound,
        "nope",
    );
    // Wrong purpose.
    expect(
        keys.sign(pb::SignRequest {
            key: "enc".into(),
            input: Some(pb::sign_request::Input::Message(b"x".to_vec())),
        })
        .await,
        Code::FailedPrecondition,
        "needs a sign key",
    );
    expect(
        keys.encrypt(pb::EncryptRequest {
            key: "sig".into(),
            plaintext: b"x".to_vec(),
            associated_data: vec![],
        })
        .await,
        Code::FailedPrecondition,
        "needs a encrypt key",
    );
    // Corrupted, truncated, foreign ciphertexts.
    let mut corrupted = ct.clone();
    let n = corrupted.len();
    corrupted[n - 3] ^= 0x40;
    expect(
        keys.decrypt(pb::DecryptRequest {
            ciphertext: corrupted,
            associated_data: vec![],
        })
        .await,
        Code::InvalidArgument,
        "authentication",
    );
    expect(
        keys.decrypt(pb::DecryptRequest {
            ciphertext: ct[..20].to_vec(),
            associated_data: vec![],
        })
        .await,
        Code::InvalidArgument,
        "truncated",
    );
    expect(
        keys.decrypt(pb::DecryptRequest {
            ciphertext: b"not a ciphertext at all".to_vec(),
            associated_data: vec![],
        })
        .await,
        Code::InvalidArgument,
        "not a keygate ciphertext",
    );
    let mut foreign = ct.clone();
    foreign[5] ^= 0xff; // inside the key id
    expect(
        keys.decrypt(pb::DecryptRequest {
            ciphertext: foreign,
            associated_data: vec![],
        })
        .await,
        Code::InvalidArgument,
        "does not hold",
    );
    let mut wrong_version = ct.clone();
    wrong_version[22] = 9;
    expect(
        keys.decrypt(pb::DecryptRequest {
            ciphertext: wrong_version,
            associated_data: vec![],
        })
        .await,
        Code::InvalidArgument,
        "version 9",
    );
    expect(
        keys.decrypt(pb::DecryptRequest {
            ciphertext: vec![],
            associated_data: vec![],
        })
        .await,
        Code::InvalidArgument,
        "not a keygate ciphertext",
    );
    // Oversized plaintext names the limit.
    expect(
        keys.encrypt(pb::EncryptRequest {
            key: "enc".into(),
            plaintext: vec![0; 64 * 1024 + 1],
            associated_data: vec![],
        })
        .await,
        Code::InvalidArgument,
        "65536",
    );
    // A message over the transport limit is refused before any handler.
    let huge = keys
        .encrypt(pb::EncryptRequest {
            key: "enc".into(),
            plaintext: vec![0; 2 * 1024 * 1024],
            associated_data: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::ResourceExhausted, "{huge:?}");
    // Disabled and pending destruction.
    keys.disable_key(pb::DisableKeyRequest { key: "enc".into() })
        .await
        .unwrap();
    expect(
        keys.decrypt(pb::DecryptRequest {
            ciphertext: ct.clone(),
            associated_data: vec![],
        })
        .await,
        Code::FailedPrecondition,
        "disabled",
    );
    keys.schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
        family: false,
        key: "enc".into(),
        pending_window: None,
    })
    .await
    .unwrap();
    expect(
        keys.decrypt(pb::DecryptRequest {
            ciphertext: ct.clone(),
            associated_data: vec![],
        })
        .await,
        Code::FailedPrecondition,
        "pending destruction",
    );
    // Window below the minimum.
    expect(
        keys.schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
            family: false,
            key: "sig".into(),
            pending_window: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        })
        .await,
        Code::InvalidArgument,
        "outside the allowed range",
    );
    // Creation without owner or crypto-period, bad names, unknown algorithm.
    let mut no_owner = create("k1", "aes-256-gcm", "");
    no_owner.owner.clear();
    expect(
        keys.create_key(no_owner).await,
        Code::InvalidArgument,
        "owner",
    );
    let mut no_period = create("k2", "aes-256-gcm", "alice");
    no_period.crypto_period = None;
    expect(
        keys.create_key(no_period).await,
        Code::InvalidArgument,
        "crypto-period",
    );
    expect(
        keys.create_key(create("k3", "aes-256-gcm", "team:payments"))
            .await,
        Code::InvalidArgument,
        "team",
    );
    expect(
        keys.create_key(create("Bad Name", "aes-256-gcm", "alice"))
            .await,
        Code::InvalidArgument,
        "not valid",
    );
    expect(
        keys.create_key(create("k4", "aes-128-ecb", "alice")).await,
        Code::InvalidArgument,
        "unknown algorithm",
    );
    expect(
        keys.create_key(create("sig", "ecdsa-p256", "alice")).await,
        Code::AlreadyExists,
        "already exists",
    );
    let mut mismatch = create("k5", "ecdsa-p256", "alice");
    mismatch.purpose = "encrypt".into();
    expect(
        keys.create_key(mismatch).await,
        Code::InvalidArgument,
        "does not fit",
    );

    // No token, bad token, policy denial.
    let mut anonymous = server.keys("").await;
    expect(
        anonymous
            .get_key(pb::GetKeyRequest {
                key: "sig".into(),
                usage: false,
            })
            .await,
        Code::Unauthenticated,
        "no bearer token",
    );
    let mut forged = server.keys("kg_not_a_real_token_at_all_xxxx").await;
    expect(
        forged
            .get_key(pb::GetKeyRequest {
                key: "sig".into(),
                usage: false,
            })
            .await,
        Code::Unauthenticated,
        "not valid",
    );
    let mut nobody = server.keys(NOBODY_TOKEN).await;
    let denied = expect(
        nobody
            .sign(pb::SignRequest {
                key: "sig".into(),
                input: Some(pb::sign_request::Input::Message(b"x".to_vec())),
            })
            .await,
        // A key it may not read answers as a missing one; the audit event keeps the denial.
        Code::NotFound,
        "no key named or with id 'sig'",
    );
    // The denial is audited, with its request id and the policy decision.
    let mut audit = server.audit(ROOT_TOKEN).await;
    let events = events_for(&mut audit, &status_request_id(&denied)).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].outcome.as_str(),
            events[0].actor.as_str(),
            events[0].action.as_str()
        ),
        ("denied", "nobody", "Sign")
    );
    assert!(events[0].policy.starts_with("deny"), "{}", events[0].policy);

    // Nothing but the audit log changed: only the two keys exist, in the states set above.
    let listed = keys
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .keys;
    // (Beside keygate's own audit signing key, made at start-up.)
    let names: Vec<&str> = listed
        .iter()
        .map(|k| k.name.as_str())
        .filter(|n| *n != "keygate/audit-checkpoints")
        .collect();
    assert_eq!(names, ["enc", "sig"]);
    let sig = listed.iter().find(|k| k.name == "sig").unwrap();
    assert_eq!((sig.state.as_str(), sig.primary_version), ("enabled", 1));
    // Every failed call above is in the audit log as denied or error.
    let failures = audit
        .query(pb::AuditQueryRequest {
            outcome: "error".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(failures.len() >= 18, "only {} error events", failures.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_overrides_the_configured_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            env: vec![
                ("KEYGATE_LIMITS__MAX_PLAINTEXT_BYTES".into(), "100".into()),
                // Client-side variables are not settings and must not stop the server.
                ("KEYGATE_TOKEN".into(), "client-token-not-a-setting".into()),
            ],
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    keys.create_key(create("small", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    keys.encrypt(pb::EncryptRequest {
        key: "small".into(),
        plaintext: vec![1; 100],
        associated_data: vec![],
    })
    .await
    .unwrap();
    expect(
        keys.encrypt(pb::EncryptRequest {
            key: "small".into(),
            plaintext: vec![1; 101],
            associated_data: vec![],
        })
        .await,
        Code::InvalidArgument,
        "the limit is 100 bytes",
    );
}
