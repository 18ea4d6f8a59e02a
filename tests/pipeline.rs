//! The pipeline's guarantees through gRPC: every admitted call runs to its end and is audited
//! (intent and outcome for changes) whether or not its client waits; concurrent changes to a
//! key serialise; every error carries a stable reason the audit event repeats; the gateway
//! refuses calls and reports NOT_SERVING while its audit store cannot be written.

mod common;

use common::storage::stored_key;
use common::{ROOT_TOKEN, Server, create, status_request_id};
use keygate::pb;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt as _;

/// Events matching `q`, all pages.
async fn events(audit: &mut common::Audit, q: pb::AuditQueryRequest) -> Vec<pb::AuditEvent> {
    audit
        .query(pb::AuditQueryRequest {
            page_size: 1000,
            ..q
        })
        .await
        .expect("audit query")
        .into_inner()
        .events
}

/// Polls until `done` holds for the events matching `q` (the call is still finishing in the
/// gateway after its client gave up). Bounded generously: this waits for work, not for speed.
async fn wait_for_events(
    audit: &mut common::Audit,
    q: pb::AuditQueryRequest,
    done: impl Fn(&[pb::AuditEvent]) -> bool,
) -> Vec<pb::AuditEvent> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found = events(audit, q.clone()).await;
        if done(&found) {
            return found;
        }
        assert!(Instant::now() < deadline, "events never arrived: {found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The experiment that once left no trace: RSA-4096 keys created with a 50 ms client
/// deadline. Every call has its intent and its outcome, the outcome says whether the client
/// had gone, and the catalog (memory and SQLite) holds every key the log says was made.
#[tokio::test(flavor = "multi_thread")]
async fn calls_whose_client_gave_up_are_completed_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let mut keys = server.root().await;
    let mut client_saw = Vec::new();
    for i in 0..5 {
        let mut request =
            tonic::Request::new(create(&format!("impatient/{i}"), "rsa-4096-oaep", "alice"));
        request.set_timeout(Duration::from_millis(50));
        client_saw.push(keys.create_key(request).await.map(|_| ()));
    }
    // Whether key generation outlasts 50 ms depends on the machine; what is checked below holds
    // either way (tests/abandoned_calls.rs makes the provider slow deterministically).
    let mut audit = server.audit(ROOT_TOKEN).await;
    for (i, seen) in client_saw.iter().enumerate() {
        let name = format!("impatient/{i}");
        let found = wait_for_events(
            &mut audit,
            pb::AuditQueryRequest {
                key: name.clone(),
                action: "CreateKey".into(),
                ..Default::default()
            },
            |e| e.len() >= 2,
        )
        .await;
        assert_eq!(found.len(), 2, "{found:?}");
        let (intent, outcome) = (&found[0], &found[1]);
        assert_eq!(intent.outcome, "intent");
        assert_eq!(outcome.outcome, "ok", "{outcome:?}");
        assert_eq!(intent.request_id, outcome.request_id);
        assert!(!intent.request_id.is_empty());
        // The event says whether the client was still there for the reply.
        match seen {
            Err(status) => {
                assert!(
                    matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
                    "{status:?}"
                );
                assert!(outcome.caller_gone, "{outcome:?}");
            }
            Ok(()) => assert!(!outcome.caller_gone, "{outcome:?}"),
        }
        // Memory and SQLite agree: the key exists, enabled, with one version.
        let key = keys
            .get_key(pb::GetKeyRequest {
                key: name.clone(),
                usage: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(key.id, outcome.key_id);
        assert_eq!(
            stored_key(&data, &key.id).await,
            ("enabled".into(), vec![1])
        );
    }
}

/// Concurrent rotations of one key serialise: ten at once give versions 2 to 11, each once,
/// in memory and in SQLite.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_rotations_give_distinct_versions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let mut keys = server.root().await;
    let key = keys
        .create_key(create("spin", "aes-256-gcm", "alice"))
        .await
        .unwrap()
        .into_inner();
    let mut calls = Vec::new();
    for _ in 0..10 {
        let mut k = keys.clone();
        calls.push(tokio::spawn(async move {
            k.rotate_key(pb::RotateKeyRequest {
                key: "spin".into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().primary_version)
        }));
    }
    let mut versions = Vec::new();
    for call in calls {
        versions.push(call.await.unwrap().expect("rotate"));
    }
    versions.sort();
    assert_eq!(versions, (2..=11).collect::<Vec<u32>>());
    let now = keys
        .get_key(pb::GetKeyRequest {
            key: "spin".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    let in_memory: Vec<i64> = now.versions.iter().map(|v| i64::from(v.version)).collect();
    let (state, in_sqlite) = stored_key(&data, &key.id).await;
    assert_eq!(state, "enabled");
    assert_eq!(in_memory, (1..=11).collect::<Vec<i64>>());
    assert_eq!(in_sqlite, in_memory);
}

/// Every error status carries a `google.rpc.ErrorInfo` with a stable reason, and the call's
/// audit event records the same reason.
#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_a_reason_the_audit_event_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("reasons", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    keys.disable_key(pb::DisableKeyRequest {
        key: "reasons".into(),
    })
    .await
    .unwrap();
    let encrypt = |key: &str, plaintext: Vec<u8>| pb::EncryptRequest {
        key: key.into(),
        plaintext,
        associated_data: vec![],
    };
    let mut anonymous = server.keys("").await;
    let cases: Vec<(tonic::Status, Code, &str)> = vec![
        (
            keys.encrypt(encrypt("reasons", b"x".to_vec()))
                .await
                .unwrap_err(),
            Code::FailedPrecondition,
            "KEY_DISABLED",
        ),
        (
            keys.encrypt(encrypt("missing", b"x".to_vec()))
                .await
                .unwrap_err(),
            Code::NotFound,
            "KEY_NOT_FOUND",
        ),
        (
            keys.encrypt(encrypt("reasons", vec![0; 70_000]))
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "TOO_LARGE",
        ),
        (
            keys.decrypt(pb::DecryptRequest {
                ciphertext: b"not a ciphertext".to_vec(),
                associated_data: vec![],
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "CIPHERTEXT_MALFORMED",
        ),
        (
            anonymous
                .encrypt(encrypt("reasons", b"x".to_vec()))
                .await
                .unwrap_err(),
            Code::Unauthenticated,
            "TOKEN_MISSING",
        ),
        (
            keys.list_keys(pb::ListKeysRequest {
                page_token: "not a token!".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
    ];
    let mut audit = server.audit(ROOT_TOKEN).await;
    for (status, code, reason) in cases {
        assert_eq!(status.code(), code, "{status:?}");
        let info = status
            .get_details_error_info()
            .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
        assert_eq!(info.reason, reason, "{status:?}");
        assert_eq!(info.domain, keygate::server::ERROR_DOMAIN);
        let found = common::events_for(&mut audit, &status_request_id(&status)).await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].error_reason, reason, "{:?}", found[0]);
        assert_eq!(found[0].reason, status.message());
    }
    // Bad input also names the field, as a BadRequest violation.
    let status = keys
        .create_key(pb::CreateKeyRequest {
            owner: String::new(),
            ..create("fieldy", "aes-256-gcm", "alice")
        })
        .await
        .unwrap_err();
    let bad = status.get_details_bad_request().expect("BadRequest");
    assert_eq!(bad.field_violations[0].field, "owner", "{status:?}");
}

async fn health(server: &Server) -> i32 {
    HealthClient::new(server.channel().await)
        .check(HealthCheckRequest {
            service: "keygate.v1.KeyService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// When the audit store cannot be written (here another process holds SQLite's write lock)
/// calls fail closed, health says NOT_SERVING and new calls are refused; once the store is
/// writable again the gateway serves, and the log records the gap.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_audit_store_stops_service_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let mut keys = server.root().await;
    keys.create_key(create("outage", "hmac-sha256", "alice"))
        .await
        .unwrap();
    let mac = || pb::GenerateMacRequest {
        key: "outage".into(),
        message: b"m".to_vec(),
    };
    assert_eq!(health(&server).await, ServingStatus::Serving as i32);

    // Another process takes the database's write lock and keeps it.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("keygate.db"))
        .busy_timeout(Duration::from_secs(30));
    let mut intruder = sqlx::ConnectOptions::connect(&options).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut intruder)
        .await
        .unwrap();

    let failed = keys.generate_mac(mac()).await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    assert_eq!(
        failed.get_details_error_info().map(|i| i.reason),
        Some("AUDIT_UNAVAILABLE".into())
    );
    assert_eq!(health(&server).await, ServingStatus::NotServing as i32);
    let refused = keys.generate_mac(mac()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.message().contains("NOT_SERVING"), "{refused:?}");

    sqlx::query("ROLLBACK")
        .execute(&mut intruder)
        .await
        .unwrap();
    drop(intruder);
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(&server).await != ServingStatus::Serving as i32 {
        assert!(Instant::now() < deadline, "the gateway never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keys.generate_mac(mac()).await.expect("serves again");
    let mut audit = server.audit(ROOT_TOKEN).await;
    let gap = events(
        &mut audit,
        pb::AuditQueryRequest {
            action: "AuditStoreRecovered".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert_eq!(gap[0].actor_kind, "system");
    assert!(
        gap[0].details.contains("unwritable_since"),
        "{}",
        gap[0].details
    );
    let report = audit
        .verify(pb::AuditVerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(report.ok, "{report:?}");
}

/// Every log line of a call carries its request id (the call's tracing span), so one grep of
/// the id from a reply's `x-request-id` finds everything the gateway logged for it.
#[tokio::test(flavor = "multi_thread")]
async fn log_lines_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        common::ServerOptions {
            log_filter: "keygate=debug".into(),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let status = keys
        .get_key(pb::GetKeyRequest {
            key: "nope".into(),
            usage: false,
        })
        .await
        .unwrap_err();
    let id = status_request_id(&status);
    assert!(!id.is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = server.output();
        let lines: Vec<&str> = output.lines().filter(|l| l.contains(&id)).collect();
        if let Some(line) = lines.iter().find(|l| l.contains("call failed")) {
            assert!(line.contains("action=GetKey"), "{line}");
            assert!(line.contains("principal=root"), "{line}");
            assert!(line.contains("KEY_NOT_FOUND"), "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {id}:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
