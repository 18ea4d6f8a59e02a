//! The Google Cloud KMS provider end to end through the gRPC API, against the Cloud KMS
//! emulator (started in this process; the gateway runs as its own `keygate serve` process and
//! reaches it over HTTP through Google's official SDK): the gRPC suite for every key type,
//! rotation and ReEncrypt, the request id joining keygate's audit log to Cloud Audit Logs,
//! a corrupted checksum, destruction and its cancellation as Cloud KMS sees them, keys made
//! outside keygate in the inventory, and an outage and throttling survived without a restart.

mod common;

use common::{Server, ServerOptions, create, events_for, request_id, status_request_id, suite};
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState as VState;
use google_cloud_kms_v1::model::{
    CryptoKey, CryptoKeyVersionTemplate, crypto_key, crypto_key_version,
};
use keygate::pb;
use keygate_emulators::gcp::{self, GcpEmulator, GcpOptions};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_types::StatusExt as _;

const PROVIDER: &str = "gcp";
const PROJECT: &str = "keygate-e2e";

const GCP_ALGORITHMS: &[&str] = &[
    "aes-256-gcm",
    "ecdsa-p256",
    "ecdsa-p384",
    "rsa-2048-pss",
    "rsa-3072-pss",
    "rsa-3072-oaep",
    "hmac-sha256",
];

/// A gateway whose `gcp` provider is the emulator at `url`. Retries are quick and the
/// breaker re-probes after a second, so the outage test waits little.
fn start_gateway(dir: &Path, url: &str) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[providers.gcp]
kind = "gcp-kms"
project = "{PROJECT}"
location = "global"
key_ring = "keygate"
endpoint = "{url}"
credentials = {{ source = "anonymous" }}

[providers.gcp.guard]
retry = {{ max_attempts = 3, base_backoff = "10ms", max_backoff = "100ms" }}
breaker = {{ failures = 5, open_for = "1s" }}
"#
        ),
    )
    .expect("write config");
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    )
}

async fn emulator(audit_log: Option<&Path>) -> GcpEmulator {
    gcp::spawn_with(
        "127.0.0.1:0",
        GcpOptions {
            audit_log: audit_log.map(Path::to_path_buf),
            ..Default::default()
        },
    )
    .await
    .expect("start the Cloud KMS emulator")
}

async fn sdk(emu: &GcpEmulator) -> KeyManagementService {
    KeyManagementService::builder()
        .with_endpoint(emu.url())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
        .build()
        .await
        .expect("SDK client")
}

fn on_gcp(name: &str, algorithm: &str) -> pb::CreateKeyRequest {
    let mut req = create(name, algorithm, "root");
    req.provider = PROVIDER.into();
    req
}

fn encrypt_request(key: &str, plaintext: &[u8]) -> pb::EncryptRequest {
    pb::EncryptRequest {
        key: key.into(),
        plaintext: plaintext.to_vec(),
        associated_data: b"order-7".to_vec(),
    }
}

/// The Cloud KMS resource name behind a keygate key.
fn resource(key: &pb::Key) -> String {
    key.provider_uri
        .strip_prefix("gcpkms://")
        .unwrap_or_else(|| panic!("not a gcpkms URI: {}", key.provider_uri))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_kms_through_the_grpc_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud_audit = dir.path().join("cloudaudit.jsonl");
    let emu = emulator(Some(&cloud_audit)).await;
    let server = start_gateway(dir.path(), &emu.url());
    let mut keys = server.root().await;

    suite::run(&mut keys, PROVIDER, "gcp", GCP_ALGORITHMS).await;
    println!("ok: the gRPC suite passes for every Cloud KMS key type");

    rotation_and_re_encrypt(&mut keys).await;
    println!(
        "ok: old ciphertexts decrypt after rotation; ReEncrypt moves them to the newest version"
    );

    request_ids_join_cloud_audit_logs(&server, &mut keys, &cloud_audit).await;
    println!(
        "ok: keygate's request id is the provider request id and Cloud Audit Logs' user agent"
    );

    a_corrupted_checksum_is_an_audited_integrity_error(&server, &emu, &mut keys).await;
    println!("ok: a flipped response checksum fails the call as DATA_LOSS, audited");

    retirement_as_cloud_kms_sees_it(&emu, &mut keys).await;
    println!("ok: retired versions are disabled in Cloud KMS, and stay so when the key is enabled");

    destruction_as_cloud_kms_sees_it(&emu, &mut keys).await;
    println!("ok: destruction is scheduled in Cloud KMS, shown by GetKey, and cancelled");

    keys_made_outside_keygate_are_unmanaged(&server, &emu, &mut keys).await;
    println!("ok: a key made straight in Cloud KMS is in the inventory, unmanaged");
    drop(server);
}

