//! Batch RPCs and the re-encryption stream end to end through gRPC (local provider): per-item
//! results, nothing half-applied, one audit event per batch, and `keygate rewrap` moving
//! ciphertexts from v1 to the newest version.

mod common;

use common::{Keys, Server, create, events_for, request_id, rotate};
use keygate::pb;
use std::io::Write as _;
use tonic::Code;

fn enc(plaintext: &[u8], aad: &[u8]) -> pb::BatchEncryptItem {
    pb::BatchEncryptItem {
        plaintext: plaintext.to_vec(),
        associated_data: aad.to_vec(),
    }
}

fn dec(ciphertext: &[u8], aad: &[u8]) -> pb::BatchDecryptItem {
    pb::BatchDecryptItem {
        ciphertext: ciphertext.to_vec(),
        associated_data: aad.to_vec(),
    }
}

fn rewrap_item(ciphertext: &[u8]) -> pb::BatchReEncryptItem {
    pb::BatchReEncryptItem {
        ciphertext: ciphertext.to_vec(),
        ..Default::default()
    }
}

fn code_of(status: &Option<pb::ItemStatus>) -> (i32, String) {
    let s = status.clone().unwrap_or_default();
    (s.code, s.reason)
}

async fn seal_many(keys: &mut Keys, key: &str, plaintexts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for chunk in plaintexts.chunks(1000) {
        let reply = keys
            .batch_encrypt(pb::BatchEncryptRequest {
                key: key.into(),
                items: chunk.iter().map(|p| enc(p, b"")).collect(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.failed, 0);
        out.extend(reply.results.into_iter().map(|r| r.ciphertext));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_batches_give_per_item_results_and_apply_nothing_for_failed_items() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("app/batch", "aes-256-gcm", "root"))
        .await
        .unwrap();
    keys.create_key(create("app/other", "aes-256-gcm", "root"))
        .await
        .unwrap();

    // Encrypt: the oversized item fails alone; the others are sealed.
    let big = vec![7u8; 70 * 1024];
    let reply = keys
        .batch_encrypt(pb::BatchEncryptRequest {
            key: "app/batch".into(),
            items: vec![enc(b"one", b""), enc(&big, b""), enc(b"three", b"ctx")],
        })
        .await
        .unwrap();
    let encrypt_id = request_id(&reply);
    let sealed = reply.into_inner();
    assert_eq!(sealed.results.len(), 3);
    assert_eq!(sealed.failed, 1);
    assert_eq!(code_of(&sealed.results[0].status).0, 0);
    assert_eq!(
        code_of(&sealed.results[1].status),
        (Code::InvalidArgument as i32, "TOO_LARGE".to_string())
    );
    assert!(sealed.results[1].ciphertext.is_empty());
    assert_eq!(code_of(&sealed.results[2].status).0, 0);
    let one = sealed.results[0].ciphertext.clone();
    let three = sealed.results[2].ciphertext.clone();

    let other = keys
        .encrypt(pb::EncryptRequest {
            key: "app/other".into(),
            plaintext: b"elsewhere".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    let mut tampered = one.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;

    // Decrypt: good items open; each bad one says why.
    let opened = keys
        .batch_decrypt(pb::BatchDecryptRequest {
            key: "app/batch".into(),
            items: vec![
                dec(&one, b""),
                dec(&tampered, b""),
                dec(&other, b""),
                dec(b"not a ciphertext", b""),
                dec(&three, b"wrong context"),
                dec(&three, b"ctx"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.failed, 4);
    assert_eq!(opened.results[0].plaintext, b"one");
    assert_eq!(opened.results[0].key_version, 1);
    assert_eq!(
        code_of(&opened.results[1].status).1,
        "CIPHERTEXT_CORRUPT",
        "{:?}",
        opened.results[1].status
    );
    assert_eq!(code_of(&opened.results[2].status).1, "CIPHERTEXT_OTHER_KEY");
    assert_eq!(code_of(&opened.results[3].status).1, "CIPHERTEXT_MALFORMED");
    assert_eq!(code_of(&opened.results[4].status).1, "CIPHERTEXT_CORRUPT");
    for failed in &opened.results[1..5] {
        assert!(failed.plaintext.is_empty(), "a failed item carries nothing");
    }
    assert_eq!(opened.results[5].plaintext, b"three");

    // ReEncrypt after a rotation: good items move to v2, bad ones have no ciphertext.
    rotate(&mut keys, "app/batch").await;
    let moved = keys
        .batch_re_encrypt(pb::BatchReEncryptRequest {
            key: "app/batch".into(),
            destination_key: String::new(),
            items: vec![
                rewrap_item(&one),
                rewrap_item(&tampered),
                rewrap_item(&other),
            ],
        })
        .await
        .unwrap();
    let moved_id = request_id(&moved);
    let moved = moved.into_inner();
    assert_eq!(moved.failed, 2);
    assert_eq!(moved.results[0].source_key_version, 1);
    assert_eq!(moved.results[0].key_version, 2);
    assert!(moved.results[1].ciphertext.is_empty());
    assert!(moved.results[2].ciphertext.is_empty());
    let back = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: moved.results[0].ciphertext.clone(),
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.plaintext, b"one");
    assert_eq!(back.key_version, 2);

    // One event per batch, with the per-item outcomes.
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let events = events_for(&mut audit, &encrypt_id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "Encrypt");
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["rpc"], "BatchEncrypt");
    assert_eq!(details["items"], 3);
    assert_eq!(details["failed"], 1);
    assert_eq!(details["failures"][0]["index"], 1);
    assert_eq!(details["failures"][0]["reason"], "TOO_LARGE");
    assert_eq!(details["versions"]["1"], 2);
    let events = events_for(&mut audit, &moved_id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "ReEncrypt");
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["rpc"], "BatchReEncrypt");
    assert_eq!(details["versions"]["1"], 1);
    assert_eq!(details["failed"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_wrong_as_a_whole_fails_whole_with_nothing_done() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("app/whole", "aes-256-gcm", "root"))
        .await
        .unwrap();

    let too_many = keys
        .batch_encrypt(pb::BatchEncryptRequest {
            key: "app/whole".into(),
            items: (0..1001).map(|_| enc(b"x", b"")).collect(),
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert!(
        too_many.message().contains("1000"),
        "{}",
        too_many.message()
    );

    let empty = keys
        .batch_decrypt(pb::BatchDecryptRequest {
            key: "app/whole".into(),
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);

    let missing = keys
        .batch_re_encrypt(pb::BatchReEncryptRequest {
            key: "app/none".into(),
            destination_key: String::new(),
            items: vec![rewrap_item(b"kg")],
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // A disabled key: the whole batch is refused by the lifecycle check, before any item.
    let ct = seal_many(&mut keys, "app/whole", &[b"kept".to_vec()]).await;
    keys.disable_key(pb::DisableKeyRequest {
        key: "app/whole".into(),
    })
    .await
    .unwrap();
    let disabled = keys
        .batch_decrypt(pb::BatchDecryptRequest {
            key: "app/whole".into(),
            items: vec![dec(&ct[0], b"")],
        })
        .await
        .unwrap_err();
    assert_eq!(disabled.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_moves_every_ciphertext_and_reports_bad_ones_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("app/stream", "aes-256-gcm", "root"))
        .await
        .unwrap();
    let plaintexts: Vec<Vec<u8>> = (0..2500u32)
        .map(|i| format!("record {i}").into_bytes())
        .collect();
    let mut ciphertexts = seal_many(&mut keys, "app/stream", &plaintexts).await;
    rotate(&mut keys, "app/stream").await;
    ciphertexts[1234] = b"garbage".to_vec();

    let chunks: Vec<pb::ReEncryptStreamRequest> = ciphertexts
        .chunks(300)
        .enumerate()
        .map(|(i, chunk)| pb::ReEncryptStreamRequest {
            key: if i == 0 {
                "app/stream".into()
            } else {
                String::new()
            },
            destination_key: String::new(),
            items: chunk.iter().map(|c| rewrap_item(c)).collect(),
        })
        .collect();
    let mut responses = keys
        .re_encrypt_stream(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    let mut moved = Vec::new();
    let mut offsets = Vec::new();
    while let Some(r) = responses.message().await.unwrap() {
        offsets.push(r.offset);
        moved.extend(r.results);
    }
    assert_eq!(offsets, (0..9).map(|i| i * 300).collect::<Vec<u64>>());
    assert_eq!(moved.len(), 2500);
    assert_eq!(code_of(&moved[1234].status).1, "CIPHERTEXT_MALFORMED");
    let good: Vec<_> = moved
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1234)
        .collect();
    for (_, r) in &good {
        assert_eq!(r.key_version, 2);
        assert_eq!(r.source_key_version, 1);
    }
    let items: Vec<_> = good.iter().map(|(_, r)| dec(&r.ciphertext, b"")).collect();
    let mut index = good.iter().map(|(i, _)| *i);
    for chunk in items.chunks(1000) {
        let opened = keys
            .batch_decrypt(pb::BatchDecryptRequest {
                key: "app/stream".into(),
                items: chunk.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(opened.failed, 0);
        for r in opened.results {
            assert_eq!(r.plaintext, plaintexts[index.next().unwrap()]);
            assert_eq!(r.key_version, 2);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keygate_rewrap_moves_ciphertexts_from_v1_to_the_newest_version() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("app/rewrap", "aes-256-gcm", "root"))
        .await
        .unwrap();
    const N: usize = 5000;
    let plaintexts: Vec<Vec<u8>> = (0..N).map(|i| format!("row {i}").into_bytes()).collect();
    let ciphertexts = seal_many(&mut keys, "app/rewrap", &plaintexts).await;
    rotate(&mut keys, "app/rewrap").await;
    rotate(&mut keys, "app/rewrap").await;

    let input = dir.path().join("v1.txt");
    let mut file = std::fs::File::create(&input).unwrap();
    for c in &ciphertexts {
        writeln!(file, "{}", b64.encode(c)).unwrap();
    }
    drop(file);
    let output = dir.path().join("v3.txt");
    let run = server
        .cli()
        .args([
            "rewrap",
            "--key",
            "app/rewrap",
            "--chunk",
            "700",
            "--progress",
        ])
        .arg(&input)
        .arg("--out")
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("rewrapped {N} ciphertexts")),
        "{stderr}"
    );
    assert!(stderr.contains("0 failed"), "{stderr}");

    let lines: Vec<String> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), N);
    let rewrapped: Vec<Vec<u8>> = lines.iter().map(|l| b64.decode(l).unwrap()).collect();
    for (i, chunk) in rewrapped.chunks(1000).enumerate() {
        let opened = keys
            .batch_decrypt(pb::BatchDecryptRequest {
                key: "app/rewrap".into(),
                items: chunk.iter().map(|c| dec(c, b"")).collect(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(opened.failed, 0);
        for (j, r) in opened.results.iter().enumerate() {
            assert_eq!(r.key_version, 3);
            assert_eq!(r.plaintext, plaintexts[i * 1000 + j]);
        }
    }

    // A bad line is reported on stderr, leaves its output line empty, and the exit code says so.
    let mut with_bad = String::new();
    with_bad.push_str(&format!("{}\n", b64.encode(&ciphertexts[0])));
    with_bad.push_str("bm90IGEga2V5Z2F0ZSBjaXBoZXJ0ZXh0\n\n");
    with_bad.push_str(&format!("{}\n", b64.encode(&ciphertexts[1])));
    let mut child = server
        .cli()
        .args(["rewrap", "--key", "app/rewrap"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(with_bad.as_bytes())
        .unwrap();
    let run = child.wait_with_output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("ciphertext 2: CIPHERTEXT_MALFORMED"),
        "{stderr}"
    );
    let out = String::from_utf8_lossy(&run.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[1].is_empty());
    assert!(!lines[0].is_empty() && !lines[2].is_empty());
}
