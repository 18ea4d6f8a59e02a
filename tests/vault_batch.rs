//! Batch RPCs on the Vault provider go to Transit as `batch_input` requests (up to 190 items
//! each), counted in OpenBao's own audit log, with the same per-item results as the single
//! calls: bad items fail alone, a batch whose every item fails still answers per item, and
//! re-encryption through the stream moves every ciphertext; unary calls that arrive while a
//! Transit request for their key is out share the next one. Against a real OpenBao dev server.

mod common;

use common::vault::{on_vault, start, start_with_guard};
use common::{create, events_for, request_id, rotate};
use keygate::pb;
use std::time::{Duration, Instant};
use tonic::Code;

fn code_of(status: &Option<pb::ItemStatus>) -> (i32, String) {
    let s = status.clone().unwrap_or_default();
    (s.code, s.reason)
}

/// The Transit requests to `path` OpenBao's audit log has answered, once the count stops
/// growing (its file device may write a moment after it replies).
async fn transit_requests(bao: &keygate_test_backends::openbao::OpenBao, path: &str) -> usize {
    let count = || {
        std::fs::read_to_string(bao.audit_log_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|r| {
                r.get("type").and_then(|t| t.as_str()) == Some("response")
                    && r.pointer("/request/path").and_then(|p| p.as_str()) == Some(path)
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = count();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = count();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_reach_transit_as_batch_input_with_per_item_results() {
    let stack = start();
    let mut keys = stack.server.root().await;
    let key = keys
        .create_key(on_vault("vb/dek", "aes-256-gcm"))
        .await
        .expect("create")
        .into_inner();
    let transit_name = key
        .provider_uri
        .rsplit('/')
        .next()
        .expect("name")
        .to_string();
    keys.create_key(create("vb/local", "aes-256-gcm", "root"))
        .await
        .expect("create");

    // 1,000 items: six Transit requests of up to 190, not a thousand.
    let plaintexts: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("item {i}").into_bytes())
        .collect();
    let sealed = keys
        .batch_encrypt(pb::BatchEncryptRequest {
            key: "vb/dek".into(),
            items: plaintexts
                .iter()
                .enumerate()
                .map(|(i, p)| pb::BatchEncryptItem {
                    plaintext: p.clone(),
                    associated_data: if i.is_multiple_of(2) {
                        format!("ctx {i}").into_bytes()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        })
        .await
        .expect("batch encrypt")
        .into_inner();
    assert_eq!(sealed.failed, 0);
    assert_eq!(
        transit_requests(&stack.bao, &format!("transit/encrypt/{transit_name}")).await,
        6
    );
    let ciphertexts: Vec<Vec<u8>> = sealed
        .results
        .iter()
        .map(|r| r.ciphertext.clone())
        .collect();
    let aad = |i: usize| {
        if i.is_multiple_of(2) {
            format!("ctx {i}").into_bytes()
        } else {
            Vec::new()
        }
    };

    // Every one opens, in order, again in six requests.
    let opened = keys
        .batch_decrypt(pb::BatchDecryptRequest {
            key: "vb/dek".into(),
            items: ciphertexts
                .iter()
                .enumerate()
                .map(|(i, c)| pb::BatchDecryptItem {
                    ciphertext: c.clone(),
                    associated_data: aad(i),
                })
                .collect(),
        })
        .await
        .expect("batch decrypt")
        .into_inner();
    assert_eq!(opened.failed, 0);
    for (i, r) in opened.results.iter().enumerate() {
        assert_eq!(r.plaintext, plaintexts[i], "item {i}");
    }
    assert_eq!(
        transit_requests(&stack.bao, &format!("transit/decrypt/{transit_name}")).await,
        6
    );

    // Bad items fail alone, with the single call's reasons.
    let other = keys
        .encrypt(pb::EncryptRequest {
            key: "vb/local".into(),
            plaintext: b"elsewhere".to_vec(),
            associated_data: vec![],
        })
        .await
        .expect("encrypt")
        .into_inner()
        .ciphertext;
    let mut tampered = ciphertexts[1].clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let item = |c: &[u8], a: &[u8]| pb::BatchDecryptItem {
        ciphertext: c.to_vec(),
        associated_data: a.to_vec(),
    };
    let mixed = keys
        .batch_decrypt(pb::BatchDecryptRequest {
            key: "vb/dek".into(),
            items: vec![
                item(&ciphertexts[1], b""),
                item(&tampered, b""),
                item(&other, b""),
                item(b"not a ciphertext", b""),
                item(&ciphertexts[0], b"wrong context"),
                item(&ciphertexts[0], b"ctx 0"),
            ],
        })
        .await
        .expect("batch decrypt")
        .into_inner();
    assert_eq!(mixed.failed, 4);
    assert_eq!(mixed.results[0].plaintext, plaintexts[1]);
    assert_eq!(code_of(&mixed.results[1].status).1, "CIPHERTEXT_CORRUPT");
    assert_eq!(code_of(&mixed.results[2].status).1, "CIPHERTEXT_OTHER_KEY");
    assert_eq!(code_of(&mixed.results[3].status).1, "CIPHERTEXT_MALFORMED");
    assert_eq!(code_of(&mixed.results[4].status).1, "CIPHERTEXT_CORRUPT");
    assert_eq!(mixed.results[5].plaintext, plaintexts[0]);
    for failed in &mixed.results[1..5] {
        assert!(failed.plaintext.is_empty(), "a failed item carries nothing");
    }

    // Every item sent to Transit fails (it answers 400): each still has its own result.
    let all_bad = keys
        .batch_decrypt(pb::BatchDecryptRequest {
            key: "vb/dek".into(),
            items: vec![item(&tampered, b""), item(&ciphertexts[0], b"wrong")],
        })
        .await
        .expect("batch decrypt")
        .into_inner();
    assert_eq!(all_bad.failed, 2);
    for r in &all_bad.results {
        assert_eq!(
            code_of(&r.status),
            (
                Code::InvalidArgument as i32,
                "CIPHERTEXT_CORRUPT".to_string()
            ),
            "{r:?}"
        );
    }

    // Transit ahead of keygate (rotated there, not yet known to keygate): batch items are
    // still sealed under keygate's version, and open.
    let status = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", "-H"])
        .arg(format!("X-Vault-Token: {}", stack.bao.token()))
        .arg(format!(
            "{}/v1/transit/keys/{transit_name}/rotate",
            stack.bao.addr()
        ))
        .output()
        .expect("curl runs")
        .status;
    assert!(status.success(), "Transit rotate");
    let ahead = keys
        .batch_encrypt(pb::BatchEncryptRequest {
            key: "vb/dek".into(),
            items: vec![pb::BatchEncryptItem {
                plaintext: b"pinned".to_vec(),
                associated_data: vec![],
            }],
        })
        .await
        .expect("batch encrypt")
        .into_inner();
    assert_eq!((ahead.failed, ahead.results[0].key_version), (0, 1));
    assert!(String::from_utf8_lossy(&ahead.results[0].ciphertext).contains("vault:v1:"));
    let reopened = keys
        .batch_decrypt(pb::BatchDecryptRequest {
            key: "vb/dek".into(),
            items: vec![item(&ahead.results[0].ciphertext, b"")],
        })
        .await
        .expect("batch decrypt")
        .into_inner();
    assert_eq!(reopened.results[0].plaintext, b"pinned");

    // After a rotation the stream moves every ciphertext to v2, through batches both ways.
    rotate(&mut keys, "vb/dek").await;
    let before = transit_requests(&stack.bao, &format!("transit/decrypt/{transit_name}")).await;
    let moved = keys
        .batch_re_encrypt(pb::BatchReEncryptRequest {
            key: "vb/dek".into(),
            destination_key: String::new(),
            items: ciphertexts
                .iter()
                .enumerate()
                .take(300)
                .map(|(i, c)| pb::BatchReEncryptItem {
                    ciphertext: c.clone(),
                    source_associated_data: aad(i),
                    destination_associated_data: aad(i),
                })
                .chain([pb::BatchReEncryptItem {
                    ciphertext: tampered.clone(),
                    ..Default::default()
                }])
                .collect(),
        })
        .await
        .expect("batch re-encrypt")
        .into_inner();
    assert_eq!(moved.failed, 1);
    assert_eq!(code_of(&moved.results[300].status).1, "CIPHERTEXT_CORRUPT");
    assert!(moved.results[300].ciphertext.is_empty());
    assert_eq!(
        transit_requests(&stack.bao, &format!("transit/decrypt/{transit_name}")).await - before,
        2,
        "300 good items and one bad: two decrypt requests"
    );
    let reopened = keys
        .batch_decrypt(pb::BatchDecryptRequest {
            key: "vb/dek".into(),
            items: moved.results[..300]
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    assert_eq!((r.source_key_version, r.key_version), (1, 2));
                    pb::BatchDecryptItem {
                        ciphertext: r.ciphertext.clone(),
                        associated_data: aad(i),
                    }
                })
                .collect(),
        })
        .await
        .expect("batch decrypt")
        .into_inner();
    assert_eq!(reopened.failed, 0);
    for (i, r) in reopened.results.iter().enumerate() {
        assert_eq!(
            (r.plaintext.as_slice(), r.key_version),
            (plaintexts[i].as_slice(), 2)
        );
    }
}

/// Unary encrypts that arrive while a Transit request for their key is out wait and go
/// together in the next one, as one `batch_input` request; each call still gets its own
/// ciphertext and its own audit event, naming the Transit request it went in.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_unary_encrypts_share_transit_requests_each_audited_on_its_own() {
    // One request out per key version before calls share; each Transit encrypt is held 1 s
    // (dev-mode fault injection), so the calls sent meanwhile all wait for the first.
    let stack = start_with_guard(
        "[providers.vault.guard]\n\
         coalesce = { in_flight = 1 }\n\
         [providers.vault.guard.faults]\n\
         delay = \"1s\"\n\
         ops = [\"encrypt\", \"encrypt_batch\"]\n",
    );
    let mut keys = stack.server.root().await;
    let key = keys
        .create_key(on_vault("vc/dek", "aes-256-gcm"))
        .await
        .expect("create")
        .into_inner();
    let transit_name = key.provider_uri.rsplit('/').next().expect("name");
    const CALLS: usize = 12;
    let calls = (0..CALLS).map(|i| {
        let mut keys = keys.clone();
        async move {
            let plaintext = format!("secret {i}").into_bytes();
            let reply = keys
                .encrypt(pb::EncryptRequest {
                    key: "vc/dek".into(),
                    plaintext: plaintext.clone(),
                    associated_data: format!("call {i}").into_bytes(),
                })
                .await
                .expect("encrypt");
            (plaintext, request_id(&reply), reply.into_inner().ciphertext)
        }
    });
    let sealed = futures::future::join_all(calls).await;

    let requests = transit_requests(&stack.bao, &format!("transit/encrypt/{transit_name}")).await;
    assert!(
        (2..CALLS).contains(&requests),
        "{CALLS} calls went to Transit in {requests} requests: the first alone, the rest shared"
    );
    let mut audit = stack.server.audit(common::ROOT_TOKEN).await;
    let mut backend_ids = std::collections::HashSet::new();
    for (i, (plaintext, request_id, ciphertext)) in sealed.iter().enumerate() {
        let opened = keys
            .decrypt(pb::DecryptRequest {
                ciphertext: ciphertext.clone(),
                associated_data: format!("call {i}").into_bytes(),
            })
            .await
            .expect("decrypt")
            .into_inner();
        assert_eq!(
            &opened.plaintext, plaintext,
            "call {i} opens to its own plaintext"
        );
        let events = events_for(&mut audit, request_id).await;
        assert_eq!(events.len(), 1, "call {i} has its own event: {events:?}");
        assert_eq!(events[0].action, "Encrypt");
        assert!(
            !events[0].provider_request_id.is_empty(),
            "call {i}'s event names its Transit request"
        );
        backend_ids.insert(events[0].provider_request_id.clone());
    }
    assert_eq!(
        backend_ids.len(),
        requests,
        "the events name exactly the Transit requests OpenBao answered"
    );
}
