//! The provider guard end to end, through the gRPC API: the circuit breaker against a stopped
//! OpenBao (open after N failures, fail fast while open, close once OpenBao is back on the same
//! port, with no keygate restart), and dev-mode fault injection.
//!
//! Nothing here measures elapsed time: what a call reached is read from the error messages,
//! keygate's log and OpenBao's own audit log.
//!
//! Needs the `bao` binary: `eval "$(tests/backends/install.sh openbao)"` exports
//! `KEYGATE_BAO_BIN`.

mod common;

use common::{Server, ServerOptions, create};
use keygate::pb;
use keygate_test_backends::openbao::OpenBao;
use std::time::{Duration, Instant};
use tonic::Code;

/// Not `KEYGATE_…`: keygate would take that prefix for a configuration override.
const TOKEN_ENV: &str = "VAULT_TOKEN_FOR_KEYGATE_RESILIENCE";

/// Consecutive unavailable calls that open the circuit in these tests.
const FAILURES: usize = 3;

fn encrypt(key: &str) -> pb::EncryptRequest {
    pb::EncryptRequest {
        key: key.into(),
        plaintext: b"resilience".to_vec(),
        associated_data: vec![],
    }
}

/// The number of requests OpenBao's audit log records for `path`.
fn requests_to(bao: &OpenBao, path: &str) -> usize {
    let log = std::fs::read_to_string(bao.audit_log_path()).unwrap_or_default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|r| r.get("type").and_then(|t| t.as_str()) == Some("request"))
        .filter(|r| r.pointer("/request/path").and_then(|p| p.as_str()) == Some(path))
        .count()
}

