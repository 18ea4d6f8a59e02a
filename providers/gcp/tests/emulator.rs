//! The Cloud KMS provider against the emulator (in-process, real HTTP, the official SDK doing
//! the requests): the conformance suite for every key type, bare and inside the guard, then
//! what is particular to Cloud KMS: labels and the rotation schedule, adopting a scheduled
//! rotation, destruction, inventory of keys keygate did not make, CRC32C integrity, keygate's
//! request id in the audit log, throttling, two projects side by side, and import jobs.

use aes_kw::KekAes256;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::{
    CryptoKey, CryptoKeyVersionTemplate, crypto_key, crypto_key_version,
};
use keygate_emulators::gcp::{self, GcpEmulator, GcpOptions};
use keygate_provider::conformance::{self, Options};
use keygate_provider::kit::{GuardSettings, Guarded, NoMetrics};
use keygate_provider::{
    Algorithm, ImportSpec, KeyProvider, KeySpec, KeyUri, PageRequest, ProviderError, ProviderKey,
    ProviderKeyState, SecretBytes, VersionRef, WrappedKey, WrappingAlgorithm,
};
use keygate_provider_gcp::{CredentialsConfig, GcpKmsConfig, GcpKmsProvider, key_uri};
use rsa::pkcs8::DecodePublicKey;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const PROJECT: &str = "keygate-test";
const LOCATION: &str = "global";
const RING: &str = "kg";

fn config(emu: &GcpEmulator, project: &str) -> GcpKmsConfig {
    let mut c = GcpKmsConfig::new(project, LOCATION, RING);
    c.endpoint = Some(emu.url());
    c.credentials = CredentialsConfig::Anonymous;
    c
}

async fn provider(emu: &GcpEmulator) -> GcpKmsProvider {
    GcpKmsProvider::new("gcp-test", config(emu, PROJECT))
        .await
        .unwrap_or_else(|e| panic!("building the provider: {e}"))
}

fn spec(name: &str, algorithm: Algorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        key_id: format!("id-{name}"),
        algorithm,
        owner: "svc:payments".into(),
        environment: "prod".into(),
        crypto_period: Duration::from_secs(90 * 86_400),
        labels: BTreeMap::new(),
    }
}

fn latest(key: &ProviderKey) -> VersionRef {
    let v = key.versions.last().expect("a key has a version");
    VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    }
}

fn sdk_name(uri: &KeyUri) -> String {
    uri.strip_scheme("gcpkms").expect("gcpkms URI").to_string()
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

fn unknown() -> KeyUri {
    key_uri(&format!(
        "projects/{PROJECT}/locations/{LOCATION}/keyRings/{RING}/cryptoKeys/no-such-key"
    ))
}

#[tokio::test]
async fn the_conformance_suite_passes_for_every_key_type() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let p = provider(&emu).await;
    let mut options = Options::new("conf");
    options.unknown_uri = Some(unknown());
    if let Err(report) = conformance::run(&p, &options).await {
        panic!("{report}");
    }
}

#[tokio::test]
async fn the_guarded_provider_passes_the_conformance_suite() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let guarded = Guarded::new(
        Arc::new(provider(&emu).await),
        &GuardSettings::default(),
        Duration::from_secs(30),
        Arc::new(NoMetrics),
    );
    let mut options = Options::new("guarded");
    options.unknown_uri = Some(unknown());
    if let Err(report) = conformance::run(&guarded, &options).await {
        panic!("{report}");
    }
}

