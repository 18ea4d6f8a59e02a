//! Quorum approvals through the gRPC API and the CLI, with real tokens from a config file:
//! a critical change waits for two distinct approvers of its key's environment, none of them
//! its requester; every step is audited and the destruction record names them.

mod common;

use common::team::{self, create_in, error_info, opened};
use common::{Server, request_id};
use keygate::pb;
use std::time::{Duration, Instant};
use tonic::Code;

fn schedule(key: &str, seconds: i64) -> pb::ScheduleKeyDestructionRequest {
    pb::ScheduleKeyDestructionRequest {
        family: false,
        key: key.into(),
        pending_window: Some(prost_types::Duration { seconds, nanos: 0 }),
    }
}

fn approve(id: &str) -> pb::ApproveRequest {
    pb::ApproveRequest {
        id: id.into(),
        ..Default::default()
    }
}

/// Asserts a refusal by policy naming `rule`.
fn refused_by(result: Result<tonic::Response<pb::Approval>, tonic::Status>, rule: &str) {
    let status = result.expect_err("expected a refusal");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains(&format!("denied by {rule}")),
        "{}",
        status.message()
    );
}

fn refused_as(
    result: Result<tonic::Response<pb::Approval>, tonic::Status>,
    code: Code,
    reason: &str,
) {
    let status = result.expect_err("expected a refusal");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_info(&status).0, reason, "{status:?}");
}

