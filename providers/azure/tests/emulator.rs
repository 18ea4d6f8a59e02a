//! The Azure provider's behaviour against the Key Vault emulator, beyond the conformance
//! suite: request ids both ways, tags, key_ops and the rotation policy, version mapping,
//! soft delete → recover / purge, inventory of keys made outside keygate, data keys,
//! throttling with Retry-After through the guard, an outage and recovery, credentials, and
//! two vaults side by side.

mod common;

use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, KeyClientGetKeyOptions, KeyType,
};
use common::{Fixture, latest, spec, version};
use keygate_emulators::azure::Options;
use keygate_provider::kit::{GuardSettings, Guarded, NoMetrics, RetrySettings};
use keygate_provider::{
    Algorithm, DataKeySpec, KeyProvider, PageRequest, ProviderError, ProviderKeyState, SecretBytes,
    SignInput,
};
use keygate_provider_azure::{AzureKeyVaultProvider, CredentialConfig, tag};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn records(f: &Fixture) -> Vec<serde_json::Value> {
    let path = f.emu.audit_log().expect("audit log on");
    std::fs::read_to_string(path)
        .expect("read audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test]
async fn keygate_request_ids_go_out_and_key_vault_request_ids_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = Fixture::start(Options {
        managed_hsm: false,
        audit_log: Some(dir.path().join("audit.jsonl")),
    })
    .await;
    let p = f.provider("kv-ids");
    let key = p
        .create_key(&spec("ids/rsa", Algorithm::Rsa2048Oaep))
        .await
        .expect("create")
        .value;
    let sealed = keygate_provider::context::with_request_id(
        "kg-req-0001",
        p.encrypt(&latest(&key), &SecretBytes::copy_from(b"hello"), b""),
    )
    .await
    .expect("encrypt");
    let service_id = sealed
        .request_id
        .expect("x-ms-request-id is the provider request id");
    assert_eq!(service_id.len(), 36, "{service_id}");
    assert_ne!(service_id, "kg-req-0001");

    let log = records(&f);
    let encrypt = log
        .iter()
        .find(|r| r["operationName"] == "KeyEncrypt")
        .expect("a KeyEncrypt record");
    assert_eq!(encrypt["correlationId"], "kg-req-0001", "{encrypt}");
    assert_eq!(encrypt["identity"]["claim"]["appid"], common::CLIENT_ID);
    // Outside a keygate call the SDK's own random id goes out.
    let create = log
        .iter()
        .find(|r| r["operationName"] == "KeyCreate")
        .expect("a KeyCreate record");
    assert_ne!(create["correlationId"], "kg-req-0001");
    assert!(
        !create["correlationId"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn tags_key_ops_and_the_rotation_policy_follow_the_spec() {
    let f = Fixture::vault().await;
    let p = f.provider("kv-tags");
    let mut s = spec("payments/signer", Algorithm::EcdsaP256);
    s.crypto_period = Duration::from_secs(180 * 86_400);
    s.labels.insert("cost-center".into(), "cc-42".into());
    let key = p.create_key(&s).await.expect("create").value;
    let name = key
        .uri
        .as_str()
        .rsplit('/')
        .next()
        .expect("name")
        .to_string();
    assert!(name.starts_with("payments-signer-"), "{name}");
    let bundle = p
        .client()
        .get_key(&name, None)
        .await
        .expect("SDK get")
        .into_model()
        .expect("model");
    let tags = bundle.tags.clone().expect("tags");
    assert_eq!(tags.get(tag::OWNER).map(String::as_str), Some("alice"));
    assert_eq!(tags.get(tag::PURPOSE).map(String::as_str), Some("sign"));
    assert_eq!(tags.get(tag::ENVIRONMENT).map(String::as_str), Some("dev"));
    assert_eq!(
        tags.get(tag::CRYPTO_PERIOD_DAYS).map(String::as_str),
        Some("180")
    );
    assert_eq!(
        tags.get(tag::KEY_ID).map(String::as_str),
        Some("id-payments/signer")
    );
    assert_eq!(tags.get(tag::VERSION).map(String::as_str), Some("1"));
    assert_eq!(tags.get("cost-center").map(String::as_str), Some("cc-42"));
    let jwk = bundle.key.expect("jwk");
    assert_eq!(jwk.kty, Some(KeyType::Ec));
    assert_eq!(
        jwk.key_ops,
        Some(vec!["sign".to_string(), "verify".to_string()])
    );
    let policy = p
        .client()
        .get_key_rotation_policy(&name, None)
        .await
        .expect("policy")
        .into_model()
        .expect("model");
    let action = &policy.lifetime_actions.expect("actions")[0];
    assert_eq!(
        action
            .trigger
            .as_ref()
            .and_then(|t| t.time_after_create.as_deref()),
        Some("P180D")
    );
    // An encryption key can encrypt and wrap, not sign.
    let enc = p
        .create_key(&spec("payments/dek", Algorithm::Rsa3072Oaep))
        .await
        .expect("create")
        .value;
    let name = enc
        .uri
        .as_str()
        .rsplit('/')
        .next()
        .expect("name")
        .to_string();
    let jwk = p
        .client()
        .get_key(&name, None)
        .await
        .expect("SDK get")
        .into_model()
        .expect("model")
        .key
        .expect("jwk");
    assert_eq!(
        jwk.key_ops,
        Some(
            ["encrypt", "decrypt", "wrapKey", "unwrapKey"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(jwk.n.map(|n| n.len()), Some(384));
    // Signing with it is refused by Key Vault too, not only by keygate.
    let err = p
        .sign(&latest(&enc), SignInput::Message(b"x"))
        .await
        .expect_err("signing with an encryption key");
    assert!(
        matches!(err, ProviderError::FailedPrecondition { .. }),
        "{err:?}"
    );
    // Too many labels for Key Vault's 15 tags.
    let mut crowded = spec("crowded", Algorithm::EcdsaP256);
    for i in 0..10 {
        crowded.labels.insert(format!("l{i}"), "v".into());
    }
    let err = p.create_key(&crowded).await.expect_err("16+ tags accepted");
    assert!(err.to_string().contains("15 tags"), "{err}");
}

#[tokio::test]
async fn versions_map_in_order_and_old_versions_keep_working() {
    let f = Fixture::vault().await;
    let p = f.provider("kv-versions");
    let key = p
        .create_key(&spec("versions/ec", Algorithm::EcdsaP256))
        .await
        .expect("create")
        .value;
    let v1 = latest(&key);
    let sig1 = p
        .sign(&v1, SignInput::Message(b"release 1"))
        .await
        .expect("sign v1")
        .value;
    // Two rotations inside the same second as the creation: numbering still follows order.
    let r2 = p.rotate(&key.uri).await.expect("rotate").value;
    let r3 = p.rotate(&key.uri).await.expect("rotate").value;
    assert_eq!((r2.number, r3.number), (2, 3));
    let described = p.describe(&key.uri).await.expect("describe").value;
    let ids: Vec<&str> = described
        .versions
        .iter()
        .map(|v| v.provider_version.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            v1.provider_version.as_str(),
            r2.provider_version.as_str(),
            r3.provider_version.as_str()
        ]
    );
    assert!(
        ids.iter().all(|id| id.len() == 32),
        "Key Vault version ids: {ids:?}"
    );
    assert!(
        p.verify(&v1, SignInput::Message(b"release 1"), &sig1)
            .await
            .expect("verify")
            .value,
        "a version-1 signature verifies after two rotations"
    );
    let v3 = version(&described, 2);
    assert!(
        !p.verify(&v3, SignInput::Message(b"release 1"), &sig1)
            .await
            .expect("verify")
            .value,
        "and only with version 1"
    );
    // A rotation made outside keygate (the rotation policy, the portal) is the next version.
    let name = key
        .uri
        .as_str()
        .rsplit('/')
        .next()
        .expect("name")
        .to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    p.client()
        .rotate_key(&name, None)
        .await
        .expect("SDK rotate");
    let described = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(described.versions.len(), 4);
    assert_eq!(described.versions[2], r3);
    // The public key of each version is its own.
    let pk1 = p.public_key(&v1).await.expect("pk").value.spki_der;
    let pk4 = p
        .public_key(&latest(&described))
        .await
        .expect("pk")
        .value
        .spki_der;
    assert_ne!(pk1, pk4);
}

#[tokio::test]
async fn destruction_is_soft_delete_then_purge_and_cancel_recovers() {
    let f = Fixture::vault().await;
    let p = f.provider("kv-destroy");
    let key = p
        .create_key(&spec("doomed/rsa", Algorithm::Rsa2048Pss))
        .await
        .expect("create")
        .value;
    let name = key
        .uri
        .as_str()
        .rsplit('/')
        .next()
        .expect("name")
        .to_string();
    // The emulated vault keeps deleted keys 90 days: a longer window could not be cancelled.
    let err = p
        .schedule_destroy(&key.uri, Duration::from_secs(91 * 86_400))
        .await
        .expect_err("a window past the retention");
    assert_eq!(err.kind(), "invalid_input");
    assert!(err.to_string().contains("90 days"), "{err}");

    p.schedule_destroy(&key.uri, Duration::from_secs(7 * 86_400))
        .await
        .expect("schedule");
    let described = p.describe(&key.uri).await.expect("describe deleted").value;
    assert_eq!(described.state, ProviderKeyState::PendingDestruction);
    let deleted = p
        .client()
        .get_deleted_key(&name, None)
        .await
        .expect("soft-deleted")
        .into_model()
        .expect("model");
    assert!(deleted.recovery_id.is_some() && deleted.scheduled_purge_date.is_some());
    let err = p
        .sign(&latest(&key), SignInput::Message(b"x"))
        .await
        .expect_err("a deleted key signs");
    assert_eq!(err.kind(), "not_found");

    p.cancel_destroy(&key.uri).await.expect("recover");
    let described = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(described.state, ProviderKeyState::Enabled);
    p.sign(&latest(&key), SignInput::Message(b"x"))
        .await
        .expect("a recovered key signs");

    // Destroy before schedule: refused, Key Vault purges only deleted keys.
    let err = p.destroy(&key.uri).await.expect_err("purge of a live key");
    assert_eq!(err.kind(), "failed_precondition");
    p.schedule_destroy(&key.uri, Duration::from_secs(86_400))
        .await
        .expect("schedule again");
    p.destroy(&key.uri).await.expect("purge");
    let gone = p.client().get_deleted_key(&name, None).await;
    assert_eq!(
        gone.err().and_then(|e| e.http_status()).map(u16::from),
        Some(404)
    );
    assert_eq!(
        p.describe(&key.uri).await.expect_err("purged").kind(),
        "not_found"
    );
    // Destroying what is gone is done.
    p.destroy(&key.uri).await.expect("idempotent");
}

async fn inventory(p: &AzureKeyVaultProvider) -> Vec<keygate_provider::ListedKey> {
    let mut page = PageRequest {
        page_size: 2,
        page_token: String::new(),
    };
    let mut all = Vec::new();
    loop {
        let reply = p.list(&page).await.expect("list");
        assert!(reply.request_id.is_some(), "list carries the request id");
        assert!(reply.value.keys.len() <= 2);
        all.extend(reply.value.keys);
        if reply.value.next_page_token.is_empty() {
            return all;
        }
        page.page_token = reply.value.next_page_token;
    }
}

#[tokio::test]
async fn keys_made_outside_keygate_are_listed_without_a_keygate_id() {
    let f = Fixture::vault().await;
    let p = f.provider("kv-inventory");
    let params = CreateKeyParameters {
        kty: Some(KeyType::Ec),
        curve: Some(CurveName::P384),
        ..Default::default()
    };
    p.client()
        .create_key("made-outside", params.try_into().expect("body"), None)
        .await
        .expect("SDK create");
    let mut ours = Vec::new();
    for i in 0..4 {
        ours.push(
            p.create_key(&spec(&format!("inv/{i}"), Algorithm::Rsa2048Oaep))
                .await
                .expect("create")
                .value,
        );
    }
    let listed = inventory(&p).await;
    assert_eq!(listed.len(), 5, "nextLink followed to the end: {listed:?}");
    let foreign = listed
        .iter()
        .find(|k| k.uri == p.key_uri("made-outside"))
        .expect("the foreign key is listed");
    assert_eq!(foreign.keygate_id, None);
    assert_eq!(foreign.algorithm, Some(Algorithm::EcdsaP384));
    assert_eq!(foreign.state, ProviderKeyState::Enabled);
    for (i, key) in ours.iter().enumerate() {
        let mine = listed
            .iter()
            .find(|k| k.uri == key.uri)
            .expect("ours listed");
        assert_eq!(
            mine.keygate_id.as_deref(),
            Some(format!("id-inv/{i}").as_str())
        );
        assert_eq!(mine.algorithm, Some(Algorithm::Rsa2048Oaep));
    }
    // A foreign key is usable through its URI like any other.
    let described = p
        .describe(&p.key_uri("made-outside"))
        .await
        .expect("describe foreign")
        .value;
    assert_eq!(described.versions.len(), 1);
    // A token whose nextLink leaves the vault is refused, never followed.
    let forged = keygate_provider::kit::encode_token("https://attacker.example/keys?$skiptoken=1");
    let err = p
        .list(&PageRequest {
            page_size: 2,
            page_token: forged,
        })
        .await
        .expect_err("a token leading elsewhere");
    assert_eq!(err.kind(), "invalid_input");
}

#[tokio::test]
async fn data_keys_are_wrapped_where_the_wrap_binds_what_is_asked() {
    let f = Fixture::managed_hsm().await;
    let p = f.provider("mhsm-dk");
    let aes = p
        .create_key(&spec("dk/aes", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let v = latest(&aes);
    // No AAD: A256KW.
    let dk = p
        .generate_data_key(&v, DataKeySpec { len: 32 }, b"")
        .await
        .expect("data key")
        .value;
    assert_eq!(dk.sealed.len(), 1 + 40);
    assert_eq!(dk.sealed[0], 0x12);
    let opened = p.decrypt(&v, &dk.sealed, b"").await.expect("unwrap").value;
    assert_eq!(opened.expose(), dk.plaintext.expose());
    // A wrap binds no AAD: a caller who sends some did not make this blob.
    let err = p
        .decrypt(&v, &dk.sealed, b"ctx")
        .await
        .expect_err("AAD on a wrap");
    assert_eq!(err.kind(), "authentication_failed");
    // With AAD: A256GCM, bound.
    let dk = p
        .generate_data_key(&v, DataKeySpec { len: 32 }, b"ctx")
        .await
        .expect("data key")
        .value;
    assert_eq!(dk.sealed[0], 0x11);
    let opened = p
        .decrypt(&v, &dk.sealed, b"ctx")
        .await
        .expect("decrypt")
        .value;
    assert_eq!(opened.expose(), dk.plaintext.expose());
    assert_eq!(
        p.decrypt(&v, &dk.sealed, b"other")
            .await
            .expect_err("other AAD")
            .kind(),
        "authentication_failed"
    );
    // RSA: wrapKey with RSA-OAEP-256.
    let rsa = p
        .create_key(&spec("dk/rsa", Algorithm::Rsa2048Oaep))
        .await
        .expect("create")
        .value;
    let v = latest(&rsa);
    let dk = p
        .generate_data_key(&v, DataKeySpec { len: 32 }, b"")
        .await
        .expect("data key")
        .value;
    assert_eq!((dk.sealed[0], dk.sealed.len()), (0x02, 1 + 256));
    let opened = p.decrypt(&v, &dk.sealed, b"").await.expect("unwrap").value;
    assert_eq!(opened.expose(), dk.plaintext.expose());
    // A blob made under another key fails authentication.
    let other = p
        .create_key(&spec("dk/other", Algorithm::Rsa2048Oaep))
        .await
        .expect("create")
        .value;
    let err = p
        .decrypt(&latest(&other), &dk.sealed, b"")
        .await
        .expect_err("another key's blob");
    assert_eq!(err.kind(), "authentication_failed");
}

fn guarded(p: AzureKeyVaultProvider, attempts: u32) -> Guarded {
    let settings = GuardSettings {
        deadline: Some(Duration::from_secs(10)),
        retry: RetrySettings {
            max_attempts: attempts,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            budget_ratio: 1.0,
        },
        ..Default::default()
    };
    Guarded::new(
        Arc::new(p),
        &settings,
        Duration::from_secs(10),
        Arc::new(NoMetrics),
    )
}

#[tokio::test]
async fn throttling_honours_retry_after_within_the_guard_then_is_throttled() {
    let f = Fixture::vault().await;
    let p = f.provider("kv-throttle");
    let key = p
        .create_key(&spec("throttled/ec", Algorithm::EcdsaP256))
        .await
        .expect("create")
        .value;
    let v = latest(&key);
    // Alone, the provider makes one attempt: retrying is the guard's job.
    f.emu.hooks().set_retry_after(1);
    f.emu.hooks().fail_next(1, 429);
    let err = p.sign(&v, SignInput::Message(b"x")).await.expect_err("429");
    assert_eq!(err.kind(), "throttled");
    assert!(
        err.to_string().contains("429") && err.to_string().contains("Throttled"),
        "{err}"
    );
    assert_eq!(f.emu.hooks().pending_failures(), 0);

    let g = guarded(p, 3);
    // One 429 with Retry-After: 1 → the guard waits (at least) that second, then succeeds.
    f.emu.hooks().fail_next(1, 429);
    let started = Instant::now();
    g.sign(&v, SignInput::Message(b"x"))
        .await
        .expect("signed after the retry");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the retry came before Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(f.emu.hooks().pending_failures(), 0);
    // Throttled past the attempts: Throttled, naming the provider and the attempts.
    f.emu.hooks().fail_next(10, 429);
    let err = g
        .sign(&v, SignInput::Message(b"x"))
        .await
        .expect_err("throttled");
    assert_eq!(err.kind(), "throttled");
    assert!(
        err.to_string().contains("kv-throttle") && err.to_string().contains("after 3 attempts"),
        "{err}"
    );
    assert_eq!(
        f.emu.hooks().pending_failures(),
        7,
        "three attempts were made"
    );
    // A Retry-After beyond the deadline ends the call at once.
    f.emu.hooks().set_retry_after(60);
    f.emu.hooks().fail_next(5, 429);
    let err = g
        .sign(&v, SignInput::Message(b"x"))
        .await
        .expect_err("throttled");
    assert!(err.to_string().contains("asked to retry after 1m"), "{err}");
    assert_eq!(f.emu.hooks().pending_failures(), 4, "one attempt");
    // Creating is never retried.
    f.emu.hooks().fail_next(5, 429);
    let before = f.emu.hooks().pending_failures();
    let _ = g
        .create_key(&spec("throttled/new", Algorithm::EcdsaP256))
        .await;
    assert!(
        before - f.emu.hooks().pending_failures() <= 2,
        "create retried"
    );
}

#[tokio::test]
async fn an_outage_is_unavailable_and_the_same_provider_recovers() {
    let mut f = Fixture::vault().await;
    let p = f.provider("kv-outage");
    let key = p
        .create_key(&spec("outage/rsa", Algorithm::Rsa2048Oaep))
        .await
        .expect("create")
        .value;
    let v = latest(&key);
    let sealed = p
        .encrypt(&v, &SecretBytes::copy_from(b"before"), b"")
        .await
        .expect("encrypt")
        .value;
    f.emu.stop().await;
    let err = p
        .encrypt(&v, &SecretBytes::copy_from(b"during"), b"")
        .await
        .expect_err("encrypt with the vault down");
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(
        err.to_string().contains("could not reach Key Vault"),
        "{err}"
    );
    f.emu.start_again().await.expect("start again");
    let opened = p
        .decrypt(&v, &sealed, b"")
        .await
        .expect("decrypt after recovery")
        .value;
    assert_eq!(opened.expose(), b"before");
}

#[tokio::test]
async fn a_client_certificate_credential_signs_its_own_assertion() {
    let f = Fixture::vault().await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let cert = rcgen::CertificateParams::new(vec!["keygate-sp".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let pem = f.dir.path().join("sp.pem");
    std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).expect("write pem");
    let mut config = f.config();
    config.credential = CredentialConfig::ClientCertificate {
        tenant_id: "tenant-1".into(),
        client_id: "cert-app".into(),
        certificate: keygate_provider::SecretRef::File(pem),
    };
    let p = AzureKeyVaultProvider::new("kv-cert", config).expect("provider");
    let created = p
        .create_key(&spec("cert/ec", Algorithm::EcdsaP256))
        .await
        .expect("create with a certificate credential");
    assert!(created.request_id.is_some());

    // A wrong client secret gets no token: the backend refused keygate, not a policy.
    std::fs::write(f.dir.path().join("wrong"), "not-the-secret").expect("write");
    let mut config = f.config();
    config.credential = CredentialConfig::ClientSecret {
        tenant_id: "tenant-1".into(),
        client_id: common::CLIENT_ID.into(),
        secret: keygate_provider::SecretRef::File(f.dir.path().join("wrong")),
    };
    let p = AzureKeyVaultProvider::new("kv-wrong", config).expect("provider");
    let err = p
        .create_key(&spec("wrong/ec", Algorithm::EcdsaP256))
        .await
        .expect_err("a wrong secret");
    assert_eq!(err.kind(), "backend_denied", "{err}");
    assert!(!err.to_string().contains("not-the-secret"), "{err}");
}

#[tokio::test]
async fn two_vaults_coexist_and_keep_to_their_own_keys() {
    let a = Fixture::vault().await;
    let b = Fixture::managed_hsm().await;
    let pa = a.provider("kv-a");
    let pb = b.provider("mhsm-b");
    let ka = pa
        .create_key(&spec("shared/name", Algorithm::EcdsaP256))
        .await
        .expect("create in a")
        .value;
    let kb = pb
        .create_key(&spec("shared/name", Algorithm::EcdsaP256))
        .await
        .expect("create in b")
        .value;
    assert_ne!(ka.uri, kb.uri);
    let err = pa.describe(&kb.uri).await.expect_err("b's key through a");
    assert_eq!(err.kind(), "invalid_input");
    assert!(err.to_string().contains("another vault"), "{err}");
    // Managed HSM keys are HSM keys.
    let name = kb
        .uri
        .as_str()
        .rsplit('/')
        .next()
        .expect("name")
        .to_string();
    let jwk = pb
        .client()
        .get_key(&name, None::<KeyClientGetKeyOptions<'_>>)
        .await
        .expect("get")
        .into_model()
        .expect("model")
        .key
        .expect("jwk");
    assert_eq!(jwk.kty, Some(KeyType::EcHsm));
    // AES keys exist only in the Managed HSM.
    let err = pa
        .create_key(&spec("aes/in-a-vault", Algorithm::Aes256Gcm))
        .await
        .expect_err("AES in a vault");
    assert_eq!(err.kind(), "unsupported");
    assert!(err.to_string().contains("Managed HSM"), "{err}");
}

/// CKM_RSA_AES_KEY_WRAP of `target` for the wrapping key in `params`: RSA-OAEP-SHA-256 of a
/// fresh AES-256 key, then AES-KWP of the target under it.
fn wrap_for_import(params: &keygate_provider::ImportParams, target: &[u8]) -> Vec<u8> {
    use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    let public = PublicEncryptingKey::from_der(&params.wrapping_key_spki_der).expect("KEK SPKI");
    let oaep = OaepPublicEncryptingKey::new(public).expect("OAEP key");
    let mut aes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut aes).expect("rng");
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let mut wrapped = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, &aes, &mut out, None)
        .expect("OAEP")
        .to_vec();
    let mut kwp = vec![0u8; target.len() + 16];
    let kwp = AesKek::new(&AES_256, &aes)
        .expect("KEK")
        .wrap_with_padding(target, &mut kwp)
        .expect("KWP");
    wrapped.extend_from_slice(kwp);
    wrapped
}

#[tokio::test]
async fn imported_material_becomes_a_new_version_that_works_as_the_original() {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
    use keygate_provider::{ImportSpec, WrappedKey, WrappingAlgorithm};

    // An RSA signing key in a vault with HSM keys.
    let f = Fixture::vault().await;
    let mut config = f.config();
    config.hsm = true;
    let p = AzureKeyVaultProvider::new("kv-byok", config).expect("provider");
    assert!(p.capabilities().import);
    let key = p
        .create_key(&spec("byok/rsa", Algorithm::Rsa2048Pss))
        .await
        .expect("create")
        .value;
    let params = p
        .import_parameters(&ImportSpec {
            key: key.uri.clone(),
            algorithm: Algorithm::Rsa2048Pss,
            wrapping: WrappingAlgorithm::RsaAesKeyWrapSha256,
        })
        .await
        .expect("import parameters")
        .value;
    let original = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
    let wrapped = WrappedKey::new(wrap_for_import(
        &params,
        original.as_der().expect("pkcs8").as_ref(),
    ));
    let v2 = p
        .import_key(&key.uri, &wrapped, &params)
        .await
        .expect("import")
        .value;
    assert_eq!(v2.number, 2);
    let described = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(described.versions[1], v2);
    let v = latest(&described);
    let sig = p
        .sign(&v, SignInput::Message(b"imported"))
        .await
        .expect("sign")
        .value;
    UnparsedPublicKey::new(
        &signature::RSA_PSS_2048_8192_SHA256,
        original.public_key().as_ref(),
    )
    .verify(b"imported", &sig)
    .expect("the imported version signs with the original key");
    // The KEK is gone once used; a token naming another vault is refused.
    let err = p
        .import_key(
            &key.uri,
            &wrapped,
            &keygate_provider::ImportParams {
                import_token: b"https://elsewhere.vault.azure.net/keys/kek/1".to_vec(),
                ..params.clone()
            },
        )
        .await
        .expect_err("a foreign KEK");
    assert_eq!(err.kind(), "invalid_input");

    // An AES key in a Managed HSM: the HSM's ciphertext opens here with the original.
    let h = Fixture::managed_hsm().await;
    let p = h.provider("mhsm-byok");
    let key = p
        .create_key(&spec("byok/aes", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let params = p
        .import_parameters(&ImportSpec {
            key: key.uri.clone(),
            algorithm: Algorithm::Aes256Gcm,
            wrapping: WrappingAlgorithm::RsaAesKeyWrapSha256,
        })
        .await
        .expect("import parameters")
        .value;
    let mut material = [0u8; 32];
    aws_lc_rs::rand::fill(&mut material).expect("rng");
    let wrapped = WrappedKey::new(wrap_for_import(&params, &material));
    p.import_key(&key.uri, &wrapped, &params)
        .await
        .expect("import");
    let described = p.describe(&key.uri).await.expect("describe").value;
    let blob = p
        .encrypt(
            &latest(&described),
            &SecretBytes::copy_from(b"card"),
            b"aad",
        )
        .await
        .expect("encrypt")
        .value;
    assert_eq!(blob[0], 0x11);
    let (iv, rest) = blob[1..].split_at(12);
    let (tag, ct) = rest.split_at(16);
    let mut data = ct.to_vec();
    data.extend_from_slice(tag);
    let opened = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &material).expect("key"))
        .open_in_place(
            Nonce::try_assume_unique_for_key(iv).expect("iv"),
            Aad::from(b"aad"),
            &mut data,
        )
        .expect("the HSM encrypted with the imported key")
        .to_vec();
    assert_eq!(opened, b"card");
    // Only the wrap every cloud takes.
    let err = p
        .import_parameters(&ImportSpec {
            key: key.uri.clone(),
            algorithm: Algorithm::Aes256Gcm,
            wrapping: WrappingAlgorithm::RsaOaepSha256,
        })
        .await
        .expect_err("plain RSA-OAEP");
    assert_eq!(err.kind(), "unsupported");
}
