//! The AWS KMS provider end to end through the gRPC API, against a real LocalStack: the
//! conformance suite for every key type, rotation, discovery of keys made outside keygate,
//! bad input, provider request ids in the audit log, and an outage.
//!
//! LocalStack takes ~25 s to start, so each test fn starts one and runs several checks in order.
//!
//! LocalStack 4.10 gaps that bound what is checked here (real KMS behaves as the comments say):
//! - RSA-OAEP: its Encrypt under an RSA key does not do RSA-OAEP, it returns its own symmetric
//!   blob. Round trips, tampering and the purpose checks still run through the gateway, but
//!   nothing here proves the ciphertext is RSA-OAEP (it cannot be opened with the public key).
//! - No ListKeyRotations: the provider counts rotations itself (see the provider's tests).
//! - No throttling, so RESOURCE_EXHAUSTED is covered at the provider level with a fake endpoint.

mod common;

use common::{Server, ServerOptions, create, events_for, request_id, status_request_id, suite};
use keygate::pb;
use keygate_test_backends::localstack::LocalStack;
use std::path::Path;
use std::time::Instant;
use tonic::Code;

const PROVIDER: &str = "aws";
const REGION: &str = "us-east-1";
/// The server reads LocalStack's dummy credentials from these (the config names them only).
/// Not KEYGATE_*: the server takes that prefix as configuration.
const KEY_ID_VAR: &str = "E2E_AWS_ACCESS_KEY_ID";
const SECRET_VAR: &str = "E2E_AWS_SECRET_ACCESS_KEY";

const AWS_ALGORITHMS: &[&str] = &[
    "aes-256-gcm",
    "rsa-2048-oaep",
    "rsa-3072-oaep",
    "rsa-4096-oaep",
    "rsa-2048-pss",
    "rsa-3072-pss",
    "rsa-4096-pss",
    "rsa-2048-pkcs1",
    "rsa-3072-pkcs1",
    "rsa-4096-pkcs1",
    "ecdsa-p256",
    "ecdsa-p384",
    "hmac-sha256",
];

/// AWS KMS rotates only symmetric encryption keys.
const NOT_ROTATABLE: &[&str] = &[
    "rsa-2048-oaep",
    "rsa-3072-oaep",
    "rsa-4096-oaep",
    "rsa-2048-pss",
    "rsa-3072-pss",
    "rsa-4096-pss",
    "rsa-2048-pkcs1",
    "rsa-3072-pkcs1",
    "rsa-4096-pkcs1",
    "ecdsa-p256",
    "ecdsa-p384",
    "hmac-sha256",
];

async fn start_localstack() -> LocalStack {
    match tokio::task::spawn_blocking(LocalStack::start).await {
        Ok(Ok(ls)) => ls,
        Ok(Err(e)) => panic!("LocalStack could not be started: {e}"),
        Err(e) => panic!("LocalStack start-up task failed: {e}"),
    }
}

/// A gateway whose `aws` provider is LocalStack, credentials referenced by variable name.
fn start_gateway(dir: &Path, endpoint: &str) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[providers.aws]
kind = "aws-kms"
region = "{REGION}"
endpoint_url = "{endpoint}"
credentials = {{ source = "env", access_key_id_env = "{KEY_ID_VAR}", secret_access_key_env = "{SECRET_VAR}" }}
"#
        ),
    )
    .expect("write config");
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![
                (KEY_ID_VAR.into(), "test".into()),
                (SECRET_VAR.into(), "test".into()),
            ],
            ..Default::default()
        },
    )
}

fn on_aws(name: &str, algorithm: &str) -> pb::CreateKeyRequest {
    let mut req = create(name, algorithm, "root");
    req.provider = PROVIDER.into();
    req
}