async fn rotation_and_re_encrypt(keys: &mut common::Keys) {
    keys.create_key(on_gcp("rotation/dek", "aes-256-gcm"))
        .await
        .expect("create");
    let before = keys
        .encrypt(encrypt_request("rotation/dek", b"card 4111"))
        .await
        .expect("encrypt")
        .into_inner();
    assert_eq!(before.key_version, 1);
    let rotated = keys
        .rotate_key(pb::RotateKeyRequest {
            key: "rotation/dek".into(),
            ..Default::default()
        })
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(rotated.primary_version, 2);
    let after = keys
        .encrypt(encrypt_request("rotation/dek", b"card 5500"))
        .await
        .expect("encrypt after rotation")
        .into_inner();
    assert_eq!(
        after.key_version, 2,
        "new ciphertexts carry the new version"
    );
    let old = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: before.ciphertext.clone(),
            associated_data: b"order-7".to_vec(),
        })
        .await
        .expect("the old ciphertext decrypts")
        .into_inner();
    assert_eq!(
        (old.plaintext.as_slice(), old.key_version),
        (&b"card 4111"[..], 1)
    );
    let moved = keys
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext: before.ciphertext,
            source_associated_data: b"order-7".to_vec(),
            destination_key: String::new(),
            destination_associated_data: b"order-7".to_vec(),
        })
        .await
        .expect("re-encrypt")
        .into_inner();
    assert_eq!((moved.source_key_version, moved.key_version), (1, 2));
    let opened = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: moved.ciphertext,
            associated_data: b"order-7".to_vec(),
        })
        .await
        .expect("the moved ciphertext decrypts")
        .into_inner();
    assert_eq!(
        (opened.plaintext.as_slice(), opened.key_version),
        (&b"card 4111"[..], 2)
    );
}

async fn request_ids_join_cloud_audit_logs(
    server: &Server,
    keys: &mut common::Keys,
    cloud_audit: &Path,
) {
    let reply = keys
        .encrypt(encrypt_request("rotation/dek", b"audit me"))
        .await
        .expect("encrypt");
    let id = request_id(&reply);
    assert!(!id.is_empty());
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let events = events_for(&mut audit, &id).await;
    let event = events
        .iter()
        .find(|e| e.action == "Encrypt")
        .unwrap_or_else(|| panic!("no Encrypt event for {id}: {events:?}"));
    assert_eq!(event.outcome, "ok");
    // Cloud KMS has no request id of its own: keygate's is sent and recorded as the provider's.
    assert_eq!(event.provider_request_id, id);
    let text = std::fs::read_to_string(cloud_audit).expect("the emulator's audit log");
    let logged: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| {
            e["protoPayload"]["requestMetadata"]["callerSuppliedUserAgent"]
                .as_str()
                .and_then(keygate_provider_gcp::request_id_in)
                == Some(id.as_str())
        })
        .collect();
    assert_eq!(
        logged.len(),
        1,
        "one Cloud KMS call for this request: {logged:#?}"
    );
    assert_eq!(logged[0]["protoPayload"]["methodName"], "Encrypt");
    assert_eq!(
        logged[0]["protoPayload"]["serviceName"],
        "cloudkms.googleapis.com"
    );
}