async fn key_state(server: &Server, key: &str) -> pb::Key {
    server
        .keys_as("dave")
        .await
        .get_key(pb::GetKeyRequest {
            key: key.into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destruction_runs_after_two_distinct_approvers_and_its_record_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(
        dir.path(),
        "[lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"200ms\"\n",
    );
    server
        .keys_as("alice")
        .await
        .create_key(create_in("prod/ledger", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    let mut henry = server.keys_as("henry").await;
    let id = opened(
        henry
            .schedule_key_destruction(schedule("prod/ledger", 2))
            .await
            .unwrap_err(),
    );
    let mut erin = server.approvals_as("erin").await;
    let pending = erin
        .get_approval(pb::GetApprovalRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.state, "pending");
    assert_eq!(pending.requester, "henry");
    assert_eq!(pending.quorum, 2);
    assert_eq!(pending.action, "ScheduleKeyDestruction");
    assert!(pending.change.contains("2s"), "{}", pending.change);
    assert_eq!(pending.digest.len(), 64);

    // The requester's own approval, approvals without the approver role, and an approver of
    // another environment are refused.
    refused_by(
        server
            .approvals_as("henry")
            .await
            .approve(approve(&id))
            .await,
        "separation-of-duties",
    );
    refused_by(
        server
            .approvals_as("svc-pay")
            .await
            .approve(approve(&id))
            .await,
        "quorum",
    );
    refused_by(
        server
            .approvals_as("alice")
            .await
            .approve(approve(&id))
            .await,
        "quorum",
    );
    refused_by(
        server
            .approvals_as("grace")
            .await
            .approve(approve(&id))
            .await,
        "environment-isolation",
    );
    // An approval of another change than the one stored is refused.
    refused_as(
        erin.approve(pb::ApproveRequest {
            id: id.clone(),
            digest: "0".repeat(64),
            comment: String::new(),
        })
        .await,
        Code::FailedPrecondition,
        "APPROVAL_DIGEST_MISMATCH",
    );

    // One of two approvals does nothing.
    let one = erin
        .approve(pb::ApproveRequest {
            id: id.clone(),
            digest: pending.digest.clone(),
            comment: "checked with the ledger team".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.state, "pending");
    assert_eq!(one.approvals.len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(key_state(&server, "prod/ledger").await.state, "enabled");
    // The same approver twice counts once.
    refused_as(
        erin.approve(approve(&id)).await,
        Code::AlreadyExists,
        "APPROVAL_DUPLICATE",
    );

    // The second distinct approval carries it out, for its requester.
    let done = server
        .approvals_as("frank")
        .await
        .approve(approve(&id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, "executed", "{done:?}");
    assert_eq!(done.closed_by, "frank");
    assert!(!done.execution_request_id.is_empty());
    assert_eq!(
        key_state(&server, "prod/ledger").await.state,
        "pending-destruction"
    );
    refused_as(
        server
            .approvals_as("ivan")
            .await
            .approve(approve(&id))
            .await,
        Code::FailedPrecondition,
        "APPROVAL_CLOSED",
    );

    // The scheduler destroys it at the end of the window; the record names everyone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while key_state(&server, "prod/ledger").await.state != "destroyed" {
        assert!(Instant::now() < deadline, "never destroyed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let records = server
        .admin_as("dave")
        .await
        .list_destruction_records(pb::ListDestructionRecordsRequest {
            key: "prod/ledger".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.state, "destroyed");
    assert_eq!(record.requested_by, "henry");
    assert_eq!(record.approved_by, ["erin", "frank"]);
    assert_eq!(record.approval_id, id);
    assert_eq!(record.window_seconds, 2);
    assert_eq!(record.versions, [1]);
    assert!(!record.destroyed_at.is_empty() && !record.method.is_empty());

    // Every step is in the audit log, naming the request.
    let events = server
        .audit_as("dave")
        .await
        .query(pb::AuditQueryRequest {
            key: "prod/ledger".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let find = |action: &str, actor: &str, outcome: &str| {
        events
            .iter()
            .filter(|e| e.action == action && e.actor == actor && e.outcome == outcome)
            .collect::<Vec<_>>()
    };
    let opened_event = find("ScheduleKeyDestruction", "henry", "pending-approval");
    assert_eq!(opened_event.len(), 1, "{events:?}");
    assert!(opened_event[0].details.contains(&id));
    for refused in ["henry", "svc-pay", "alice", "grace"] {
        let e = find("ApproveRequest", refused, "denied");
        assert_eq!(e.len(), 1, "{refused}: {events:?}");
        assert!(e[0].details.contains(&id) && e[0].policy.starts_with("deny by"));
    }
    for approver in ["erin", "frank"] {
        let e = find("ApproveRequest", approver, "ok");
        assert_eq!(e.len(), 1, "{approver}: {events:?}");
        assert!(e[0].details.contains(&id), "{}", e[0].details);
    }
    // The change itself: intent then outcome, its requester the actor, its approvers named.
    let executed: Vec<_> = events
        .iter()
        .filter(|e| e.request_id == done.execution_request_id)
        .collect();
    assert_eq!(
        executed
            .iter()
            .map(|e| e.outcome.as_str())
            .collect::<Vec<_>>(),
        ["intent", "ok"]
    );
    for e in &executed {
        assert_eq!(e.action, "ScheduleKeyDestruction");
        assert_eq!(e.actor, "henry");
        assert!(e.details.contains(&id), "{}", e.details);
        assert!(
            e.details.contains("erin") && e.details.contains("frank"),
            "{}",
            e.details
        );
        assert!(e.policy.starts_with("allow by"), "{}", e.policy);
    }
    assert_eq!(find("DestroyKey", "keygate:scheduler", "ok").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deny_closes_a_request_and_a_requester_may_cancel_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let mut alice = server.keys_as("alice").await;
    alice
        .create_key(create_in("prod/orders", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    // Disabling a prod key is critical; a dev key is not.
    let id = opened(
        alice
            .disable_key(pb::DisableKeyRequest {
                key: "prod/orders".into(),
            })
            .await
            .unwrap_err(),
    );
    let mut bob = server.keys_as("bob").await;
    bob.create_key(create_in("dev/orders", "aes-256-gcm", "svc-dev", "dev"))
        .await
        .unwrap();
    let disabled = bob
        .disable_key(pb::DisableKeyRequest {
            key: "dev/orders".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(disabled.state, "disabled");

    // A deny, through the CLI, closes the request; later approvals are refused.
    let out = server.cli_as(
        "erin",
        &[
            "approval",
            "deny",
            &id,
            "--reason",
            "orders are still in use",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("denied"));
    refused_as(
        server
            .approvals_as("frank")
            .await
            .approve(approve(&id))
            .await,
        Code::FailedPrecondition,
        "APPROVAL_CLOSED",
    );
    assert_eq!(key_state(&server, "prod/orders").await.state, "enabled");
    let denied = server
        .approvals_as("dave")
        .await
        .get_approval(pb::GetApprovalRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied.state, "denied");
    assert_eq!(denied.closed_by, "erin");
    assert_eq!(denied.outcome, "orders are still in use");

    // Owner changes wait for approvals too: the CLI says so and exits 3.
    let out = server.cli_as(
        "alice",
        &["key", "set-owner", "prod/orders", "--owner", "olga"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout
        .trim()
        .strip_prefix("approval request: ")
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    // Only its requester cancels it.
    let status = server
        .approvals_as("erin")
        .await
        .cancel(pb::CancelApprovalRequest {
            id: first.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let cancelled = server
        .approvals_as("alice")
        .await
        .cancel(pb::CancelApprovalRequest {
            id: first.clone(),
            reason: "asked too early".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, "cancelled");

    // Asked again and approved twice, the key changes hands.
    let second = opened(
        alice
            .set_key_owner(pb::SetKeyOwnerRequest {
                key: "prod/orders".into(),
                owner: "olga".into(),
            })
            .await
            .unwrap_err(),
    );
    assert_ne!(second, first);
    // A retried request finds the open one instead of opening another.
    let again = opened(
        alice
            .set_key_owner(pb::SetKeyOwnerRequest {
                key: "prod/orders".into(),
                owner: "olga".into(),
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(again, second);
    let out = server.cli_as("erin", &["approval", "approve", &second]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli_as("frank", &["approval", "approve", &second, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["state"], "executed", "{shown}");
    assert_eq!(key_state(&server, "prod/orders").await.owner, "olga");
    // The listing tells the states apart.
    let out = server.cli_as("dave", &["approval", "list", "--state", "denied", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_request_cannot_be_approved() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "[approvals]\nexpiry = \"1s\"\n");
    server
        .keys_as("alice")
        .await
        .create_key(create_in("prod/old", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    let id = opened(
        server
            .keys_as("henry")
            .await
            .schedule_key_destruction(schedule("prod/old", 7 * 86_400))
            .await
            .unwrap_err(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut erin = server.approvals_as("erin").await;
    refused_as(
        erin.approve(approve(&id)).await,
        Code::FailedPrecondition,
        "APPROVAL_EXPIRED",
    );
    let expired = erin
        .list_approvals(pb::ListApprovalsRequest {
            state: "expired".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .approvals;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, id);
    assert_eq!(expired[0].state, "expired");
    // A new request can be opened for the same change.
    let again = opened(
        server
            .keys_as("henry")
            .await
            .schedule_key_destruction(schedule("prod/old", 7 * 86_400))
            .await
            .unwrap_err(),
    );
    assert_ne!(again, id);
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_approvals_for_the_last_place_execute_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let mut alice = server.keys_as("alice").await;
    let mut henry = server.keys_as("henry").await;
    let mut erin = server.approvals_as("erin").await;
    let mut frank = server.approvals_as("frank").await;
    let mut ivan = server.approvals_as("ivan").await;
    for n in 0..6 {
        let name = format!("prod/race-{n}");
        alice
            .create_key(create_in(&name, "aes-256-gcm", "svc-pay", "prod"))
            .await
            .unwrap();
        let id = opened(
            henry
                .schedule_key_destruction(schedule(&name, 7 * 86_400))
                .await
                .unwrap_err(),
        );
        erin.approve(approve(&id)).await.unwrap();
        // Two approvals for the last place, at once.
        let (a, b) = tokio::join!(frank.approve(approve(&id)), ivan.approve(approve(&id)));
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            (a, b) => panic!("exactly one approval must win: {a:?} {b:?}"),
        };
        assert_eq!(won.into_inner().state, "executed");
        assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
        assert_eq!(error_info(&lost).0, "APPROVAL_CLOSED");
        // The change ran once: one scheduling, one destruction record.
        let events = server
            .audit_as("dave")
            .await
            .query(pb::AuditQueryRequest {
                key: name.clone(),
                action: "ScheduleKeyDestruction".into(),
                outcome: "ok".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(!request_id(&events).is_empty());
        assert_eq!(events.into_inner().events.len(), 1);
        let records = server
            .admin_as("dave")
            .await
            .list_destruction_records(pb::ListDestructionRecordsRequest { key: name.clone() })
            .await
            .unwrap()
            .into_inner()
            .records;
        assert_eq!(records.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn destruction_stays_critical_when_configuration_lists_no_critical_action() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "[approvals]\ncritical = []\n");
    let mut alice = server.keys_as("alice").await;
    alice
        .create_key(create_in(
            "prod/vault-seal",
            "aes-256-gcm",
            "svc-pay",
            "prod",
        ))
        .await
        .unwrap();
    // Rule 5 cannot be configured away: the key admin's call opens a request.
    opened(
        alice
            .schedule_key_destruction(schedule("prod/vault-seal", 7 * 86_400))
            .await
            .unwrap_err(),
    );
    assert_eq!(key_state(&server, "prod/vault-seal").await.state, "enabled");
    // DisableKey@prod, taken out of the list, acts at once.
    alice
        .disable_key(pb::DisableKeyRequest {
            key: "prod/vault-seal".into(),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destruction_scheduled_without_approvals_is_never_carried_out() {
    // Policies without the quorum rule: scheduling then needs no approval, but the scheduler
    // still refuses to destroy what no quorum approved.
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if path.is_file() && name != "quorum.cedar" {
            std::fs::copy(&path, policies.join(name)).unwrap();
        }
    }
    let server = team::start(
        dir.path(),
        &format!(
            "[policy]\ndir = \"{}\"\n[lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"200ms\"\n",
            policies.display()
        ),
    );
    let mut alice = server.keys_as("alice").await;
    alice
        .create_key(create_in(
            "prod/unapproved",
            "aes-256-gcm",
            "svc-pay",
            "prod",
        ))
        .await
        .unwrap();
    alice
        .schedule_key_destruction(schedule("prod/unapproved", 1))
        .await
        .expect("without the quorum rule, scheduling is allowed");
    // The scheduler tries once the window has ended, and refuses: the key stays pending.
    let mut audit = server.audit_as("dave").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let refusal = loop {
        let events = audit
            .query(pb::AuditQueryRequest {
                key: "prod/unapproved".into(),
                action: "DestroyKey".into(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        if let Some(e) = events.into_iter().find(|e| e.outcome != "intent") {
            break e;
        }
        assert!(Instant::now() < deadline, "the scheduler never tried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(refusal.outcome, "ok", "{refusal:?}");
    assert_eq!(
        refusal.error_reason, "DESTRUCTION_NOT_APPROVED",
        "{refusal:?}"
    );
    assert_eq!(
        key_state(&server, "prod/unapproved").await.state,
        "pending-destruction"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_lowered_after_a_request_opened_does_not_release_it_early() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let server = team::start(dir.path(), "[approvals]\nquorum = 3\n");
        server
            .keys_as("alice")
            .await
            .create_key(create_in("prod/drift", "aes-256-gcm", "svc-pay", "prod"))
            .await
            .unwrap();
        opened(
            server
                .keys_as("henry")
                .await
                .schedule_key_destruction(schedule("prod/drift", 7 * 86_400))
                .await
                .unwrap_err(),
        )
    };
    // Restarted on the same data with a quorum of 2: the request still needs its 3.
    let server = team::start(dir.path(), "[approvals]\nquorum = 2\n");
    for approver in ["erin", "frank"] {
        let after = server
            .approvals_as(approver)
            .await
            .approve(approve(&id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(after.state, "pending", "{approver}: {after:?}");
    }
    assert_eq!(key_state(&server, "prod/drift").await.state, "enabled");
    let done = server
        .approvals_as("ivan")
        .await
        .approve(approve(&id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, "executed", "{done:?}");
}

/// Retiring a version used within the quiet period is refused; forced, it waits for two
/// approvers other than the requester, then runs for the requester, and the retired version
/// no longer decrypts.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_retirement_runs_after_two_approvers() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let mut alice = server.keys_as("alice").await;
    alice
        .create_key(create_in("prod/tokens", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    let mut svc = server.keys_as("svc-pay").await;
    let sealed = svc
        .encrypt(pb::EncryptRequest {
            key: "prod/tokens".into(),
            plaintext: b"session".to_vec(),
            associated_data: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    let decrypt = || pb::DecryptRequest {
        ciphertext: sealed.clone(),
        associated_data: Vec::new(),
    };
    alice
        .rotate_key(pb::RotateKeyRequest {
            key: "prod/tokens".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Version 1 is still read.
    svc.decrypt(decrypt()).await.unwrap();
    let retire = |force: bool| pb::RetireKeyVersionsRequest {
        key: "prod/tokens".into(),
        below: 2,
        force,
    };
    let busy = alice.retire_key_versions(retire(false)).await.unwrap_err();
    assert_eq!(busy.code(), Code::FailedPrecondition, "{busy:?}");
    assert_eq!(error_info(&busy).0, "VERSION_IN_USE", "{busy:?}");

    let id = opened(alice.retire_key_versions(retire(true)).await.unwrap_err());
    // The requester cannot approve its own request; one approval does nothing.
    let one = server
        .approvals_as("erin")
        .await
        .approve(approve(&id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.state, "pending");
    assert_eq!(one.action, "RetireKeyVersions");
    svc.decrypt(decrypt())
        .await
        .expect("still decrypts with one approval");
    let done = server
        .approvals_as("frank")
        .await
        .approve(approve(&id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, "executed", "{done:?}");
    assert_eq!(done.requester, "alice");

    let retired = svc.decrypt(decrypt()).await.unwrap_err();
    assert_eq!(retired.code(), Code::FailedPrecondition, "{retired:?}");
    assert_eq!(error_info(&retired).0, "VERSION_RETIRED", "{retired:?}");
    // The executed change is audited as alice's forced retirement, naming its approvers.
    let mut audit = server.audit(&team::token("dave")).await;
    let events = common::events_for(&mut audit, &done.execution_request_id).await;
    let outcome = events
        .iter()
        .find(|e| e.outcome == "ok")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(outcome.action, "RetireKeyVersions");
    assert_eq!(outcome.actor, "alice");
    let details: serde_json::Value = serde_json::from_str(&outcome.details).unwrap();
    assert_eq!(details["forced"], true, "{details}");
    let approvers = details["approvers"].to_string();
    assert!(
        approvers.contains("erin") && approvers.contains("frank"),
        "{details}"
    );
}