#[tokio::test]
async fn labels_and_the_rotation_schedule_follow_the_spec() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let p = provider(&emu).await;
    let key = p
        .create_key(&spec("payments/card-dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    assert!(
        key.uri
            .as_str()
            .starts_with("gcpkms://projects/keygate-test/locations/global/keyRings/kg/cryptoKeys/payments-card-dek-"),
        "{}",
        key.uri
    );
    let got = sdk(&emu)
        .await
        .get_crypto_key()
        .set_name(sdk_name(&key.uri))
        .send()
        .await
        .expect("get");
    let label = |k: &str| got.labels.get(k).cloned().unwrap_or_default();
    assert_eq!(label("keygate-owner"), "svc_3apayments");
    assert_eq!(label("keygate-environment"), "prod");
    assert_eq!(label("keygate-purpose"), "encrypt");
    assert_eq!(label("keygate-crypto-period"), "7776000s");
    assert_eq!(label("keygate-key-id"), "id-payments_2fcard-dek");
    let period = got.rotation_period().expect("a rotation period");
    assert_eq!(period.seconds(), 90 * 86_400);
    let next = got
        .next_rotation_time
        .expect("a next rotation time")
        .seconds();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        (next - now - 90 * 86_400).abs() < 3600,
        "next rotation {next}, now {now}"
    );
    assert_eq!(
        got.destroy_scheduled_duration.map(|d| d.seconds()),
        Some(30 * 86_400)
    );

    // Signing keys have labels but no rotation schedule (Cloud KMS has none for them).
    let signer = p
        .create_key(&spec("release/signing", Algorithm::EcdsaP256))
        .await
        .expect("create")
        .value;
    let got = sdk(&emu)
        .await
        .get_crypto_key()
        .set_name(sdk_name(&signer.uri))
        .send()
        .await
        .expect("get");
    assert!(got.rotation_period().is_none() && got.next_rotation_time.is_none());
    assert_eq!(
        got.labels.get("keygate-purpose").map(String::as_str),
        Some("sign")
    );
}

#[tokio::test]
async fn a_rotation_cloud_kms_made_on_schedule_is_adopted_not_doubled() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let p = provider(&emu).await;
    let key = p
        .create_key(&spec("sched/dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let client = sdk(&emu).await;
    // Make the schedule due: Cloud KMS (the emulator) rotates on its own.
    client
        .update_crypto_key()
        .set_crypto_key(
            CryptoKey::new()
                .set_name(sdk_name(&key.uri))
                .set_next_rotation_time(google_cloud_wkt::Timestamp::clamp(1, 0)),
        )
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["next_rotation_time"]))
        .send()
        .await
        .expect("patch");
    let rotated = p.rotate(&key.uri).await.expect("rotate").value;
    assert_eq!(
        (rotated.number, rotated.provider_version.as_str()),
        (2, "2")
    );
    let described = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(
        described.versions.len(),
        2,
        "the scheduled version was adopted"
    );
    let got = client
        .get_crypto_key()
        .set_name(sdk_name(&key.uri))
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.labels.get("keygate-primary").map(String::as_str),
        Some("2")
    );
    let next = got.next_rotation_time.expect("next").seconds();
    assert!(
        next > 1_000_000_000,
        "nextRotationTime moved a period on: {next}"
    );
    // The next rotation keygate asks for makes a version of its own.
    let third = p.rotate(&key.uri).await.expect("rotate").value;
    assert_eq!(third.number, 3);
}