async fn a_corrupted_checksum_is_an_audited_integrity_error(
    server: &Server,
    emu: &GcpEmulator,
    keys: &mut common::Keys,
) {
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    // One corrupted reply: the guard discards it and asks again, as Google advises.
    emu.hooks().corrupt_next_checksums(1);
    let reply = keys
        .encrypt(encrypt_request("rotation/dek", b"x"))
        .await
        .expect("one corrupted reply is retried");
    let events = events_for(&mut audit, &request_id(&reply)).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "Encrypt" && e.outcome == "ok")
    );

    // Every attempt corrupted: the call fails, clearly, and the failure is audited.
    emu.hooks().corrupt_next_checksums(3);
    let err = keys
        .encrypt(encrypt_request("rotation/dek", b"x"))
        .await
        .expect_err("a corrupted reply was used");
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert!(
        err.message().contains("integrity check failed")
            && err.message().contains("ciphertext_crc32c")
            && err.message().contains(PROVIDER),
        "{}",
        err.message()
    );
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "PROVIDER_INTEGRITY");
    let events = events_for(&mut audit, &status_request_id(&err)).await;
    let event = events
        .iter()
        .find(|e| e.action == "Encrypt")
        .unwrap_or_else(|| panic!("the failed call was not audited: {events:?}"));
    assert_eq!(
        (event.outcome.as_str(), event.error_reason.as_str()),
        ("error", "PROVIDER_INTEGRITY")
    );
    assert_eq!(emu.hooks().pending_failures(), 0);
}

async fn retirement_as_cloud_kms_sees_it(emu: &GcpEmulator, keys: &mut common::Keys) {
    let key = keys
        .create_key(on_gcp("retired/dek", "aes-256-gcm"))
        .await
        .expect("create")
        .into_inner();
    let old = keys
        .encrypt(encrypt_request("retired/dek", b"old"))
        .await
        .expect("encrypt")
        .into_inner();
    keys.rotate_key(pb::RotateKeyRequest {
        key: "retired/dek".into(),
        ..Default::default()
    })
    .await
    .expect("rotate");
    let client = sdk(emu).await;
    let name = resource(&key);
    let states = || {
        let client = client.clone();
        let name = name.clone();
        async move {
            let mut versions = client
                .list_crypto_key_versions()
                .set_parent(name)
                .send()
                .await
                .expect("list versions")
                .crypto_key_versions;
            versions.sort_by_key(|v| {
                v.name
                    .rsplit('/')
                    .next()
                    .and_then(|id| id.parse::<u64>().ok())
            });
            versions.into_iter().map(|v| v.state).collect::<Vec<_>>()
        }
    };
    assert_eq!(states().await, vec![VState::Enabled, VState::Enabled]);

    let retired = keys
        .retire_key_versions(pb::RetireKeyVersionsRequest {
            key: "retired/dek".into(),
            below: 2,
            force: false,
        })
        .await
        .expect("retire v1 (never read)")
        .into_inner();
    assert_eq!(retired.retired_below, 2);
    // Cloud KMS itself no longer lets version 1 decrypt.
    assert_eq!(states().await, vec![VState::Disabled, VState::Enabled]);
    let refused = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: old.ciphertext,
            associated_data: b"order-7".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );

    // Disabling and enabling the key (Cloud KMS has no key-level switch: every version is
    // flipped) leaves the retired version disabled.
    keys.disable_key(pb::DisableKeyRequest {
        key: "retired/dek".into(),
    })
    .await
    .expect("disable");
    assert_eq!(states().await, vec![VState::Disabled, VState::Disabled]);
    keys.enable_key(pb::EnableKeyRequest {
        key: "retired/dek".into(),
    })
    .await
    .expect("enable");
    assert_eq!(states().await, vec![VState::Disabled, VState::Enabled]);
}

