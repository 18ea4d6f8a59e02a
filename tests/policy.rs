//! The default policies through the gRPC API, with real tokens from a config file: one test
//! per rule (the allowed case succeeds, the forbidden one is PERMISSION_DENIED naming the
//! rule, and both are in the audit log with the deciding policy ids), the issue's three
//! scenarios, reloading a broken then fixed policy file, and `policy explain`.

mod common;

use common::team::{self, create_in, error_info, policy_folder};
use common::{Server, ServerOptions, create, days, events_for, request_id, status_request_id};
use keygate::pb;
use std::time::{Duration, Instant};
use tonic::Code;

const ALICE: &str = "kg_test_alice_0123456789abcdef";
const BOB: &str = "kg_test_bob_0123456789abcdef00";
const ADMIN: &str = "kg_test_admin_0123456789abcdef";
const AUDITOR: &str = "kg_test_auditor_0123456789abcd";

/// The audit event of a call, by its request id (the outcome, not the intent).
async fn event(server: &Server, request_id: &str) -> pb::AuditEvent {
    let mut audit = server.audit_as("dave").await;
    let events = events_for(&mut audit, request_id).await;
    events
        .into_iter()
        .rfind(|e| e.outcome != "intent")
        .unwrap_or_else(|| panic!("no event for request {request_id}"))
}

/// Asserts `result` was allowed and its event names `policy` among those that allowed it.
async fn allowed<T>(
    server: &Server,
    result: Result<tonic::Response<T>, tonic::Status>,
    policy: &str,
) -> T {
    let response = result.unwrap_or_else(|s| panic!("expected an allowed call: {s:?}"));
    let e = event(server, &request_id(&response)).await;
    assert_eq!(e.outcome, "ok");
    assert!(
        e.policy.starts_with("allow by") && e.policy.contains(policy),
        "{}",
        e.policy
    );
    response.into_inner()
}

/// Asserts `result` was refused by `rule` (its reason names it), decided by `policy`, and
/// that its event says so.
async fn denied<T: std::fmt::Debug>(
    server: &Server,
    result: Result<tonic::Response<T>, tonic::Status>,
    rule: &str,
    policy: &str,
) -> tonic::Status {
    let status = result.expect_err("expected a refusal");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains(&format!("denied by {rule}")),
        "{}",
        status.message()
    );
    let (reason, metadata) = error_info(&status);
    assert_eq!(reason, "POLICY_DENIED");
    assert!(
        metadata.get("policies").is_some_and(|p| p.contains(policy)),
        "{metadata:?}"
    );
    let e = event(server, &status_request_id(&status)).await;
    assert_eq!(e.outcome, "denied");
    assert!(
        e.policy.starts_with("deny by") && e.policy.contains(policy),
        "{}",
        e.policy
    );
    assert!(
        e.reason.contains(&format!("denied by {rule}")),
        "{}",
        e.reason
    );
    status
}

/// Asserts `result` was refused by `rule` on a key the caller may not read: the caller hears
/// NOT_FOUND, as for a missing name, and the event records the refusal.
async fn concealed<T: std::fmt::Debug>(
    server: &Server,
    result: Result<tonic::Response<T>, tonic::Status>,
    rule: &str,
    policy: &str,
) {
    let status = result.expect_err("expected a refusal");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(error_info(&status).0, "KEY_NOT_FOUND");
    let e = event(server, &status_request_id(&status)).await;
    assert_eq!(e.outcome, "denied");
    assert_eq!(e.error_reason, "POLICY_DENIED");
    assert!(
        e.policy.starts_with("deny by") && e.policy.contains(policy),
        "{}",
        e.policy
    );
    assert!(
        e.reason.contains(&format!("denied by {rule}")),
        "{}",
        e.reason
    );
}

