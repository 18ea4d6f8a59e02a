//! The Vault provider against a real OpenBao dev server.
//!
//! Needs the `bao` binary: `eval "$(tests/backends/install.sh openbao)"` exports
//! `KEYGATE_BAO_BIN`; without it (and without `bao` on PATH) every test fails, saying so.

use keygate_provider::conformance::{self, Options};
use keygate_provider::{
    Algorithm, BatchItem, KeyProvider, KeySpec, KeyUri, PageRequest, ProviderError, ProviderKey,
    SecretBytes, VersionRef,
};
use keygate_provider_vault::{SecretRef, VaultConfig, VaultCredentials, VaultProvider};
use keygate_test_backends::openbao::OpenBao;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn start_bao() -> OpenBao {
    OpenBao::start().unwrap_or_else(|e| {
        panic!(
            "cannot start OpenBao for the Vault provider tests: {e}\n\
             install it with: eval \"$(tests/backends/install.sh openbao)\""
        )
    })
}

fn config(bao: &OpenBao) -> VaultConfig {
    // The reference is not resolved here: the test hands the token over directly.
    VaultConfig::with_token(bao.addr(), SecretRef::Env("KEYGATE_TEST_UNUSED".into()))
}

async fn provider_with(config: VaultConfig, token: &str) -> VaultProvider {
    VaultProvider::connect(
        "vault-test",
        config,
        VaultCredentials::Token(SecretBytes::copy_from(token.as_bytes())),
    )
    .await
    .expect("provider connects")
}

async fn provider(bao: &OpenBao) -> VaultProvider {
    provider_with(config(bao), bao.token()).await
}

fn spec(name: &str, algorithm: Algorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        key_id: format!("id-{}", name.replace('/', "-")),
        algorithm,
        owner: "tests".into(),
        environment: "dev".into(),
        crypto_period: Duration::from_secs(30 * 86_400),
        labels: BTreeMap::new(),
    }
}