/// An AWS request id is a UUID (8-4-4-4-12 hex digits).
fn looks_like_aws_request_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_kms_through_the_grpc_api() {
    let ls = start_localstack().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_gateway(dir.path(), &ls.endpoint());
    let mut keys = server.root().await;

    suite::run_with(
        &mut keys,
        PROVIDER,
        "aws",
        AWS_ALGORITHMS,
        suite::Options {
            cannot_rotate: NOT_ROTATABLE,
        },
    )
    .await;
    println!("ok: the gRPC suite passes for every AWS key type");

    rotation_keeps_old_ciphertexts(&mut keys).await;
    println!("ok: a ciphertext from before a rotation decrypts after it");

    keys_made_outside_keygate_are_unmanaged(&server, &ls, &mut keys).await;
    println!("ok: the inventory tells keygate's keys from others");

    bad_input_is_invalid_argument(&mut keys).await;
    println!("ok: bad input is INVALID_ARGUMENT with a message naming the limit");

    encrypt_is_audited_with_the_aws_request_id(&server, &mut keys).await;
    println!("ok: the audit event carries the AWS request id");
    drop(ls);
}

async fn rotation_keeps_old_ciphertexts(keys: &mut common::Keys) {
    keys.create_key(on_aws("rotation/dek", "aes-256-gcm"))
        .await
        .expect("create");
    let before = keys
        .encrypt(pb::EncryptRequest {
            key: "rotation/dek".into(),
            plaintext: b"card 4111 1111 1111 1111".to_vec(),
            associated_data: b"order-7".to_vec(),
        })
        .await
        .expect("encrypt before rotation")
        .into_inner();
    assert_eq!(before.key_version, 1);
    for expected in [2, 3] {
        let rotated = keys
            .rotate_key(pb::RotateKeyRequest {
                key: "rotation/dek".into(),
                ..Default::default()
            })
            .await
            .expect("rotate")
            .into_inner();
        assert_eq!(rotated.primary_version, expected);
    }
    let key = keys
        .get_key(pb::GetKeyRequest {
            key: "rotation/dek".into(),
            usage: false,
        })
        .await
        .expect("get key")
        .into_inner();
    assert_eq!(key.primary_version, 3);
    assert_eq!(key.versions.len(), 3, "{:?}", key.versions);
    let opened = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: before.ciphertext,
            associated_data: b"order-7".to_vec(),
        })
        .await
        .expect("old ciphertext decrypts after two rotations")
        .into_inner();
    assert_eq!(opened.plaintext, b"card 4111 1111 1111 1111");
    assert_eq!(opened.key_version, 1);
    let after = keys
        .encrypt(pb::EncryptRequest {
            key: "rotation/dek".into(),
            plaintext: b"x".to_vec(),
            associated_data: Vec::new(),
        })
        .await
        .expect("encrypt after rotation")
        .into_inner();
    assert_eq!(
        after.key_version, 3,
        "new ciphertexts use the newest version"
    );
}

async fn keys_made_outside_keygate_are_unmanaged(
    server: &Server,
    ls: &LocalStack,
    keys: &mut common::Keys,
) {
    // Straight to LocalStack with the SDK: keygate never hears of this key.
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(REGION))
        .endpoint_url(ls.endpoint())
        .credentials_provider(aws_credential_types::Credentials::from_keys(
            "test", "test", None,
        ))
        .build();
    let sdk = aws_sdk_kms::Client::from_conf(config);
    let made = sdk
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .description("made outside keygate")
        .send()
        .await
        .unwrap_or_else(|e| panic!("SDK CreateKey: {e:?}"));
    let arn = made
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("CreateKey returns the ARN")
        .to_string();
    let ours = keys
        .create_key(on_aws("inventory/ours", "hmac-sha256"))
        .await
        .expect("create")
        .into_inner();

    let mut admin = server.admin(common::ROOT_TOKEN).await;
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_inventory(pb::ListInventoryRequest {
                provider: PROVIDER.into(),
                page_size: 10,
                page_token,
            })
            .await
            .expect("list inventory")
            .into_inner();
        listed.extend(page.keys);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let foreign_uri = format!("awskms:///{arn}");
    let foreign = listed
        .iter()
        .find(|k| k.provider_uri == foreign_uri)
        .unwrap_or_else(|| panic!("{foreign_uri} not in the inventory: {listed:#?}"));
    assert!(!foreign.managed, "{foreign:?}");
    assert!(foreign.key_id.is_empty() && foreign.key_name.is_empty());
    assert_eq!(
        (foreign.algorithm.as_str(), foreign.state.as_str()),
        ("ecdsa-p256", "enabled")
    );
    let mine = listed
        .iter()
        .find(|k| k.provider_uri == ours.provider_uri)
        .unwrap_or_else(|| panic!("{} not in the inventory", ours.provider_uri));
    assert!(mine.managed, "{mine:?}");
    assert_eq!(
        (mine.key_name.as_str(), mine.key_id.as_str()),
        ("inventory/ours", ours.id.as_str())
    );
    // Every key the suite made through keygate is managed too.
    let managed = listed.iter().filter(|k| k.managed).count();
    assert!(managed > AWS_ALGORITHMS.len(), "{managed} managed keys");
}