fn encrypt(key: &str) -> pb::EncryptRequest {
    pb::EncryptRequest {
        key: key.into(),
        plaintext: b"4111 1111 1111 1111".to_vec(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_1_owner_is_a_configured_principal_and_never_the_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let mut alice = server.keys_as("alice").await;

    // The issue's scenario: an admin naming itself the owner of the key it creates.
    denied(
        &server,
        alice
            .create_key(create_in("prod/payments", "aes-256-gcm", "alice", "prod"))
            .await,
        "owner",
        "owner/not-the-administrator",
    )
    .await;
    // A team, or a name keygate does not know, owns nothing.
    denied(
        &server,
        alice
            .create_key(create_in(
                "prod/payments",
                "aes-256-gcm",
                "payments",
                "prod",
            ))
            .await,
        "owner",
        "owner/named-principal",
    )
    .await;
    denied(
        &server,
        alice
            .create_key(create_in("prod/payments", "aes-256-gcm", "nobody", "prod"))
            .await,
        "owner",
        "owner/named-principal",
    )
    .await;
    // A configured service account, or person, does.
    let key = allowed(
        &server,
        alice
            .create_key(create_in("prod/payments", "aes-256-gcm", "svc-pay", "prod"))
            .await,
        "key-admins-manage-keys",
    )
    .await;
    assert_eq!(key.owner, "svc-pay");
    allowed(
        &server,
        alice
            .create_key(create_in("prod/olga", "hmac-sha256", "olga", "prod"))
            .await,
        "key-admins-manage-keys",
    )
    .await;
    // Handing a key to oneself or to a team is refused outright, not sent for approval.
    for (owner, policy) in [
        ("alice", "owner/not-the-administrator-on-transfer"),
        ("payments", "owner/new-owner-named-principal"),
    ] {
        denied(
            &server,
            alice
                .set_key_owner(pb::SetKeyOwnerRequest {
                    key: "prod/payments".into(),
                    owner: owner.into(),
                })
                .await,
            "owner",
            policy,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_2_crypto_periods_are_capped_per_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let mut alice = server.keys_as("alice").await;
    let with_period = |name: &str, algorithm: &str, period: i64| pb::CreateKeyRequest {
        crypto_period: days(period),
        ..create_in(name, algorithm, "svc-pay", "prod")
    };
    denied(
        &server,
        alice
            .create_key(with_period("prod/long", "aes-256-gcm", 800))
            .await,
        "crypto-period",
        "crypto-period/encrypt-at-most-2-years",
    )
    .await;
    allowed(
        &server,
        alice
            .create_key(with_period("prod/long", "aes-256-gcm", 730))
            .await,
        "key-admins-manage-keys",
    )
    .await;
    denied(
        &server,
        alice
            .create_key(with_period("prod/sig", "ecdsa-p256", 1100))
            .await,
        "crypto-period",
        "crypto-period/sign-at-most-3-years",
    )
    .await;
    allowed(
        &server,
        alice
            .create_key(with_period("prod/sig", "ecdsa-p256", 1095))
            .await,
        "key-admins-manage-keys",
    )
    .await;
    // A TLS-labelled key lives 90 days at most.
    let tls = |period: i64| {
        let mut request = with_period("prod/tls", "ecdsa-p256", period);
        request.labels.insert("usage".into(), "tls".into());
        request
    };
    denied(
        &server,
        alice.create_key(tls(120)).await,
        "crypto-period",
        "crypto-period/tls-at-most-90-days",
    )
    .await;
    allowed(
        &server,
        alice.create_key(tls(90)).await,
        "key-admins-manage-keys",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_3_a_key_past_its_crypto_period_decrypts_but_encrypts_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    // Crypto-periods of seconds, and a scheduler that does not rotate during the test.
    let server = team::start(
        dir.path(),
        "[lifecycle]\nmin_crypto_period = \"1s\"\nscan_interval = \"1h\"\n",
    );
    let mut alice = server.keys_as("alice").await;
    let mut svc = server.keys_as("svc-pay").await;
    let mut request = create_in("prod/short", "aes-256-gcm", "svc-pay", "prod");
    request.crypto_period = Some(prost_types::Duration {
        seconds: 5,
        nanos: 0,
    });
    alice.create_key(request).await.unwrap();
    let sealed = allowed(
        &server,
        svc.encrypt(encrypt("prod/short")).await,
        "key-users-use-keys",
    )
    .await;
    // Past the crypto-period (a fixed wait for the clock, not a timing assertion).
    tokio::time::sleep(Duration::from_millis(5500)).await;
    denied(
        &server,
        svc.encrypt(encrypt("prod/short")).await,
        "rotation-due",
        "rotation-due/no-new-protection",
    )
    .await;
    let opened = allowed(
        &server,
        svc.decrypt(pb::DecryptRequest {
            ciphertext: sealed.ciphertext,
            ..Default::default()
        })
        .await,
        "key-users-use-keys",
    )
    .await;
    assert_eq!(opened.plaintext, b"4111 1111 1111 1111");
    // Rotation makes it protect again.
    alice
        .rotate_key(pb::RotateKeyRequest {
            key: "prod/short".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    allowed(
        &server,
        svc.encrypt(encrypt("prod/short")).await,
        "key-users-use-keys",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_4_separation_of_duties() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let mut root = server.root().await;
    // The issue's scenario: a key admin that owns a key (dev root made it so) uses it.
    root.create_key(create_in("prod/alices", "aes-256-gcm", "alice", "prod"))
        .await
        .unwrap();
    let mut alice = server.keys_as("alice").await;
    let status = denied(
        &server,
        alice.encrypt(encrypt("prod/alices")).await,
        "separation-of-duties",
        "separation-of-duties/admins-do-not-use-keys",
    )
    .await;
    assert!(
        status.message().contains("key admins do not use keys"),
        "{}",
        status.message()
    );
    // Key users use keys but never administer them.
    alice
        .create_key(create_in("prod/payments", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    let mut svc = server.keys_as("svc-pay").await;
    allowed(
        &server,
        svc.encrypt(encrypt("prod/payments")).await,
        "key-users-use-keys",
    )
    .await;
    denied(
        &server,
        svc.rotate_key(pb::RotateKeyRequest {
            key: "prod/payments".into(),
            ..Default::default()
        })
        .await,
        "separation-of-duties",
        "separation-of-duties/users-do-not-administer",
    )
    .await;
    allowed(
        &server,
        alice
            .rotate_key(pb::RotateKeyRequest {
                key: "prod/payments".into(),
                ..Default::default()
            })
            .await,
        "key-admins-manage-keys",
    )
    .await;
    // Auditors read the log and the catalog, and nothing else.
    let mut dave = server.keys_as("dave").await;
    denied(
        &server,
        dave.encrypt(encrypt("prod/payments")).await,
        "separation-of-duties",
        "separation-of-duties/auditors-only-read",
    )
    .await;
    allowed(
        &server,
        dave.get_key(pb::GetKeyRequest {
            key: "prod/payments".into(),
            usage: false,
        })
        .await,
        "auditors-read-audit",
    )
    .await;
    let mut audit = server.audit_as("dave").await;
    allowed(
        &server,
        audit.query(pb::AuditQueryRequest::default()).await,
        "auditors-read-audit",
    )
    .await;
    // Nobody else reads the audit log.
    let status = server
        .audit_as("alice")
        .await
        .query(pb::AuditQueryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // (The approver of a request is never its requester: tests/approvals.rs.)
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_5_a_dev_service_never_touches_a_prod_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let mut alice = server.keys_as("alice").await;
    let mut bob = server.keys_as("bob").await;
    alice
        .create_key(create_in("prod/payments", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    bob.create_key(create_in("dev/payments", "aes-256-gcm", "svc-dev", "dev"))
        .await
        .unwrap();
    let mut prod = server.keys_as("svc-pay").await;
    let mut dev = server.keys_as("svc-dev").await;
    let sealed = prod
        .encrypt(encrypt("prod/payments"))
        .await
        .unwrap()
        .into_inner();
    // The issue's scenario: the dev service decrypting prod's ciphertext.
    denied(
        &server,
        dev.decrypt(pb::DecryptRequest {
            ciphertext: sealed.ciphertext.clone(),
            ..Default::default()
        })
        .await,
        "environment-isolation",
        "environment-isolation/own-environments-only",
    )
    .await;
    allowed(
        &server,
        prod.decrypt(pb::DecryptRequest {
            ciphertext: sealed.ciphertext,
            ..Default::default()
        })
        .await,
        "key-users-use-keys",
    )
    .await;
    allowed(
        &server,
        dev.encrypt(encrypt("dev/payments")).await,
        "key-users-use-keys",
    )
    .await;
    // Admins too act only in their environments, and listings show only those keys. A key
    // the admin may not even read answers as a missing one; its event keeps the denial.
    concealed(
        &server,
        bob.rotate_key(pb::RotateKeyRequest {
            key: "prod/payments".into(),
            ..Default::default()
        })
        .await,
        "environment-isolation",
        "environment-isolation/own-environments-only",
    )
    .await;
    let listed = dev
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(
        listed.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["dev/payments"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_6_weak_algorithms_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    let mut alice = server.keys_as("alice").await;
    for (name, algorithm) in [
        ("prod/rsa1024", "rsa-1024-oaep"),
        ("prod/sha1-sig", "rsa-2048-pkcs1-sha1"),
        ("prod/hmac-sha1", "hmac-sha1"),
    ] {
        denied(
            &server,
            alice
                .create_key(create_in(name, algorithm, "svc-pay", "prod"))
                .await,
            "algorithms",
            "algorithms/allowed-per-purpose",
        )
        .await;
    }
    allowed(
        &server,
        alice
            .create_key(create_in("prod/hmac", "hmac-sha256", "svc-pay", "prod"))
            .await,
        "key-admins-manage-keys",
    )
    .await;
    // A name keygate does not know at all is bad input, not a policy matter.
    let status = alice
        .create_key(create_in("prod/x", "des-56", "svc-pay", "prod"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

/// A forbid whose evaluation fails (an overflow) on keys labelled `fragile`.
const FRAGILE: &str = r#"
@id("fragile/overflowing-forbid")
@rule("fragile")
@reason("this forbid overflows when evaluated")
forbid (principal, action == Keygate::Action::"Encrypt", resource)
when {
  resource.hasTag("fragile") && resource.crypto_period_seconds * 9223372036854775807 > 0
};
"#;

#[tokio::test(flavor = "multi_thread")]
async fn rule_7_a_forbid_that_fails_to_evaluate_refuses_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let folder = policy_folder(dir.path(), &[("fragile.cedar", FRAGILE)]);
    let server = team::start(
        dir.path(),
        &format!("[policy]\ndir = \"{}\"\n", folder.display()),
    );
    let mut alice = server.keys_as("alice").await;
    let mut fragile = create_in("prod/fragile", "aes-256-gcm", "svc-pay", "prod");
    fragile.labels.insert("fragile".into(), "yes".into());
    alice.create_key(fragile).await.unwrap();
    alice
        .create_key(create_in("prod/sturdy", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    let mut svc = server.keys_as("svc-pay").await;
    // Cedar alone would skip the failing forbid and allow the call (a permit applies).
    denied(
        &server,
        svc.encrypt(encrypt("prod/fragile")).await,
        "fail-closed",
        "fragile/overflowing-forbid",
    )
    .await;
    allowed(
        &server,
        svc.encrypt(encrypt("prod/sturdy")).await,
        "key-users-use-keys",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_critical_change_by_one_admin_waits_for_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(
        dir.path(),
        "[lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"200ms\"\n",
    );
    let mut alice = server.keys_as("alice").await;
    alice
        .create_key(create_in("prod/payments", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    // The issue's scenario: one admin alone schedules a destruction (with a short window,
    // which the scheduler would carry out at once).
    let status = alice
        .schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
            family: false,
            key: "prod/payments".into(),
            pending_window: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let (reason, metadata) = error_info(&status);
    assert_eq!(reason, "APPROVAL_PENDING");
    assert!(metadata.contains_key("approval_id"));
    let e = event(&server, &status_request_id(&status)).await;
    assert_eq!(e.outcome, "pending-approval");
    assert!(
        e.policy.contains("quorum/critical-actions-need-approvals"),
        "{}",
        e.policy
    );
    // Several scheduler scans later, the key is as it was.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let key = alice
        .get_key(pb::GetKeyRequest {
            key: "prod/payments".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.state, "enabled");
    // `min_destruction_window = "0s"` stops the server at start.
    let config = dir.path().join("zero.toml");
    std::fs::write(
        &config,
        format!(
            "[lifecycle]\nmin_destruction_window = \"0s\"\n{}",
            team::tokens_config()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::keygate_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("zero"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lifecycle.min_destruction_window"),
        "{stderr}"
    );
}

/// Polls the policy status until `done` holds (the watcher looks every 200 ms).
async fn status_until(
    admin: &mut common::Admin,
    done: impl Fn(&pb::PolicyStatus) -> bool,
) -> pb::PolicyStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = admin
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the policy status never changed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const FREEZE: &str = r#"
@id("freeze/payments")
@rule("freeze")
@reason("prod/payments is frozen")
forbid (principal, action == Keygate::Action::"Encrypt", resource)
when { resource.name == "prod/payments" };
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_policy_file_keeps_the_old_policies_and_a_fixed_one_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let folder = policy_folder(dir.path(), &[]);
    let server = team::start(
        dir.path(),
        &format!(
            "[policy]\ndir = \"{}\"\nwatch_interval = \"200ms\"\n",
            folder.display()
        ),
    );
    let mut alice = server.keys_as("alice").await;
    alice
        .create_key(create_in("prod/payments", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    let mut svc = server.keys_as("svc-pay").await;
    svc.encrypt(encrypt("prod/payments")).await.unwrap();
    let mut pat = server.admin_as("pat").await;
    let before = status_until(&mut pat, |_| true).await;
    assert!(before.last_error.is_empty());

    // A broken file: refused, reported, and the old policies stay in force.
    std::fs::write(
        folder.join("freeze.cedar"),
        "forbid (principal, action, resource) when {",
    )
    .unwrap();
    let status = status_until(&mut pat, |s| !s.last_error.is_empty()).await;
    assert!(
        status.last_error.contains("freeze.cedar"),
        "{}",
        status.last_error
    );
    assert_eq!(status.policies.len(), before.policies.len());
    svc.encrypt(encrypt("prod/payments")).await.unwrap();
    assert!(
        server.output().contains("policy reload refused"),
        "no log line:\n{}",
        server.output()
    );
    // The reload RPC reports it too.
    let refused = pat
        .reload_policies(pb::ReloadPoliciesRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_info(&refused).0, "POLICY_INVALID");
    assert!(
        refused.message().contains("freeze.cedar"),
        "{}",
        refused.message()
    );
    // Both refusals are audited: the watcher's (as the system) and pat's.
    let mut audit = server.audit_as("dave").await;
    let reloads = audit
        .query(pb::AuditQueryRequest {
            action: "ReloadPolicies".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        reloads
            .iter()
            .any(|e| e.actor == "keygate:policy-watcher" && e.error_reason == "POLICY_INVALID"),
        "{reloads:?}"
    );
    assert!(
        reloads
            .iter()
            .any(|e| e.actor == "pat" && e.error_reason == "POLICY_INVALID")
    );

    // Fixed: in force without a restart.
    std::fs::write(folder.join("freeze.cedar"), FREEZE).unwrap();
    let status = status_until(&mut pat, |s| s.last_error.is_empty()).await;
    assert_eq!(status.policies.len(), before.policies.len() + 1);
    denied(
        &server,
        svc.encrypt(encrypt("prod/payments")).await,
        "freeze",
        "freeze/payments",
    )
    .await;
    // Only policy admins reload.
    let status = server
        .admin_as("alice")
        .await
        .reload_policies(pb::ReloadPoliciesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    pat.reload_policies(pb::ReloadPoliciesRequest {})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_explain_names_the_deciding_policies() {
    let dir = tempfile::tempdir().unwrap();
    let server = team::start(dir.path(), "");
    server
        .keys_as("alice")
        .await
        .create_key(create_in("prod/payments", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    let explain = |principal: &str, action: &str| {
        let out = server.cli_as(
            "pat",
            &[
                "policy",
                "explain",
                "--principal",
                principal,
                "--action",
                action,
                "--key",
                "prod/payments",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let allow = explain("svc-pay", "Encrypt");
    assert!(allow.contains(": allow"), "{allow}");
    assert!(allow.contains("key-users-use-keys"), "{allow}");
    let deny = explain("alice", "Encrypt");
    assert!(deny.contains(": deny"), "{deny}");
    assert!(
        deny.contains("separation-of-duties/admins-do-not-use-keys")
            && deny.contains("key admins do not use keys"),
        "{deny}"
    );
    let dev = explain("svc-dev", "Decrypt");
    assert!(
        dev.contains("environment-isolation/own-environments-only"),
        "{dev}"
    );
    let critical = explain("alice", "ScheduleKeyDestruction");
    assert!(
        critical.contains("needs-approval")
            && critical.contains("quorum/critical-actions-need-approvals"),
        "{critical}"
    );
    // The same through the API, as JSON for scripts.
    let explained = server
        .admin_as("dave")
        .await
        .explain_policy(pb::ExplainPolicyRequest {
            principal: "svc-pay".into(),
            action: "Encrypt".into(),
            key: "prod/payments".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explained.decision, "allow");
    // Both grants apply: svc-pay is a key user and the key's owner.
    assert_eq!(
        explained.policies,
        ["key-users-use-keys", "owner-uses-own-key"]
    );
    // Unknown principals and actions are named.
    let out = server.cli_as(
        "pat",
        &[
            "policy",
            "explain",
            "--principal",
            "zed",
            "--action",
            "Encrypt",
            "--key",
            "prod/payments",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zed"));
    // Key users do not read explanations.
    let out = server.cli_as(
        "svc-pay",
        &[
            "policy",
            "explain",
            "--principal",
            "svc-pay",
            "--action",
            "Encrypt",
            "--key",
            "prod/payments",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn policy_check_validates_a_folder_offline() {
    let dir = tempfile::tempdir().unwrap();
    let folder = policy_folder(dir.path(), &[]);
    let out = std::process::Command::new(common::keygate_bin())
        .args(["policy", "check"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("separation-of-duties/admins-do-not-use-keys"),
        "{stdout}"
    );
    std::fs::write(
        folder.join("bad.cedar"),
        "permit (principal, action, resource) when { resource.colour == \"red\" };\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::keygate_bin())
        .args(["policy", "check"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.cedar") && stderr.contains("colour"),
        "{stderr}"
    );
}

fn legacy_server(dir: &std::path::Path) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        r#"
[[tokens]]
principal = "alice"
kind = "user"
environments = ["dev"]
token = { env = "ALICE_TOKEN" }

[[tokens]]
principal = "svc-batch"
kind = "service-account"
roles = ["key-user"]
environments = ["dev"]
token = { env = "BOB_TOKEN" }

[[tokens]]
principal = "carol"
kind = "user"
roles = ["key-admin"]
environments = ["dev"]
token = { file = "ADMIN_FILE" }

[[tokens]]
principal = "dave"
kind = "user"
roles = ["auditor"]
token = { env = "AUDITOR_TOKEN" }
"#
        .replace("ADMIN_FILE", &dir.join("admin.token").display().to_string()),
    )
    .unwrap();
    std::fs::write(dir.join("admin.token"), format!("{ADMIN}\n")).unwrap();
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![
                ("ALICE_TOKEN".into(), ALICE.into()),
                ("BOB_TOKEN".into(), BOB.into()),
                ("AUDITOR_TOKEN".into(), AUDITOR.into()),
            ],
            ..Default::default()
        },
    )
}

fn mac(key: &str) -> pb::GenerateMacRequest {
    pb::GenerateMacRequest {
        key: key.into(),
        message: b"m".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn default_policies_separate_duties() {
    let dir = tempfile::tempdir().unwrap();
    let server = legacy_server(dir.path());
    let mut admin = server.keys(ADMIN).await;
    let mut alice = server.keys(ALICE).await;
    let mut batch = server.keys(BOB).await;
    let mut auditor_keys = server.keys(AUDITOR).await;

    // Only key admins create keys.
    let denied = alice
        .create_key(create("alice/own", "hmac-sha256", "alice"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    admin
        .create_key(create("alice/own", "hmac-sha256", "alice"))
        .await
        .unwrap();
    admin
        .create_key(create("other/key", "hmac-sha256", "svc-batch"))
        .await
        .unwrap();

    // Owners use their own keys, not others' (which they may not read either: NOT_FOUND).
    alice.generate_mac(mac("alice/own")).await.unwrap();
    assert_eq!(
        alice
            .generate_mac(mac("other/key"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    // Owners do not administer their keys.
    assert_eq!(
        alice
            .rotate_key(pb::RotateKeyRequest {
                key: "alice/own".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // A key-user service account uses any key of its environment, and administers none.
    batch.generate_mac(mac("alice/own")).await.unwrap();
    assert_eq!(
        batch
            .disable_key(pb::DisableKeyRequest {
                key: "other/key".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Admins manage keys but do not use them.
    admin
        .rotate_key(pb::RotateKeyRequest {
            key: "other/key".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        admin
            .generate_mac(mac("other/key"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Auditors read the log and the catalog, and use no key.
    assert_eq!(
        auditor_keys
            .generate_mac(mac("other/key"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    auditor_keys
        .get_key(pb::GetKeyRequest {
            key: "other/key".into(),
            usage: false,
        })
        .await
        .unwrap();
    let mut auditor = server.audit(AUDITOR).await;
    let denials = auditor
        .query(pb::AuditQueryRequest {
            outcome: "denied".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(denials.len() >= 6, "{denials:?}");
    assert!(
        denials
            .iter()
            .any(|e| e.actor == "alice" && e.action == "CreateKey")
    );
    // Nobody but auditors (and dev root) reads the audit log.
    let mut alice_audit = server.audit(ALICE).await;
    assert_eq!(
        alice_audit
            .query(pb::AuditQueryRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // ListKeys shows only what the caller may see.
    let visible = alice
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(
        visible.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["alice/own"]
    );
    // Dev root does everything the rules allow.
    let mut root = server.root().await;
    root.generate_mac(mac("other/key")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_policy_folder_replaces_the_defaults_and_bad_policies_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    // Only auditing is allowed: even dev root cannot create keys.
    std::fs::write(
        policies.join("only-audit.cedar"),
        "@id(\"audit-only\")\npermit (principal in Keygate::Role::\"auditor\", action in Keygate::Action::\"AuditRead\", resource);\n",
    )
    .unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!("[policy]\ndir = \"{}\"\n", policies.display()),
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config.clone()),
            ..Default::default()
        },
    );
    let mut root = server.root().await;
    let err = root
        .create_key(create("x", "aes-256-gcm", "alice"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("no policy permits this"),
        "{}",
        err.message()
    );
    drop(server);

    // A policy that does not validate against the schema is refused at start, by file.
    std::fs::write(
        policies.join("bad.cedar"),
        "permit (principal, action, resource) when { resource.colour == \"red\" };\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::keygate_bin())
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--config"])
        .arg(common::dev_only_copy(&config, true))
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("do not validate") && stderr.contains("bad.cedar"),
        "{stderr}"
    );
}
