//! Timeouts, throttling and outages. A fake endpoint on loopback plays a KMS that throttles
//! or never answers; a real LocalStack is killed mid-test and started again.

mod common;

use keygate_provider::kit::{GuardSettings, Guarded, NoMetrics, RetrySettings};
use keygate_provider::{Algorithm, KeyProvider, KeySpec, ProviderError, SecretBytes, VersionRef};
use keygate_provider_aws::key_uri;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[test]
fn faults() {
    common::set_dummy_credentials();
    common::runtime().block_on(async {
        throttling_is_retried_by_the_guard_then_reported().await;
        println!("ok: the SDK does not retry; the guard retries throttling, then Throttled");
        access_denied_is_backend_denied().await;
        println!("ok: AccessDeniedException is BackendDenied, not retried");
        a_silent_endpoint_times_out().await;
        println!("ok: a silent endpoint is Unavailable within the timeout");
        an_outage_is_unavailable_then_recovers().await;
        println!("ok: LocalStack killed → Unavailable; started again → works");
    });
}

fn version(arn: &str) -> VersionRef {
    VersionRef {
        uri: key_uri(arn),
        algorithm: Algorithm::Aes256Gcm,
        version: 1,
        provider_version: "original".into(),
    }
}

const ARN: &str = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555";

/// Answers every request with `status` and `body` after reading it; counts requests.
async fn fake_kms(status: &'static str, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                let mut got = Vec::new();
                // Read headers, then the body by Content-Length.
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: fake-{n}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

async fn throttling_is_retried_by_the_guard_then_reported() {
    let (endpoint, count) = fake_kms(
        "400 Bad Request",
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
    )
    .await;
    let p = Arc::new(common::provider("aws-throttled", common::config(&endpoint)).await);
    // Alone, the provider makes one attempt: retrying is the guard's job.
    let err = p
        .encrypt(&version(ARN), &SecretBytes::copy_from(b"x"), b"")
        .await
        .err();
    assert!(
        matches!(err, Some(ProviderError::Throttled { .. })),
        "{err:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1, "the SDK does not retry");

    let settings = GuardSettings {
        retry: RetrySettings {
            max_attempts: 4,
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            budget_ratio: 0.2,
        },
        ..Default::default()
    };
    let guarded = Guarded::new(p, &settings, Duration::from_secs(10), Arc::new(NoMetrics));
    let started = Instant::now();
    let err = guarded
        .encrypt(&version(ARN), &SecretBytes::copy_from(b"x"), b"")
        .await
        .err();
    match &err {
        Some(ProviderError::Throttled { provider, reason }) => {
            assert_eq!(provider, "aws-throttled");
            assert!(
                reason.contains("encrypt") && reason.contains(ARN),
                "{reason}"
            );
            assert!(reason.contains("request id fake-"), "{reason}");
            assert!(reason.contains("after 4 attempts"), "{reason}");
        }
        other => panic!("a throttling KMS gave {other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 5, "one try and three retries");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Creating is never retried: a lost reply could mean a second key.
    let _ = guarded
        .create_key(&KeySpec {
            name: "throttled/k".into(),
            key_id: "id-throttled".into(),
            algorithm: Algorithm::Aes256Gcm,
            owner: "o".into(),
            environment: "dev".into(),
            crypto_period: Duration::from_secs(90 * 86_400),
            labels: BTreeMap::new(),
        })
        .await;
    assert_eq!(count.load(Ordering::SeqCst), 6, "create_key is tried once");
}

async fn access_denied_is_backend_denied() {
    let (endpoint, count) = fake_kms(
        "400 Bad Request",
        r#"{"__type":"AccessDeniedException","message":"User is not authorized to perform kms:Encrypt"}"#,
    )
    .await;
    let p = common::provider("aws-denied", common::config(&endpoint)).await;
    match p
        .encrypt(&version(ARN), &SecretBytes::copy_from(b"x"), b"")
        .await
    {
        Err(ProviderError::BackendDenied { reason, .. }) => {
            assert!(
                reason.contains("kms:Encrypt") && reason.contains(ARN),
                "{reason}"
            );
            assert!(!reason.contains("test"), "credentials leak into {reason}");
        }
        other => panic!("an access-denied KMS gave {other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "a refusal is not retried");
}

async fn a_silent_endpoint_times_out() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = common::config(&endpoint);
    config.timeout_ms = 1_500;
    let p = common::provider("aws-silent", config).await;
    let started = Instant::now();
    let err = p
        .encrypt(&version(ARN), &SecretBytes::copy_from(b"x"), b"")
        .await
        .err();
    let took = started.elapsed();
    match &err {
        Some(ProviderError::Unavailable { reason, .. }) => {
            assert!(reason.contains("timed out"), "{reason}")
        }
        other => panic!("a silent KMS gave {other:?}"),
    }
    assert!(took < Duration::from_millis(2_500), "took {took:?}");
}

async fn an_outage_is_unavailable_then_recovers() {
    let mut ls = common::start_localstack().await;
    let mut config = common::config(&ls.endpoint());
    config.timeout_ms = 3_000;
    let p = common::provider("aws-outage", config).await;
    let spec = KeySpec {
        name: "outage/dek".into(),
        key_id: "id-outage".into(),
        algorithm: Algorithm::Aes256Gcm,
        owner: "o".into(),
        environment: "dev".into(),
        crypto_period: Duration::from_secs(90 * 86_400),
        labels: BTreeMap::new(),
    };
    let key = p.create_key(&spec).await.expect("create").value;
    let v = VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: 1,
        provider_version: key.versions[0].provider_version.clone(),
    };
    p.encrypt(&v, &SecretBytes::copy_from(b"before"), b"")
        .await
        .expect("encrypt before the outage");

    ls.stop();
    let started = Instant::now();
    let err = p
        .encrypt(&v, &SecretBytes::copy_from(b"during"), b"")
        .await
        .err();
    let took = started.elapsed();
    match &err {
        Some(ProviderError::Unavailable { provider, reason }) => {
            assert_eq!(provider, "aws-outage");
            assert!(reason.contains("encrypt"), "{reason}");
            println!("   during the outage ({took:?}): {reason}");
        }
        other => panic!("encrypt during the outage gave {other:?}"),
    }
    assert!(took < Duration::from_millis(3_500), "took {took:?}");

    match tokio::task::block_in_place(|| ls.start_again()) {
        Ok(()) => {}
        Err(e) => panic!("LocalStack did not start again: {e}"),
    }
    // LocalStack keeps no state across restarts here: the same provider works with a new key.
    let mut again = spec.clone();
    again.name = "outage/after".into();
    let key = p
        .create_key(&again)
        .await
        .expect("create after restart")
        .value;
    let v = VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: 1,
        provider_version: key.versions[0].provider_version.clone(),
    };
    let blob = p
        .encrypt(&v, &SecretBytes::copy_from(b"after"), b"")
        .await
        .expect("encrypt after restart")
        .value;
    let plain = p
        .decrypt(&v, &blob, b"")
        .await
        .expect("decrypt after restart")
        .value;
    assert_eq!(plain.expose(), b"after");
    p.describe(&key.uri).await.expect("describe");
}