async fn bad_input_is_invalid_argument(keys: &mut common::Keys) {
    keys.create_key(on_aws("bad/dek", "aes-256-gcm"))
        .await
        .expect("create");
    keys.create_key(on_aws("bad/rsa", "rsa-2048-oaep"))
        .await
        .expect("create");
    keys.create_key(on_aws("bad/p256", "ecdsa-p256"))
        .await
        .expect("create");
    let encrypt = |key: &str, plaintext: Vec<u8>, aad: &[u8]| pb::EncryptRequest {
        key: key.into(),
        plaintext,
        associated_data: aad.to_vec(),
    };

    // Within the gateway's 64 KiB but over KMS's 4096 bytes: the provider refuses it before
    // sending, and says which limit.
    let err = keys
        .encrypt(encrypt("bad/dek", vec![7; 4097], b""))
        .await
        .expect_err("4097 bytes accepted");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("4096") && err.message().contains("4097"),
        "{}",
        err.message()
    );
    // Exactly the limit goes through.
    keys.encrypt(encrypt("bad/dek", vec![7; 4096], b""))
        .await
        .expect("4096 bytes");
    // Over the gateway's own limit: refused before the provider is asked.
    let err = keys
        .encrypt(encrypt("bad/dek", vec![7; 64 * 1024 + 1], b""))
        .await
        .expect_err("64 KiB + 1 accepted");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("65536"), "{}", err.message());

    // RSA-OAEP takes no associated data, and at most 190 bytes under a 2048-bit key.
    let err = keys
        .encrypt(encrypt("bad/rsa", b"x".to_vec(), b"aad"))
        .await
        .expect_err("AAD with RSA accepted");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = keys
        .encrypt(encrypt("bad/rsa", vec![1; 191], b""))
        .await
        .expect_err("191 bytes under RSA-2048-OAEP accepted");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("190"), "{}", err.message());

    // A digest of the wrong length for the key's hash.
    let err = keys
        .sign(pb::SignRequest {
            key: "bad/p256".into(),
            input: Some(pb::sign_request::Input::Digest(vec![0; 20])),
        })
        .await
        .expect_err("20-byte digest accepted");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("32"), "{}", err.message());
    // The right length signs, and the signature verifies over the message.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"hello");
    let sig = keys
        .sign(pb::SignRequest {
            key: "bad/p256".into(),
            input: Some(pb::sign_request::Input::Digest(digest.as_ref().to_vec())),
        })
        .await
        .expect("sign digest")
        .into_inner();
    let valid = keys
        .verify(pb::VerifyRequest {
            key: "bad/p256".into(),
            input: Some(pb::verify_request::Input::Message(b"hello".to_vec())),
            signature: sig.signature,
            key_version: 0,
        })
        .await
        .expect("verify")
        .into_inner()
        .valid;
    assert!(valid);

    // An algorithm AWS KMS does not offer is refused at creation, naming the provider.
    let err = keys
        .create_key(on_aws("bad/ed", "ed25519"))
        .await
        .expect_err("ed25519 on AWS accepted");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("'aws'"), "{}", err.message());

    // A deletion window outside KMS's 7 to 30 days.
    let err = keys
        .schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
            family: false,
            key: "bad/dek".into(),
            pending_window: common::days(45),
        })
        .await
        .expect_err("45-day window accepted");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("30"), "{}", err.message());
}