/// OpenBao's file audit device may write a moment after it replies: waits (up to 10 s) for
/// `want` records.
async fn await_requests(bao: &OpenBao, path: &str, want: usize) -> usize {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = requests_to(bao, path);
        if seen >= want || Instant::now() > until {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_on_a_stopped_openbao_and_closes_when_it_is_back() {
    // The error says how to install OpenBao when it is missing.
    let mut bao = OpenBao::start().unwrap_or_else(|e| panic!("cannot start OpenBao: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    // One attempt per call, so OpenBao sees each call that passes the guard exactly once.
    std::fs::write(
        &config,
        format!(
            "[providers.vault]\n\
             kind = \"vault\"\n\
             address = \"{}\"\n\
             auth = {{ method = \"token\", token = {{ env = \"{TOKEN_ENV}\" }} }}\n\
             [providers.vault.guard]\n\
             deadline = \"5s\"\n\
             retry = {{ max_attempts = 1 }}\n\
             breaker = {{ failures = {FAILURES}, open_for = \"2s\" }}\n",
            bao.addr()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![(TOKEN_ENV.into(), bao.token().into())],
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let mut req = create("resilience/dek", "aes-256-gcm", "root");
    req.provider = "vault".into();
    let key = keys.create_key(req).await.unwrap().into_inner();
    let transit_name = key
        .provider_uri
        .rsplit_once("/keys/")
        .map(|(_, n)| n.to_string())
        .expect("a hashivault URI");
    let encrypt_path = format!("transit/encrypt/{transit_name}");
    keys.encrypt(encrypt("resilience/dek")).await.unwrap();
    let mut reached = 1;

    bao.stop();
    // N failures from the backend itself: the connection is refused.
    for i in 0..FAILURES {
        let err = keys.encrypt(encrypt("resilience/dek")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(
            err.message().contains("vault is unavailable")
                && err.message().contains("no connection"),
            "failure {i} comes from the transport: {}",
            err.message()
        );
    }
    // Then the circuit is open: the guard answers, naming the provider and when it probes.
    let err = keys.encrypt(encrypt("resilience/dek")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let text = err.message();
    assert!(
        text.contains("vault is unavailable: encrypt: circuit open since "),
        "{text}"
    );
    assert!(
        text.contains(&format!("after {FAILURES} consecutive unavailable calls")),
        "{text}"
    );
    assert!(
        text.contains("until a probe at ") || text.contains("probe call is in flight"),
        "{text}"
    );
    assert!(
        !text.contains("no connection"),
        "an open circuit does not try the backend: {text}"
    );

    // OpenBao comes back on the same port; Transit keys lived in memory, so the key is made
    // again behind keygate's back (its request is not an encrypt).
    bao.restart().expect("restart OpenBao");
    let (status, body) = bao
        .request(
            "POST",
            &format!("/v1/transit/keys/{transit_name}"),
            Some(r#"{"type":"aes256-gcm96"}"#),
        )
        .unwrap();
    assert_eq!(status / 100, 2, "recreating the key: {status} {body}");

    // Calls fail fast until the probe, which finds OpenBao and closes the circuit. Every call
    // either failed at the guard or reached OpenBao, which records it: none is lost between.
    let mut fast = 0;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match keys.encrypt(encrypt("resilience/dek")).await {
            Ok(_) => {
                reached += 1;
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                assert!(e.message().contains("circuit open"), "{}", e.message());
                fast += 1;
            }
        }
        assert!(
            Instant::now() < until,
            "the circuit never closed ({fast} calls failed fast)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..3 {
        keys.encrypt(encrypt("resilience/dek"))
            .await
            .expect("closed again: calls go through");
        reached += 1;
    }
    assert_eq!(
        await_requests(&bao, &encrypt_path, reached).await,
        reached,
        "OpenBao saw exactly the calls that were not failed fast ({fast} were)"
    );

    // keygate's log tells the breaker's story in order.
    let log = server.output();
    let opened = log
        .find("circuit opened")
        .expect("keygate logs the opening");
    let probing = log[opened..]
        .find("circuit half-open")
        .map(|i| i + opened)
        .expect("then a probe");
    assert!(
        log[probing..].contains("circuit closed"),
        "then the circuit closes:\n{log}"
    );
}

fn local_with_faults(dir: &std::path::Path, faults: &str) -> std::path::PathBuf {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "default_provider = \"slow\"\n\
             [providers.slow]\n\
             kind = \"local\"\n\
             [providers.slow.guard]\n\
             deadline = \"1s\"\n\
             [providers.slow.guard.faults]\n\
             {faults}\n"
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_make_the_listed_operations_slow_or_failing() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_with_faults(dir.path(), "delay = \"30s\"\nops = [\"rotate\"]");
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let mut req = create("faults/dek", "aes-256-gcm", "root");
    req.provider = "slow".into();
    keys.create_key(req)
        .await
        .expect("create_key is not listed");
    keys.encrypt(encrypt("faults/dek"))
        .await
        .expect("encrypt is not listed");
    // The delay is longer than the deadline: a backend too slow to answer. A change that
    // gets no answer may have happened, so it is an unknown outcome, not "unavailable".
    let err = keys
        .rotate_key(pb::RotateKeyRequest {
            key: "faults/dek".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message()
            .contains("slow: rotate did not finish within its deadline of 1s; whether the backend carried it out is unknown"),
        "{}",
        err.message()
    );
    let key = keys
        .get_key(pb::GetKeyRequest {
            key: "faults/dek".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        key.primary_version, 1,
        "the rotation never reached the provider"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_injection_is_refused_outside_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        "[providers.slow]\n\
         kind = \"local\"\n\
         passphrase = { env = \"RESILIENCE_PASSPHRASE\" }\n\
         [providers.slow.guard.faults]\n\
         fail = \"unavailable\"\n\
         [[tokens]]\n\
         principal = \"alice\"\n\
         kind = \"user\"\n\
         roles = [\"key-admin\"]\n\
         token = { env = \"RESILIENCE_TOKEN\" }\n",
    )
    .unwrap();
    let output = std::process::Command::new(common::keygate_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env(
            "RESILIENCE_PASSPHRASE",
            "a passphrase for the resilience tests",
        )
        .env("RESILIENCE_TOKEN", "kg_resilience_token_0123456789")
        .output()
        .expect("run keygate");
    assert!(
        !output.status.success(),
        "keygate started with faults outside dev mode"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("providers.slow: guard.faults:") && stderr.contains("--dev"),
        "{stderr}"
    );
}
