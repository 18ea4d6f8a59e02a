//! The Vault provider end to end through gRPC, against a real OpenBao dev server: the
//! conformance suite for every algorithm the provider offers, rotation and re-encryption,
//! inventory of keys made outside keygate, the join between keygate's audit events and
//! OpenBao's audit log, and an outage the gateway survives without a restart.
//!
//! Needs the `bao` binary: `eval "$(tests/backends/install.sh openbao)"` exports
//! `KEYGATE_BAO_BIN`.

mod common;

use common::vault::{on_vault, start};
use common::{events_for, request_id, status_request_id, suite};
use keygate::pb;
use std::time::{Duration, Instant};
use tonic::Code;

/// Length of keygate's ciphertext header (see `src/gateway/envelope.rs`); the provider's own
/// blob follows it.
const HEADER_LEN: usize = 23;

fn encrypt_request(key: &str, plaintext: &[u8], aad: &[u8]) -> pb::EncryptRequest {
    pb::EncryptRequest {
        key: key.into(),
        plaintext: plaintext.to_vec(),
        associated_data: aad.to_vec(),
    }
}

/// The provider blob inside a keygate ciphertext.
fn blob(ciphertext: &[u8]) -> &[u8] {
    &ciphertext[HEADER_LEN..]
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_provider_passes_the_grpc_suite() {
    let stack = start();
    let mut keys = stack.server.root().await;
    suite::run(
        &mut keys,
        "vault",
        "grpc",
        &[
            "aes-256-gcm",
            "chacha20-poly1305",
            "ecdsa-p256",
            "ecdsa-p384",
            "ed25519",
            "hmac-sha256",
            "rsa-2048-oaep",
            "rsa-2048-pss",
            "rsa-2048-pkcs1",
        ],
    )
    .await;
}

// Larger RSA keys take seconds each to generate; a separate test (and OpenBao) lets them run
// alongside the rest.
#[tokio::test(flavor = "multi_thread")]
async fn vault_provider_passes_the_grpc_suite_with_large_rsa_keys() {
    let stack = start();
    let mut keys = stack.server.root().await;
    suite::run(
        &mut keys,
        "vault",
        "big",
        &[
            "rsa-3072-oaep",
            "rsa-3072-pss",
            "rsa-3072-pkcs1",
            "rsa-4096-oaep",
            "rsa-4096-pss",
            "rsa-4096-pkcs1",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_keeps_old_ciphertexts_and_re_encrypt_moves_them_forward() {
    let stack = start();
    let mut keys = stack.server.root().await;
    keys.create_key(on_vault("app/dek", "aes-256-gcm"))
        .await
        .unwrap();
    let v1 = keys
        .encrypt(encrypt_request("app/dek", b"old secret", b"ctx"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v1.key_version, 1);
    assert!(blob(&v1.ciphertext).starts_with(b"vault:v1:"));

    let rotated = keys
        .rotate_key(pb::RotateKeyRequest {
            key: "app/dek".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.primary_version, 2);

    let v2 = keys
        .encrypt(encrypt_request("app/dek", b"new secret", b"ctx"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v2.key_version, 2);
    assert!(
        blob(&v2.ciphertext).starts_with(b"vault:v2:"),
        "Transit itself used version 2"
    );
    let old = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: v1.ciphertext.clone(),
            associated_data: b"ctx".to_vec(),
        })
        .await
        .expect("a version 1 ciphertext still decrypts")
        .into_inner();
    assert_eq!(old.plaintext, b"old secret");
    assert_eq!(old.key_version, 1);

    // The gateway opens and reseals inside one call: the plaintext never reaches the caller.
    let moved = keys
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext: v1.ciphertext.clone(),
            source_associated_data: b"ctx".to_vec(),
            destination_key: String::new(),
            destination_associated_data: b"ctx".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((moved.source_key_version, moved.key_version), (1, 2));
    assert!(blob(&moved.ciphertext).starts_with(b"vault:v2:"));
    let back = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: moved.ciphertext,
            associated_data: b"ctx".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (back.plaintext.as_slice(), back.key_version),
        (&b"old secret"[..], 2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_tells_keys_made_in_openbao_from_keygate_keys() {
    let stack = start();
    let (status, body) = stack
        .bao
        .request(
            "POST",
            "/v1/transit/keys/made-by-hand",
            Some(r#"{"type":"ecdsa-p256"}"#),
        )
        .unwrap();
    assert!(
        status / 100 == 2,
        "creating a key in OpenBao: {status} {body}"
    );
    let mut keys = stack.server.root().await;
    let ours = keys
        .create_key(on_vault("team/ours", "aes-256-gcm"))
        .await
        .unwrap()
        .into_inner();

    let mut admin = stack.server.admin(common::ROOT_TOKEN).await;
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_inventory(pb::ListInventoryRequest {
                provider: "vault".into(),
                page_size: 1,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        found.extend(page.keys);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let by_hand = found
        .iter()
        .find(|k| k.provider_uri == "hashivault://transit/keys/made-by-hand")
        .unwrap_or_else(|| panic!("the hand-made key is listed: {found:?}"));
    assert!(!by_hand.managed, "{by_hand:?}");
    assert_eq!(by_hand.provider, "vault");
    assert_eq!(by_hand.algorithm, "ecdsa-p256");
    assert!(by_hand.key_id.is_empty());
    let listed_ours = found
        .iter()
        .find(|k| k.key_id == ours.id)
        .unwrap_or_else(|| panic!("the keygate key is listed: {found:?}"));
    assert!(listed_ours.managed, "{listed_ours:?}");
    assert_eq!(listed_ours.key_name, "team/ours");
    assert_eq!(listed_ours.algorithm, "aes-256-gcm");
    assert_eq!(found.len(), 2, "{found:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keygate_audit_events_join_openbao_audit_records() {
    let stack = start();
    let mut keys = stack.server.root().await;
    keys.create_key(on_vault("audit/dek", "chacha20-poly1305"))
        .await
        .unwrap();
    let reply = keys
        .encrypt(encrypt_request("audit/dek", b"audited", b""))
        .await
        .unwrap();
    let gateway_id = request_id(&reply);
    assert!(!gateway_id.is_empty(), "the reply carries x-request-id");

    let mut audit = stack.server.audit(common::ROOT_TOKEN).await;
    let events = events_for(&mut audit, &gateway_id).await;
    let event = events
        .iter()
        .find(|e| e.action == "Encrypt")
        .unwrap_or_else(|| panic!("no Encrypt event for {gateway_id}: {events:?}"));
    assert_eq!(event.outcome, "ok");
    let provider_id = event.provider_request_id.clone();
    assert!(!provider_id.is_empty(), "{event:?}");

    // OpenBao's file audit device may write a moment after it replies.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(stack.bao.audit_log_path()).unwrap_or_default();
        let hit = log.lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|record| {
                    let id = record.pointer("/request/id")?.as_str()?.to_string();
                    let path = record.pointer("/request/path")?.as_str()?.to_string();
                    Some(id == provider_id && path.starts_with("transit/encrypt/"))
                })
                .unwrap_or(false)
        });
        if hit {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no OpenBao audit record with request.id {provider_id} in {}",
            stack.bao.audit_log_path().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openbao_outage_is_unavailable_fast_and_keygate_recovers_without_restart() {
    let mut stack = start();
    let mut keys = stack.server.root().await;
    keys.create_key(on_vault("outage/dek", "aes-256-gcm"))
        .await
        .unwrap();
    keys.encrypt(encrypt_request("outage/dek", b"before", b""))
        .await
        .expect("works before the outage");

    stack.bao.stop();
    let started = Instant::now();
    let status = keys
        .encrypt(encrypt_request("outage/dek", b"during", b""))
        .await
        .expect_err("OpenBao is down");
    println!("   outage answered in {:?}", started.elapsed());
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    let mut audit = stack.server.audit(common::ROOT_TOKEN).await;
    let gateway_id = status_request_id(&status);
    assert!(!gateway_id.is_empty(), "the error carries x-request-id");
    let events = events_for(&mut audit, &gateway_id).await;
    let event = events
        .iter()
        .find(|e| e.action == "Encrypt")
        .unwrap_or_else(|| panic!("no Encrypt event for {gateway_id}: {events:?}"));
    assert_eq!(event.outcome, "error", "{event:?}");
    assert!(
        event.reason.to_lowercase().contains("vault"),
        "the reason names the provider: {event:?}"
    );

    // Dev mode keeps nothing, so the old key is gone from OpenBao; a key created through the
    // same keygate process shows the provider reconnected on its own.
    stack.bao.restart().expect("restart OpenBao");
    keys.create_key(on_vault("outage/after", "aes-256-gcm"))
        .await
        .expect("create after the outage");
    let sealed = keys
        .encrypt(encrypt_request("outage/after", b"after", b""))
        .await
        .expect("encrypt after the outage")
        .into_inner();
    let opened = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: sealed.ciphertext,
            associated_data: vec![],
        })
        .await
        .expect("decrypt after the outage")
        .into_inner();
    assert_eq!(opened.plaintext, b"after");
}

/// The Transit key name behind a keygate key (`vault://…/keys/NAME` or similar: its last
/// path segment).
fn transit_name(provider_uri: &str) -> String {
    provider_uri
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn retired_versions_no_longer_decrypt_in_openbao_itself() {
    let stack = start();
    let mut keys = stack.server.root().await;
    let key = keys
        .create_key(on_vault("app/retire", "aes-256-gcm"))
        .await
        .unwrap()
        .into_inner();
    let name = transit_name(&key.provider_uri);
    let old = keys
        .encrypt(encrypt_request("app/retire", b"old", b""))
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    keys.rotate_key(pb::RotateKeyRequest {
        key: "app/retire".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let direct_decrypt = |ciphertext: &[u8]| {
        let blob = String::from_utf8(blob(ciphertext).to_vec()).unwrap();
        stack
            .bao
            .request(
                "POST",
                &format!("/v1/transit/decrypt/{name}"),
                Some(&format!(r#"{{"ciphertext":"{blob}"}}"#)),
            )
            .unwrap()
    };
    let (_, before) = direct_decrypt(&old);
    assert!(!before.contains("too old"), "{before}");

    // Unused within the quiet period (nothing decrypted it): it retires.
    let retired = keys
        .retire_key_versions(pb::RetireKeyVersionsRequest {
            key: "app/retire".into(),
            below: 2,
            force: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retired.retired_below, 2);

    // OpenBao's own view: the key's floor, and a refusal of the v1 ciphertext by the server.
    let (status, config) = stack
        .bao
        .request("GET", &format!("/v1/transit/keys/{name}"), None)
        .unwrap();
    assert_eq!(status, 200, "{config}");
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["data"]["min_decryption_version"], 2, "{config}");
    let (status, after) = direct_decrypt(&old);
    assert_eq!(status, 400, "{after}");
    assert!(after.contains("too old"), "{after}");

    // Through keygate: refused as retired; the newest version works.
    let refused = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: old,
            associated_data: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let new = keys
        .encrypt(encrypt_request("app/retire", b"new", b""))
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    let back = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: new,
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.plaintext, b"new");
}