fn version(key: &ProviderKey, number: u32) -> VersionRef {
    let v = key
        .versions
        .iter()
        .find(|v| v.number == number)
        .expect("version exists");
    VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_suite_passes_for_every_algorithm() {
    let bao = start_bao();
    let provider = provider(&bao).await;
    let mut options = Options::new("conf");
    options.unknown_uri = Some(KeyUri::new("hashivault://transit/keys/no-such-key"));
    if let Err(report) = conformance::run(&provider, &options).await {
        panic!("{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_made_outside_keygate_are_listed() {
    let bao = start_bao();
    let (status, body) = bao
        .request(
            "POST",
            "/v1/transit/keys/made-by-hand",
            Some(r#"{"type":"ecdsa-p256"}"#),
        )
        .expect("request");
    assert!(
        status / 100 == 2,
        "creating a key directly: {status} {body}"
    );
    let (status, body) = bao
        .request(
            "POST",
            "/v1/transit/keys/hand-hmac",
            Some(r#"{"type":"hmac","key_size":48}"#),
        )
        .expect("request");
    assert!(
        status / 100 == 2,
        "creating an HMAC key directly: {status} {body}"
    );
    let provider = provider(&bao).await;
    let ours = provider
        .create_key(&spec("team/ours", Algorithm::Rsa2048Pkcs1))
        .await
        .expect("create")
        .value;

    let mut found = Vec::new();
    let mut page = PageRequest {
        page_size: 1,
        page_token: String::new(),
    };
    loop {
        let listing = provider.list(&page).await.expect("list").value;
        found.extend(listing.keys);
        if listing.next_page_token.is_empty() {
            break;
        }
        page.page_token = listing.next_page_token;
    }
    let by_hand = found
        .iter()
        .find(|k| k.uri.as_str() == "hashivault://transit/keys/made-by-hand")
        .expect("the hand-made key is listed");
    assert_eq!(by_hand.algorithm, Some(Algorithm::EcdsaP256));
    assert_eq!(by_hand.keygate_id, None);
    let hmac = found
        .iter()
        .find(|k| k.uri.as_str() == "hashivault://transit/keys/hand-hmac")
        .expect("the hand-made HMAC key is listed");
    assert_eq!(hmac.algorithm, Some(Algorithm::HmacSha256));
    let listed_ours = found
        .iter()
        .find(|k| k.uri == ours.uri)
        .expect("ours is listed");
    assert_eq!(listed_ours.keygate_id.as_deref(), Some("id-team-ours"));
    assert_eq!(listed_ours.algorithm, Some(Algorithm::Rsa2048Pkcs1));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_keeps_old_ciphertexts_and_encrypts_with_the_new_version() {
    let bao = start_bao();
    let provider = provider(&bao).await;
    let key = provider
        .create_key(&spec("payments/card-dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    assert!(
        key.uri
            .as_str()
            .starts_with("hashivault://transit/keys/payments.card-dek.kg.")
    );
    let plaintext = SecretBytes::copy_from(b"card 4111");
    let v1 = version(&key, 1);
    let old = provider
        .encrypt(&v1, &plaintext, b"ctx")
        .await
        .expect("encrypt v1")
        .value;
    assert!(old.starts_with(b"vault:v1:"));

    let rotated = provider.rotate(&key.uri).await.expect("rotate").value;
    assert_eq!(rotated.number, 2);
    let key = provider.describe(&key.uri).await.expect("describe").value;
    let v2 = version(&key, 2);
    let new = provider
        .encrypt(&v2, &plaintext, b"ctx")
        .await
        .expect("encrypt v2")
        .value;
    assert!(
        new.starts_with(b"vault:v2:"),
        "new encryptions use version 2"
    );
    let back = provider
        .decrypt(&v1, &old, b"ctx")
        .await
        .expect("decrypt v1")
        .value;
    assert_eq!(back.expose(), plaintext.expose());
    // A blob handed in under the wrong version is refused, not silently decrypted.
    let err = provider
        .decrypt(&v2, &old, b"ctx")
        .await
        .expect_err("version mismatch");
    assert_eq!(err.kind(), "authentication_failed");

    provider
        .schedule_destroy(&key.uri, Duration::from_secs(86_400))
        .await
        .expect("schedule destroy");
    let pending = provider.describe(&key.uri).await.expect("describe").value;
    assert_eq!(pending.state, keygate_provider::ProviderKeyState::Disabled);
    let err = provider
        .encrypt(&v2, &plaintext, b"ctx")
        .await
        .expect_err("a key pending destruction is unusable");
    assert_eq!(err.kind(), "failed_precondition");
    provider.destroy(&key.uri).await.expect("destroy");
    let err = provider.describe(&key.uri).await.expect_err("destroyed");
    assert_eq!(err.kind(), "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_records_the_request_id_the_provider_returns() {
    let bao = start_bao();
    let provider = provider(&bao).await;
    let key = provider
        .create_key(&spec("audit/dek", Algorithm::ChaCha20Poly1305))
        .await
        .expect("create")
        .value;
    let reply = provider
        .encrypt(&version(&key, 1), &SecretBytes::copy_from(b"audited"), b"")
        .await
        .expect("encrypt");
    let request_id = reply
        .request_id
        .expect("encrypt carries Vault's request_id");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(bao.audit_log_path()).unwrap_or_default();
        let hit = log.lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|record| {
                    let id = record.pointer("/request/id")?.as_str()?.to_string();
                    let path = record.pointer("/request/path")?.as_str()?.to_string();
                    Some(id == request_id && path.starts_with("transit/encrypt/"))
                })
                .unwrap_or(false)
        });
        if hit {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no audit record with request.id {request_id} in {}",
            bao.audit_log_path().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_is_reported_fast_and_the_provider_recovers() {
    let mut bao = start_bao();
    let provider = provider(&bao).await;
    let key = provider
        .create_key(&spec("outage/dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    bao.stop();

    let started = Instant::now();
    let err = provider
        .encrypt(&version(&key, 1), &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect_err("server is down");
    assert!(
        matches!(err, ProviderError::Unavailable { .. }),
        "expected unavailable, got {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string()
            .contains("encrypt on hashivault://transit/keys/outage.dek"),
        "{err}"
    );

    // Dev mode keeps nothing: the old key is gone, so recovery is shown with a fresh one.
    bao.restart().expect("restart");
    let key = provider
        .create_key(&spec("outage/after", Algorithm::Aes256Gcm))
        .await
        .expect("create after restart")
        .value;
    let blob = provider
        .encrypt(&version(&key, 1), &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect("encrypt after restart")
        .value;
    assert!(blob.starts_with(b"vault:v1:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_permission_is_backend_denied() {
    let bao = start_bao();
    let admin = provider(&bao).await;
    let key = admin
        .create_key(&spec("denied/dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let policy = r#"{"policy":"path \"transit/keys/*\" { capabilities = [\"read\"] }"}"#;
    let (status, body) = bao
        .request(
            "PUT",
            "/v1/sys/policies/acl/keygate-read-only",
            Some(policy),
        )
        .expect("request");
    assert!(status / 100 == 2, "writing policy: {status} {body}");
    let (status, body) = bao
        .request(
            "POST",
            "/v1/auth/token/create",
            Some(r#"{"policies":["keygate-read-only"],"ttl":"1h","no_default_policy":true}"#),
        )
        .expect("request");
    assert!(status / 100 == 2, "creating token: {status} {body}");
    let created: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = created
        .pointer("/auth/client_token")
        .and_then(|t| t.as_str())
        .expect("token")
        .to_string();

    let restricted = provider_with(config(&bao), &token).await;
    restricted
        .describe(&key.uri)
        .await
        .expect("read is allowed");
    let err = restricted
        .encrypt(&version(&key, 1), &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect_err("encrypt is not allowed");
    assert!(
        matches!(err, ProviderError::BackendDenied { .. }),
        "expected backend_denied, got {err}"
    );
    let text = err.to_string();
    assert!(text.contains("Vault refused encrypt"), "{text}");
    assert!(!text.contains(&token), "the token never appears in errors");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_reported_at_once_and_retried_by_the_guard() {
    use keygate_provider::kit::{GuardSettings, Guarded, NoMetrics, RetrySettings};
    use std::sync::Arc;
    let bao = start_bao();
    let quota = r#"{"path":"transit/","rate":1,"interval":"60s"}"#;
    let (status, body) = bao
        .request(
            "POST",
            "/v1/sys/quotas/rate-limit/keygate-test",
            Some(quota),
        )
        .expect("request");
    assert!(
        status / 100 == 2,
        "creating rate-limit quota: {status} {body}"
    );
    let provider = Arc::new(provider(&bao).await);
    let mut throttled = None;
    for i in 0..5 {
        if let Err(e) = provider
            .create_key(&spec(&format!("throttle/k{i}"), Algorithm::Aes256Gcm))
            .await
        {
            throttled = Some(e);
            break;
        }
    }
    let err = throttled.expect("a 1-per-minute quota throttles within five requests");
    assert!(
        matches!(err, ProviderError::Throttled { .. }),
        "expected throttled, got {err}"
    );
    assert!(
        !err.to_string().contains("attempts"),
        "the provider alone tries once: {err}"
    );

    // The guard retries what may be retried, then reports the throttling.
    let settings = GuardSettings {
        retry: RetrySettings {
            max_attempts: 3,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            budget_ratio: 0.2,
        },
        ..Default::default()
    };
    let guarded = Guarded::new(
        provider.clone(),
        &settings,
        Duration::from_secs(5),
        Arc::new(NoMetrics),
    );
    let started = Instant::now();
    let err = guarded
        .describe(&provider.uri_for("no-such-key"))
        .await
        .expect_err("throttled");
    assert!(
        matches!(err, ProviderError::Throttled { .. }),
        "expected throttled, got {err}"
    );
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the deadline"
    );
}

/// Sends a set-up request with the root token and returns the JSON answer, failing the test on
/// an error status.
fn setup(bao: &OpenBao, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
    let (status, text) = bao.request(method, path, body).expect("request");
    assert!(status / 100 == 2, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn approle_login_and_token_renewal_outlive_the_token_max_ttl() {
    let bao = start_bao();
    setup(
        &bao,
        "POST",
        "/v1/sys/auth/approle",
        Some(r#"{"type":"approle"}"#),
    );
    let policy = r#"{"policy":"path \"transit/*\" { capabilities = [\"create\",\"read\",\"update\",\"delete\",\"list\"] }"}"#;
    setup(
        &bao,
        "PUT",
        "/v1/sys/policies/acl/keygate-transit",
        Some(policy),
    );
    // Short lifetimes so renewal and re-login both happen within the test.
    setup(
        &bao,
        "POST",
        "/v1/auth/approle/role/keygate",
        Some(r#"{"token_policies":["keygate-transit"],"token_ttl":"3s","token_max_ttl":"6s"}"#),
    );
    let role = setup(&bao, "GET", "/v1/auth/approle/role/keygate/role-id", None);
    let secret = setup(
        &bao,
        "POST",
        "/v1/auth/approle/role/keygate/secret-id",
        None,
    );
    let dir = bao
        .audit_log_path()
        .parent()
        .expect("fixture dir")
        .to_path_buf();
    let role_file = dir.join("role_id");
    let secret_file = dir.join("secret_id");
    let text = |v: &serde_json::Value, p: &str| {
        v.pointer(p).and_then(|x| x.as_str()).expect(p).to_string()
    };
    std::fs::write(&role_file, text(&role, "/data/role_id") + "\n").expect("write");
    std::fs::write(&secret_file, text(&secret, "/data/secret_id")).expect("write");

    let config: VaultConfig = serde_json::from_value(serde_json::json!({
        "address": bao.addr(),
        "auth": {
            "method": "approle",
            "role_id": { "file": role_file },
            "secret_id": { "file": secret_file },
        },
    }))
    .expect("config parses");
    let credentials = VaultCredentials::resolve(&config.auth).expect("references resolve");
    let provider = VaultProvider::connect("vault-approle", config, credentials)
        .await
        .expect("AppRole login");
    let key = provider
        .create_key(&spec("approle/dek", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let v1 = version(&key, 1);
    provider
        .encrypt(&v1, &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect("encrypt with the first token");
    // Past the first token's max TTL: only a renewed-then-replaced token still works.
    tokio::time::sleep(Duration::from_secs(9)).await;
    provider
        .encrypt(&v1, &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect("encrypt after the first token's max TTL");
    let logins = std::fs::read_to_string(bao.audit_log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""type":"response""#) && l.contains("auth/approle/login"))
        .count();
    assert!(logins >= 2, "expected a re-login, saw {logins} login(s)");
}

#[tokio::test(flavor = "multi_thread")]
async fn precomputed_digests_sign_like_messages() {
    use aws_lc_rs::digest;
    use keygate_provider::SignInput;
    let bao = start_bao();
    let provider = provider(&bao).await;
    let message = b"sign me by digest";
    for (algorithm, hash) in [
        (Algorithm::EcdsaP256, &digest::SHA256),
        (Algorithm::EcdsaP384, &digest::SHA384),
        (Algorithm::Rsa2048Pss, &digest::SHA256),
        (Algorithm::Rsa2048Pkcs1, &digest::SHA256),
    ] {
        let key = provider
            .create_key(&spec(&format!("digest/{}", algorithm.as_str()), algorithm))
            .await
            .expect("create")
            .value;
        let v1 = version(&key, 1);
        let d = digest::digest(hash, message);
        let signature = provider
            .sign(&v1, SignInput::Digest(d.as_ref()))
            .await
            .expect("sign digest")
            .value;
        let ok = provider
            .verify(&v1, SignInput::Message(message), &signature)
            .await
            .expect("verify")
            .value;
        assert!(
            ok,
            "{algorithm}: a digest signature verifies over the message"
        );
        let err = provider
            .sign(&v1, SignInput::Digest(&d.as_ref()[..16]))
            .await
            .expect_err("short digest");
        assert_eq!(err.kind(), "invalid_input", "{algorithm}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_item_the_key_cannot_take_fails_alone_and_the_others_go() {
    let bao = start_bao();
    let provider = provider(&bao).await;
    let key = provider
        .create_key(&spec("batch/rsa", Algorithm::Rsa2048Oaep))
        .await
        .expect("create")
        .value;
    let v1 = version(&key, 1);
    // RSA-OAEP in Transit takes no associated data: the middle item is refused unsent.
    let items = [
        BatchItem {
            data: b"first",
            aad: b"",
        },
        BatchItem {
            data: b"second",
            aad: b"context",
        },
        BatchItem {
            data: b"third",
            aad: b"",
        },
    ];
    let sealed = provider
        .encrypt_batch(&v1, &items)
        .await
        .expect("the batch is answered per item");
    assert!(sealed.request_id.is_some(), "one Transit request was made");
    let [first, second, third] = <[_; 3]>::try_from(sealed.value).expect("three results");
    let err = second.expect_err("associated data on an RSA key");
    assert!(
        matches!(err, ProviderError::InvalidInput { .. }) && err.to_string().contains("RSA-OAEP"),
        "{err}"
    );
    let (first, third) = (first.expect("first"), third.expect("third"));
    assert!(first.starts_with(b"vault:v1:") && third.starts_with(b"vault:v1:"));

    let blobs = [
        BatchItem {
            data: &first,
            aad: b"",
        },
        BatchItem {
            data: &third,
            aad: b"context",
        },
        BatchItem {
            data: &third,
            aad: b"",
        },
    ];
    let opened = provider
        .decrypt_batch(&v1, &blobs)
        .await
        .expect("the batch is answered per item")
        .value;
    assert_eq!(opened[0].as_ref().expect("first").expose(), b"first");
    assert!(matches!(opened[1], Err(ProviderError::InvalidInput { .. })));
    assert_eq!(opened[2].as_ref().expect("third").expose(), b"third");
}