async fn encrypt_is_audited_with_the_aws_request_id(server: &Server, keys: &mut common::Keys) {
    let reply = keys
        .encrypt(pb::EncryptRequest {
            key: "rotation/dek".into(),
            plaintext: b"audit me".to_vec(),
            associated_data: Vec::new(),
        })
        .await
        .expect("encrypt");
    let id = request_id(&reply);
    assert!(!id.is_empty(), "no x-request-id on the reply");
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let events = events_for(&mut audit, &id).await;
    let event = events
        .iter()
        .find(|e| e.action == "Encrypt")
        .unwrap_or_else(|| panic!("no Encrypt event for {id}: {events:?}"));
    assert_eq!(event.outcome, "ok");
    assert!(
        looks_like_aws_request_id(&event.provider_request_id),
        "provider_request_id {:?} is not an AWS request id",
        event.provider_request_id
    );
    assert_ne!(
        event.provider_request_id, id,
        "the gateway's own id is not the provider's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aws_outage_is_unavailable_audited_and_recovers() {
    let mut ls = start_localstack().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_gateway(dir.path(), &ls.endpoint());
    let mut keys = server.root().await;
    keys.create_key(on_aws("outage/dek", "aes-256-gcm"))
        .await
        .expect("create");
    let encrypt = |key: &str| pb::EncryptRequest {
        key: key.into(),
        plaintext: b"during the outage".to_vec(),
        associated_data: Vec::new(),
    };
    keys.encrypt(encrypt("outage/dek"))
        .await
        .expect("encrypt before the outage");

    ls.stop();
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    for attempt in 0..2 {
        let started = Instant::now();
        let err = keys
            .encrypt(encrypt("outage/dek"))
            .await
            .expect_err("encrypt succeeded with LocalStack down");
        let took = started.elapsed();
        assert_eq!(err.code(), Code::Unavailable, "attempt {attempt}: {err:?}");
        assert!(
            err.message().contains("aws") && err.message().contains("could not reach AWS KMS"),
            "{}",
            err.message()
        );
        println!("   outage answered in {took:?}: {}", err.message());
        let id = status_request_id(&err);
        assert!(!id.is_empty(), "no x-request-id on the error");
        let events = events_for(&mut audit, &id).await;
        let event = events
            .iter()
            .find(|e| e.action == "Encrypt")
            .unwrap_or_else(|| panic!("the failed call was not audited: {events:?}"));
        assert_eq!(event.outcome, "error", "{event:?}");
        assert!(!event.reason.is_empty(), "{event:?}");
    }
    println!("ok: an outage is UNAVAILABLE within 5 s and audited as an error");

    let ls = tokio::task::spawn_blocking(move || ls.start_again().map(|()| ls))
        .await
        .expect("restart task")
        .unwrap_or_else(|e| panic!("LocalStack did not start again: {e}"));
    // LocalStack keeps no state across a restart, so the old key is gone from it: a fresh key
    // shows the provider is usable again.
    keys.create_key(on_aws("outage/fresh", "aes-256-gcm"))
        .await
        .expect("create after recovery");
    let sealed = keys
        .encrypt(pb::EncryptRequest {
            key: "outage/fresh".into(),
            plaintext: b"back".to_vec(),
            associated_data: Vec::new(),
        })
        .await
        .expect("encrypt after recovery")
        .into_inner();
    let opened = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: sealed.ciphertext,
            associated_data: Vec::new(),
        })
        .await
        .expect("decrypt after recovery")
        .into_inner();
    assert_eq!(opened.plaintext, b"back");
    println!("ok: calls succeed again once LocalStack is back");
    drop(ls);
}
