//! The most verbose logging never prints a plaintext, key material or a token.

mod common;

use common::{ROOT_TOKEN, Server, ServerOptions, create};
use keygate::pb;

#[tokio::test(flavor = "multi_thread")]
async fn trace_logging_shows_no_plaintext_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            log_filter: "trace".into(),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let plaintext = b"PLAINTEXT-MARKER-7f3a9c";
    keys.create_key(create("logged", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    let ct = keys
        .encrypt(pb::EncryptRequest {
            key: "logged".into(),
            plaintext: plaintext.to_vec(),
            associated_data: b"AAD-MARKER".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    let back = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: ct,
            associated_data: b"AAD-MARKER".to_vec(),
        })
        .await
        .unwrap();
    assert_eq!(back.into_inner().plaintext, plaintext);
    let dk = keys
        .generate_data_key(pb::GenerateDataKeyRequest {
            key: "logged".into(),
            length_bytes: 32,
            without_plaintext: false,
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    // Failures too: a bad token must not be echoed.
    let mut bad = server.keys("kg_WRONG_TOKEN_MARKER_123456").await;
    let _ = bad
        .get_key(pb::GetKeyRequest {
            key: "logged".into(),
            usage: false,
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let log = server.output();
    assert!(
        log.lines().count() > 20,
        "trace logging printed almost nothing:\n{log}"
    );
    for (what, needle) in [
        ("plaintext", String::from_utf8_lossy(plaintext).to_string()),
        ("root token", ROOT_TOKEN.to_string()),
        ("rejected token", "kg_WRONG_TOKEN_MARKER_123456".to_string()),
        ("data key (hex)", hex::encode(&dk.plaintext)),
    ] {
        assert!(!log.contains(&needle), "the server log contains the {what}");
    }
    // Nor as a byte array dump.
    let as_debug = format!("{:?}", &plaintext[..]);
    assert!(
        !log.contains(&as_debug[1..as_debug.len() - 1]),
        "the server log contains the plaintext bytes"
    );
}