async fn destruction_as_cloud_kms_sees_it(emu: &GcpEmulator, keys: &mut common::Keys) {
    let key = keys
        .create_key(on_gcp("doomed/dek", "aes-256-gcm"))
        .await
        .expect("create")
        .into_inner();
    let name = resource(&key);
    let client = sdk(emu).await;
    let versions = |client: &KeyManagementService| {
        let client = client.clone();
        let name = name.clone();
        async move {
            client
                .list_crypto_key_versions()
                .set_parent(name)
                .send()
                .await
                .expect("list versions")
                .crypto_key_versions
        }
    };

    let scheduled_at = std::time::SystemTime::now();
    let pending = keys
        .schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
            family: false,
            key: "doomed/dek".into(),
            pending_window: common::days(7),
        })
        .await
        .expect("schedule")
        .into_inner();
    assert_eq!(pending.state, "pending-destruction");
    let shown = keys
        .get_key(pb::GetKeyRequest {
            key: "doomed/dek".into(),
            usage: false,
        })
        .await
        .expect("get key")
        .into_inner();
    assert_eq!(shown.state, "pending-destruction");
    let at = epoch_seconds(&shown.destruction_at);
    let expected = scheduled_at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        + 7 * 86_400;
    assert!(
        (at - expected).abs() < 600,
        "destruction_at {}",
        shown.destruction_at
    );
    for v in versions(&client).await {
        assert_eq!(v.state, VState::DestroyScheduled, "{v:?}");
        assert!(v.destroy_time.is_some());
    }
    // Unusable at once: keygate refuses, and so does Cloud KMS when asked directly.
    let err = keys
        .encrypt(encrypt_request("doomed/dek", b"x"))
        .await
        .expect_err("a key pending destruction encrypted");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let direct = client
        .encrypt()
        .set_name(&name)
        .set_plaintext(b"x".to_vec())
        .send()
        .await
        .expect_err("Cloud KMS used a version scheduled for destruction");
    assert_eq!(
        direct.status().map(|s| s.code),
        Some(google_cloud_gax::error::rpc::Code::FailedPrecondition)
    );

    let cancelled = keys
        .cancel_key_destruction(pb::CancelKeyDestructionRequest {
            key: "doomed/dek".into(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state, "disabled");
    assert!(cancelled.destruction_at.is_empty());
    for v in versions(&client).await {
        assert_eq!(v.state, VState::Disabled, "{v:?}");
    }
    keys.enable_key(pb::EnableKeyRequest {
        key: "doomed/dek".into(),
    })
    .await
    .expect("enable");
    keys.encrypt(encrypt_request("doomed/dek", b"x"))
        .await
        .expect("usable again after cancel and enable");
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-12-13T04:00:00Z`, fraction allowed).
fn epoch_seconds(text: &str) -> i64 {
    let parsed = humantime::parse_rfc3339_weak(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
    parsed
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs() as i64
}

async fn keys_made_outside_keygate_are_unmanaged(
    server: &Server,
    emu: &GcpEmulator,
    keys: &mut common::Keys,
) {
    let client = sdk(emu).await;
    let ring = client
        .create_key_ring()
        .set_parent(format!("projects/{PROJECT}/locations/global"))
        .set_key_ring_id("made-by-hand")
        .send()
        .await
        .expect("key ring");
    let theirs = client
        .create_crypto_key()
        .set_parent(&ring.name)
        .set_crypto_key_id("legacy-signer")
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(crypto_key::CryptoKeyPurpose::AsymmetricSign)
                .set_version_template(CryptoKeyVersionTemplate::new().set_algorithm(
                    crypto_key_version::CryptoKeyVersionAlgorithm::EcSignP256Sha256,
                )),
        )
        .send()
        .await
        .expect("a key made outside keygate");
    let ours = keys
        .create_key(on_gcp("inventory/ours", "hmac-sha256"))
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
                page_size: 7,
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
    let uri = format!("gcpkms://{}", theirs.name);
    let foreign = listed
        .iter()
        .find(|k| k.provider_uri == uri)
        .unwrap_or_else(|| panic!("{uri} not in the inventory: {listed:#?}"));
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
    assert!(mine.managed);
    assert_eq!(
        (mine.key_name.as_str(), mine.key_id.as_str()),
        ("inventory/ours", ours.id.as_str())
    );
    // The doomed key, cancelled and re-enabled, shows as enabled; every suite key is managed.
    assert!(listed.iter().filter(|k| k.managed).count() > GCP_ALGORITHMS.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_audited_and_recovers_and_429s_are_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut emu = emulator(None).await;
    let server = start_gateway(dir.path(), &emu.url());
    let mut keys = server.root().await;
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    keys.create_key(on_gcp("outage/dek", "aes-256-gcm"))
        .await
        .expect("create");
    let sealed = keys
        .encrypt(encrypt_request("outage/dek", b"before the outage"))
        .await
        .expect("encrypt")
        .into_inner();

    // Throttling: one 429 is retried away; one per attempt is RESOURCE_EXHAUSTED.
    emu.hooks().fail_next(1, 429);
    let reply = keys
        .encrypt(encrypt_request("outage/dek", b"x"))
        .await
        .expect("a single 429 is retried");
    assert_eq!(emu.hooks().pending_failures(), 0);
    let events = events_for(&mut audit, &request_id(&reply)).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "Encrypt" && e.outcome == "ok")
    );
    emu.hooks().fail_next(3, 429);
    let err = keys
        .encrypt(encrypt_request("outage/dek", b"x"))
        .await
        .expect_err("throttled on every attempt");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains(PROVIDER) && err.message().contains("after 3 attempts"),
        "{}",
        err.message()
    );
    assert_eq!(
        err.get_details_error_info().map(|i| i.reason),
        Some("PROVIDER_THROTTLED".to_string())
    );
    let events = events_for(&mut audit, &status_request_id(&err)).await;
    assert!(
        events
            .iter()
            .any(|e| e.outcome == "error" && e.error_reason == "PROVIDER_THROTTLED"),
        "{events:?}"
    );
    println!("ok: a 429 is retried; 429 on every attempt is RESOURCE_EXHAUSTED, audited");

    // Down: every call fails at once with UNAVAILABLE naming the provider, and is audited.
    emu.stop().await;
    for attempt in 0..3 {
        let started = Instant::now();
        let err = keys
            .decrypt(pb::DecryptRequest {
                ciphertext: sealed.ciphertext.clone(),
                associated_data: b"order-7".to_vec(),
            })
            .await
            .expect_err("decrypt with Cloud KMS down");
        println!(
            "   outage answered in {:?}: {}",
            started.elapsed(),
            err.message()
        );
        assert_eq!(err.code(), Code::Unavailable, "attempt {attempt}: {err:?}");
        assert!(err.message().contains(PROVIDER), "{}", err.message());
        let events = events_for(&mut audit, &status_request_id(&err)).await;
        let event = events
            .iter()
            .find(|e| e.action == "Decrypt")
            .unwrap_or_else(|| panic!("the failed call was not audited: {events:?}"));
        assert_eq!(
            (event.outcome.as_str(), event.error_reason.as_str()),
            ("error", "PROVIDER_UNAVAILABLE")
        );
    }
    println!("ok: an outage is UNAVAILABLE and audited");

    // Back, same gateway process: the breaker probes and calls succeed again.
    emu.restart().await.expect("restart the emulator");
    let deadline = Instant::now() + Duration::from_secs(60);
    let opened = loop {
        match keys
            .decrypt(pb::DecryptRequest {
                ciphertext: sealed.ciphertext.clone(),
                associated_data: b"order-7".to_vec(),
            })
            .await
        {
            Ok(r) => break r.into_inner(),
            Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no recovery after the emulator came back: {e:?}"),
        }
    };
    assert_eq!(opened.plaintext, b"before the outage");
    println!("ok: calls succeed again once Cloud KMS is back, without a restart");
    drop(server);
}
