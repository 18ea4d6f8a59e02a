//! Calls whose clients give up, and calls that race, end to end through the gRPC API. The
//! provider is made slow deterministically with the guard's fault injection (dev mode), so the
//! order of events is set by the test, not by the machine's speed.

mod common;

use common::storage::stored_key;
use common::{ROOT_TOKEN, Server, ServerOptions, create, status_request_id};
use keygate::pb;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::Code;

/// A gateway whose only provider, `slow`, delays the listed operations by `delay`.
fn slow_gateway(dir: &Path, ops: &str, delay: &str, extra: &str) -> (Server, PathBuf) {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "default_provider = \"slow\"\n\
             [limits]\n\
             request_timeout = \"60s\"\n\
             provider_timeout = \"30s\"\n\
             {extra}\n\
             [providers.slow]\n\
             kind = \"local\"\n\
             [providers.slow.guard.faults]\n\
             delay = \"{delay}\"\n\
             ops = [{ops}]\n"
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let server = Server::start_with(
        &data,
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    (server, data)
}

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

/// Polls until `done` holds: the gateway is still finishing work its client left. Bounded
/// generously; this waits for an effect, it does not time anything.
async fn wait_for(
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

fn by_key(key: &str, action: &str) -> pb::AuditQueryRequest {
    pb::AuditQueryRequest {
        key: key.into(),
        action: action.into(),
        ..Default::default()
    }
}

/// A client deadline passes while the provider is still creating the key: the client gets
/// its deadline error, the key is created anyway, and its intent and outcome are on record,
/// the outcome saying the caller had gone. Memory and SQLite agree.
#[tokio::test(flavor = "multi_thread")]
async fn a_passed_deadline_does_not_stop_an_admitted_change() {
    let dir = tempfile::tempdir().unwrap();
    let (server, data) = slow_gateway(dir.path(), "\"create_key\"", "2s", "");
    let mut keys = server.root().await;
    let mut request = tonic::Request::new(create("late/key", "aes-256-gcm", "alice"));
    request.set_timeout(Duration::from_millis(300));
    let status = keys.create_key(request).await.unwrap_err();
    // tonic's client reports its own deadline as CANCELLED "Timeout expired"; a server-side
    // one is DEADLINE_EXCEEDED. Either way the client stopped waiting.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );

    let mut audit = server.audit(ROOT_TOKEN).await;
    let found = wait_for(&mut audit, by_key("late/key", "CreateKey"), |e| {
        e.len() >= 2
    })
    .await;
    let outcomes: Vec<&str> = found.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["intent", "ok"], "{found:?}");
    assert_eq!(found[0].request_id, found[1].request_id);
    assert!(!found[0].caller_gone && found[1].caller_gone, "{found:?}");
    let key = keys
        .get_key(pb::GetKeyRequest {
            key: "late/key".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.id, found[1].key_id);
    assert_eq!(
        stored_key(&data, &key.id).await,
        ("enabled".into(), vec![1])
    );
}

/// A client that drops its call (the stream is reset) mid-rotation: the rotation completes,
/// once, and is audited as abandoned.
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_stream_does_not_stop_an_admitted_change() {
    let dir = tempfile::tempdir().unwrap();
    let (server, data) = slow_gateway(dir.path(), "\"rotate\"", "2s", "");
    let mut keys = server.root().await;
    let key = keys
        .create_key(create("reset/key", "aes-256-gcm", "alice"))
        .await
        .unwrap()
        .into_inner();
    let mut caller = keys.clone();
    let call = tokio::spawn(async move {
        caller
            .rotate_key(pb::RotateKeyRequest {
                key: "reset/key".into(),
                ..Default::default()
            })
            .await
    });
    let mut audit = server.audit(ROOT_TOKEN).await;
    // The rotation is admitted and in the provider once its intent is on record.
    wait_for(&mut audit, by_key("reset/key", "RotateKey"), |e| {
        !e.is_empty()
    })
    .await;
    // Dropping the client's call future resets its HTTP/2 stream.
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());

    let found = wait_for(&mut audit, by_key("reset/key", "RotateKey"), |e| {
        e.len() >= 2
    })
    .await;
    let outcomes: Vec<&str> = found.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["intent", "ok"], "{found:?}");
    assert!(found[1].caller_gone, "{found:?}");
    assert_eq!(found[1].key_version, 2);
    let now = keys
        .get_key(pb::GetKeyRequest {
            key: "reset/key".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.primary_version, 2);
    assert_eq!(
        stored_key(&data, &key.id).await,
        ("enabled".into(), vec![1, 2])
    );
}

/// RotateKey ∥ DisableKey: the disable waits for the rotation holding the key and applies to
/// the key as the rotation left it, so the key ends disabled and with the new version, in
/// memory and in SQLite.
#[tokio::test(flavor = "multi_thread")]
async fn rotate_racing_disable_ends_disabled_with_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let (server, data) = slow_gateway(dir.path(), "\"rotate\"", "2s", "");
    let mut keys = server.root().await;
    let key = keys
        .create_key(create("race/key", "aes-256-gcm", "alice"))
        .await
        .unwrap()
        .into_inner();
    let mut rotator = keys.clone();
    let rotation = tokio::spawn(async move {
        rotator
            .rotate_key(pb::RotateKeyRequest {
                key: "race/key".into(),
                ..Default::default()
            })
            .await
    });
    let mut audit = server.audit(ROOT_TOKEN).await;
    wait_for(&mut audit, by_key("race/key", "RotateKey"), |e| {
        !e.is_empty()
    })
    .await;
    let disabled = keys
        .disable_key(pb::DisableKeyRequest {
            key: "race/key".into(),
        })
        .await
        .expect("disable")
        .into_inner();
    rotation.await.unwrap().expect("rotate");
    assert_eq!(disabled.state, "disabled");
    assert_eq!(disabled.primary_version, 2, "{disabled:?}");
    let now = keys
        .get_key(pb::GetKeyRequest {
            key: "race/key".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((now.state.as_str(), now.primary_version), ("disabled", 2));
    assert_eq!(
        stored_key(&data, &key.id).await,
        ("disabled".into(), vec![1, 2])
    );
}

/// CancelKeyDestruction while the scheduler comes for the key: the scheduler's DestroyKey waits
/// for the cancellation, reads the key again, finds it no longer pending and leaves it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_during_a_scheduler_scan_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (server, data) = slow_gateway(
        dir.path(),
        "\"cancel_destroy\"",
        "6s",
        "[lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"100ms\"",
    );
    let mut keys = server.root().await;
    let key = keys
        .create_key(create("doomed/key", "aes-256-gcm", "alice"))
        .await
        .unwrap()
        .into_inner();
    keys.schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
        family: false,
        key: "doomed/key".into(),
        pending_window: Some(prost_types::Duration {
            seconds: 2,
            nanos: 0,
        }),
    })
    .await
    .expect("schedule");
    // The cancellation holds the key (its backend call takes 6 s) while the window ends and
    // the scheduler, scanning every 100 ms, comes for it.
    let cancelled = keys
        .cancel_key_destruction(pb::CancelKeyDestructionRequest {
            key: "doomed/key".into(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state, "disabled");

    let mut audit = server.audit(ROOT_TOKEN).await;
    let attempts = wait_for(&mut audit, by_key("doomed/key", "DestroyKey"), |e| {
        !e.is_empty()
    })
    .await;
    // The scheduler did come, and was refused once it saw the key as it is.
    assert!(
        attempts
            .iter()
            .all(|e| e.outcome == "error" && e.error_reason == "KEY_NOT_PENDING_DESTRUCTION"),
        "{attempts:?}"
    );
    assert!(attempts.iter().all(|e| e.actor_kind == "system"));
    let now = keys
        .get_key(pb::GetKeyRequest {
            key: "doomed/key".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.state, "disabled");
    assert_eq!(stored_key(&data, &key.id).await.0, "disabled");
}

/// A backend slower than the provider deadline answers UNAVAILABLE (before the client's own
/// deadline), and the call has its event with that reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_slower_than_its_deadline_is_unavailable_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("short.toml");
    std::fs::write(
        &config,
        "default_provider = \"slow\"\n\
         [limits]\n\
         request_timeout = \"10s\"\n\
         provider_timeout = \"1s\"\n\
         [providers.slow]\n\
         kind = \"local\"\n\
         [providers.slow.guard.faults]\n\
         delay = \"30s\"\n\
         ops = [\"encrypt\"]\n",
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    keys.create_key(create("slow/key", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    let status = keys
        .encrypt(pb::EncryptRequest {
            key: "slow/key".into(),
            plaintext: b"x".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("within its deadline of 1s"),
        "{status:?}"
    );
    let mut audit = server.audit(ROOT_TOKEN).await;
    let found = common::events_for(&mut audit, &status_request_id(&status)).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].error_reason, "PROVIDER_UNAVAILABLE");
    assert!(!found[0].caller_gone);
}

/// A rotation the backend carries out but answers too late: the call says the outcome is
/// unknown (not "unavailable", which would promise nothing happened), its intent and outcome
/// are on record, and the catalog is untouched and consistent: the key keeps working.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_answered_after_its_deadline_has_an_unknown_outcome_and_breaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("late.toml");
    std::fs::write(
        &config,
        "default_provider = \"late\"\n\
         [limits]\n\
         request_timeout = \"10s\"\n\
         provider_timeout = \"1s\"\n\
         [providers.late]\n\
         kind = \"local\"\n\
         [providers.late.guard.faults]\n\
         delay_after = \"3s\"\n\
         ops = [\"rotate\"]\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let created = keys
        .create_key(create("late/rotate", "aes-256-gcm", "alice"))
        .await
        .unwrap()
        .into_inner();
    let status = keys
        .rotate_key(pb::RotateKeyRequest {
            key: "late/rotate".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("whether the backend carried it out is unknown"),
        "{status:?}"
    );
    let mut audit = server.audit(ROOT_TOKEN).await;
    let found = common::events_for(&mut audit, &status_request_id(&status)).await;
    let outcomes: Vec<&str> = found.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["intent", "error"], "{found:?}");
    assert_eq!(found[1].error_reason, "PROVIDER_OUTCOME_UNKNOWN");
    let key_id = created.id;
    assert_eq!(stored_key(&data, &key_id).await.1, vec![1]);
    // The key stays usable at the version the catalog knows.
    let sealed = keys
        .encrypt(pb::EncryptRequest {
            key: "late/rotate".into(),
            plaintext: b"still works".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let opened = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: sealed.ciphertext,
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, b"still works");
}