#[tokio::test]
async fn destruction_is_scheduled_in_cloud_kms_and_can_be_cancelled() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let p = provider(&emu).await;
    let key = p
        .create_key(&spec("doomed/dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    p.rotate(&key.uri).await.expect("rotate");
    let v = latest(&p.describe(&key.uri).await.expect("describe").value);

    let err = p
        .destroy(&key.uri)
        .await
        .expect_err("destroy before schedule");
    assert_eq!(err.kind(), "failed_precondition");
    let too_long = p
        .schedule_destroy(&key.uri, Duration::from_secs(45 * 86_400))
        .await
        .expect_err("a window past destroyScheduledDuration");
    assert_eq!(too_long.kind(), "invalid_input");
    assert!(too_long.to_string().contains("30days"), "{too_long}");

    p.schedule_destroy(&key.uri, Duration::from_secs(7 * 86_400))
        .await
        .expect("schedule");
    let described = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(described.state, ProviderKeyState::PendingDestruction);
    let versions = sdk(&emu)
        .await
        .list_crypto_key_versions()
        .set_parent(sdk_name(&key.uri))
        .send()
        .await
        .expect("versions")
        .crypto_key_versions;
    assert_eq!(versions.len(), 2);
    for version in &versions {
        assert_eq!(
            version.state,
            crypto_key_version::CryptoKeyVersionState::DestroyScheduled
        );
        assert!(version.destroy_time.is_some(), "{version:?}");
    }
    let refused = p
        .encrypt(&v, &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect_err("a version scheduled for destruction was usable");
    assert_eq!(refused.kind(), "failed_precondition");
    p.destroy(&key.uri)
        .await
        .expect("destroy checks the schedule");

    p.cancel_destroy(&key.uri).await.expect("cancel");
    let described = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(described.state, ProviderKeyState::Disabled);
    p.set_enabled(&key.uri, true).await.expect("enable");
    p.encrypt(&v, &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect("usable again");
}

#[tokio::test]
async fn keys_made_outside_keygate_are_listed_without_a_keygate_id() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let p = provider(&emu).await;
    let ours = p
        .create_key(&spec("inventory/ours", Algorithm::HmacSha256))
        .await
        .expect("create")
        .value;
    let client = sdk(&emu).await;
    // Another key ring, and a key no keygate made.
    let ring = client
        .create_key_ring()
        .set_parent(format!("projects/{PROJECT}/locations/{LOCATION}"))
        .set_key_ring_id("team-ring")
        .send()
        .await
        .expect("ring");
    let theirs = client
        .create_crypto_key()
        .set_parent(&ring.name)
        .set_crypto_key_id("made-by-hand")
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(crypto_key::CryptoKeyPurpose::AsymmetricSign)
                .set_version_template(CryptoKeyVersionTemplate::new().set_algorithm(
                    crypto_key_version::CryptoKeyVersionAlgorithm::EcSignP384Sha384,
                )),
        )
        .send()
        .await
        .expect("key");
    for i in 0..3 {
        p.create_key(&spec(&format!("inventory/more-{i}"), Algorithm::Aes256Gcm))
            .await
            .expect("create");
    }
    // Page through one key at a time.
    let mut listed = Vec::new();
    let mut page = PageRequest {
        page_size: 1,
        page_token: String::new(),
    };
    for _ in 0..20 {
        let reply = p.list(&page).await.expect("list").value;
        assert!(reply.keys.len() <= 1);
        listed.extend(reply.keys);
        if reply.next_page_token.is_empty() {
            break;
        }
        page.page_token = reply.next_page_token;
    }
    assert_eq!(listed.len(), 5, "{listed:#?}");
    let foreign = listed
        .iter()
        .find(|k| k.uri == key_uri(&theirs.name))
        .expect("the hand-made key is listed");
    assert_eq!(foreign.keygate_id, None);
    assert_eq!(foreign.algorithm, Some(Algorithm::EcdsaP384));
    assert_eq!(foreign.state, ProviderKeyState::Enabled);
    let mine = listed.iter().find(|k| k.uri == ours.uri).expect("ours");
    assert_eq!(mine.keygate_id.as_deref(), Some("id-inventory/ours"));
}

#[tokio::test]
async fn corrupted_replies_are_integrity_errors_and_the_guard_retries_them() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let p = Arc::new(provider(&emu).await);
    let dek = p
        .create_key(&spec("crc/dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let mac = p
        .create_key(&spec("crc/mac", Algorithm::HmacSha256))
        .await
        .expect("create")
        .value;
    let signer = p
        .create_key(&spec("crc/sig", Algorithm::EcdsaP256))
        .await
        .expect("create")
        .value;
    let (dek, mac, signer) = (latest(&dek), latest(&mac), latest(&signer));
    let sealed = p
        .encrypt(&dek, &SecretBytes::copy_from(b"x"), b"aad")
        .await
        .expect("encrypt")
        .value;

    let integrity = |r: Result<(), ProviderError>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), "integrity_failed", "{what}: {e}");
        assert!(e.to_string().contains("integrity check failed"), "{e}");
    };
    emu.hooks().corrupt_next_checksums(1);
    integrity(
        p.encrypt(&dek, &SecretBytes::copy_from(b"x"), b"")
            .await
            .map(|_| ()),
        "ciphertext_crc32c",
    );
    emu.hooks().corrupt_next_checksums(1);
    integrity(
        p.decrypt(&dek, &sealed, b"aad").await.map(|_| ()),
        "plaintext_crc32c",
    );
    emu.hooks().corrupt_next_checksums(1);
    integrity(p.mac(&mac, b"m").await.map(|_| ()), "mac_crc32c");
    let tag = p.mac(&mac, b"m").await.expect("mac").value;
    emu.hooks().corrupt_next_checksums(1);
    integrity(
        p.verify_mac(&mac, b"m", &tag).await.map(|_| ()),
        "verified_success_integrity",
    );
    emu.hooks().corrupt_next_checksums(1);
    integrity(
        p.sign(&signer, keygate_provider::SignInput::Message(b"m"))
            .await
            .map(|_| ()),
        "signature_crc32c",
    );
    emu.hooks().corrupt_next_checksums(1);
    integrity(p.public_key(&signer).await.map(|_| ()), "pem_crc32c");

    // Inside the guard, one corrupted reply is retried away; three (every attempt) are not.
    let guarded = Guarded::new(
        p.clone(),
        &GuardSettings::default(),
        Duration::from_secs(30),
        Arc::new(NoMetrics),
    );
    emu.hooks().corrupt_next_checksums(1);
    guarded
        .encrypt(&dek, &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect("one corrupted reply is retried");
    emu.hooks().corrupt_next_checksums(3);
    let e = guarded
        .encrypt(&dek, &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect_err("every attempt corrupted");
    assert_eq!(e.kind(), "integrity_failed");
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
}

#[tokio::test]
async fn throttling_and_outages_are_typed_for_the_guard() {
    let mut emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let p = provider(&emu).await;
    let key = p
        .create_key(&spec("quota/dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let v = latest(&key);
    emu.hooks().fail_next(1, 429);
    let e = p
        .encrypt(&v, &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect_err("throttled");
    assert_eq!(e.kind(), "throttled", "{e}");
    assert!(e.to_string().contains("Retry-After"), "{e}");
    emu.hooks().fail_next(1, 503);
    let e = p.describe(&key.uri).await.expect_err("unavailable");
    assert_eq!(e.kind(), "unavailable", "{e}");
    emu.stop().await;
    let e = p.describe(&key.uri).await.expect_err("down");
    assert_eq!(e.kind(), "unavailable", "{e}");
    assert!(e.to_string().contains("could not reach Cloud KMS"), "{e}");
    emu.restart().await.expect("restart");
    p.describe(&key.uri).await.expect("back");
}

#[tokio::test]
async fn the_call_request_id_reaches_cloud_audit_logs_in_the_user_agent() {
    /// Removed when the test ends, passed or failed.
    struct TempDir(std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("kg-gcp-ua-{}", uuid::Uuid::new_v4().simple())));
    std::fs::create_dir_all(&dir.0).expect("dir");
    let log = dir.0.join("audit.jsonl");
    let emu = gcp::spawn_with(
        "127.0.0.1:0",
        GcpOptions {
            audit_log: Some(log.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("emulator");
    let p = provider(&emu).await;
    let key = p
        .create_key(&spec("ua/dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let v = latest(&key);
    let reply =
        keygate_provider::context::with_request_id("0190f00d-aaaa-7bbb-8ccc-dddddddddddd", async {
            p.encrypt(&v, &SecretBytes::copy_from(b"x"), b"").await
        })
        .await
        .expect("encrypt");
    assert_eq!(
        reply.request_id.as_deref(),
        Some("0190f00d-aaaa-7bbb-8ccc-dddddddddddd")
    );
    let text = std::fs::read_to_string(&log).expect("audit log");
    let encrypt: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|e| e["protoPayload"]["methodName"] == "Encrypt")
        .expect("an Encrypt entry");
    let agent = encrypt["protoPayload"]["requestMetadata"]["callerSuppliedUserAgent"]
        .as_str()
        .expect("a user agent");
    assert_eq!(
        keygate_provider_gcp::request_id_in(agent),
        Some("0190f00d-aaaa-7bbb-8ccc-dddddddddddd"),
        "{agent}"
    );
    // Requests made outside a call still carry an id of their own, the one the reply names.
    let outside = p.describe(&key.uri).await.expect("describe");
    let id = outside.request_id.expect("a request id");
    let text = std::fs::read_to_string(&log).expect("audit log");
    assert!(text.contains(&format!("keygate-request-id/{id}")), "{id}");
}

#[tokio::test]
async fn two_projects_coexist_and_refuse_each_others_keys() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let a = GcpKmsProvider::new("gcp-a", config(&emu, "project-a"))
        .await
        .expect("a");
    let b = GcpKmsProvider::new("gcp-b", config(&emu, "project-b"))
        .await
        .expect("b");
    let ka = a
        .create_key(&spec("shared/name", Algorithm::Aes256Gcm))
        .await
        .expect("a")
        .value;
    let kb = b
        .create_key(&spec("shared/name", Algorithm::Aes256Gcm))
        .await
        .expect("b")
        .value;
    assert_ne!(ka.uri, kb.uri);
    let e = b
        .describe(&ka.uri)
        .await
        .expect_err("b serves project-b only");
    assert_eq!(e.kind(), "invalid_input");
    assert!(e.to_string().contains("project-a"), "{e}");
    let listed = a.list(&PageRequest::default()).await.expect("list").value;
    assert_eq!(listed.keys.len(), 1);
}

#[tokio::test]
async fn material_imported_through_the_trait_is_used() {
    let emu = gcp::spawn("127.0.0.1:0").await.expect("emulator");
    let p = provider(&emu).await;
    let key = p
        .create_key(&spec("byok/mac", Algorithm::HmacSha256))
        .await
        .expect("create")
        .value;
    let params = p
        .import_parameters(&ImportSpec {
            key: key.uri.clone(),
            algorithm: Algorithm::HmacSha256,
            wrapping: WrappingAlgorithm::RsaAesKeyWrapSha256,
        })
        .await
        .expect("import parameters")
        .value;
    assert!(params.expires_at.is_some());
    // The wrap, made independently: RSA-OAEP-SHA-256 from `rsa`, AES-KWP from `aes-kw`.
    let public =
        rsa::RsaPublicKey::from_public_key_der(&params.wrapping_key_spki_der).expect("an RSA SPKI");
    let secret = [0x5au8; 32];
    let kek = [0x11u8; 32];
    let mut wrapped = public
        .encrypt(
            &mut rsa::rand_core::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            &kek,
        )
        .expect("oaep");
    wrapped.extend(
        KekAes256::from(kek)
            .wrap_with_padding_vec(&secret)
            .expect("kwp"),
    );
    let imported = p
        .import_key(&key.uri, &WrappedKey::new(wrapped), &params)
        .await
        .expect("import")
        .value;
    assert_eq!(imported.number, 2);
    let v = VersionRef {
        uri: key.uri.clone(),
        algorithm: Algorithm::HmacSha256,
        version: imported.number,
        provider_version: imported.provider_version.clone(),
    };
    let tag = p.mac(&v, b"amount=10").await.expect("mac").value;
    let expected = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        b"amount=10",
    );
    assert_eq!(tag, expected.as_ref());

    // A wrap under some other key fails with Cloud KMS's reason.
    let other = p
        .import_parameters(&ImportSpec {
            key: key.uri.clone(),
            algorithm: Algorithm::HmacSha256,
            wrapping: WrappingAlgorithm::RsaOaepSha256,
        })
        .await
        .expect("import parameters")
        .value;
    let e = p
        .import_key(&key.uri, &WrappedKey::new(vec![1; 384]), &other)
        .await
        .expect_err("garbage imported");
    assert_eq!(e.kind(), "invalid_input");
    assert!(e.to_string().contains("could not import"), "{e}");
}
