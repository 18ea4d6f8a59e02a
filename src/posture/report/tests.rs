//! Each section's status decided from made-up evidence: the paths the end-to-end test does
//! not reach (nothing in scope, a broken chain, self-approval, a BYOK copy from an HSM).

use super::*;
use crate::approvals::{Approval, ApprovalRequest, ApprovalSettings, PendingChange, RequestState};
use crate::audit::VerifyReport;
use crate::catalog::{KeyRecord, KeyState, VersionRecord};
use crate::lifecycle::destruction::DestructionRecord;
use crate::policy::PolicyInfo;
use keygate_provider::{Algorithm, KeyPurpose, KeyUri};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const NOW: i64 = 1_800_000_000_000;

fn evidence() -> Evidence {
    Evidence {
        now_ms: NOW,
        generated_by: "sam".into(),
        keys: Vec::new(),
        provider_kinds: BTreeMap::from([
            ("local".to_string(), "local"),
            ("hsm".to_string(), "pkcs11"),
            ("aws".to_string(), "aws-kms"),
        ]),
        unknown_owners: Default::default(),
        latest_scan: None,
        unmanaged: Vec::new(),
        open_findings: Vec::new(),
        approval_settings: ApprovalSettings::default(),
        approvals: Vec::new(),
        destructions: Vec::new(),
        verification: VerifyReport {
            ok: true,
            ..Default::default()
        },
        checkpoints: Vec::new(),
        witnesses: Vec::new(),
        duty_policies: vec![PolicyInfo {
            id: "separation-of-duties/no-self-approval".into(),
            file: "rule-4-separation-of-duties.cedar".into(),
            rule: Some("separation-of-duties".into()),
            reason: Some("the approver of a request is never its requester".into()),
            approval: false,
        }],
        principals: Vec::new(),
    }
}

fn key(name: &str, provider: &str, state: KeyState, due_ms: i64) -> Arc<KeyRecord> {
    Arc::new(KeyRecord {
        id: format!("id-{name}"),
        name: name.into(),
        owner: "alice".into(),
        purpose: KeyPurpose::Encrypt,
        environment: "prod".into(),
        algorithm: Algorithm::Aes256Gcm,
        provider: provider.into(),
        provider_uri: KeyUri::new(format!("local://{name}")),
        state,
        crypto_period: Duration::from_secs(86_400),
        created_at_ms: NOW - 1000,
        rotation_due_at_ms: due_ms,
        destruction_at_ms: None,
        labels: BTreeMap::new(),
        versions: vec![VersionRecord {
            version: 1,
            provider_version: "1".into(),
            created_at_ms: NOW - 1000,
        }],
        retired_below: 0,
        expires_at_ms: None,
        primary_version: None,
    })
}

fn labelled(key: Arc<KeyRecord>, labels: &[(&str, &str)]) -> Arc<KeyRecord> {
    let mut key = (*key).clone();
    for (k, v) in labels {
        key.labels.insert(k.to_string(), v.to_string());
    }
    Arc::new(key)
}

fn status(report: &Report, id: &str) -> Status {
    report
        .sections
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.status)
        .unwrap_or_else(|| panic!("no section {id}"))
}

fn granted_request(requester: &str, approvers: &[&str]) -> ApprovalRequest {
    ApprovalRequest {
        id: "req-1".into(),
        key_id: "id-k".into(),
        key_name: "k".into(),
        environment: "prod".into(),
        change: PendingChange::Disable,
        digest: String::new(),
        requester: requester.into(),
        request_call_id: String::new(),
        quorum: 2,
        created_at_ms: NOW - 10,
        expires_at_ms: NOW + 10,
        state: RequestState::Executed,
        approvals: approvers
            .iter()
            .map(|p| Approval {
                principal: p.to_string(),
                at_ms: NOW - 5,
                digest: String::new(),
                call_id: String::new(),
            })
            .collect(),
        closed_by: None,
        closed_at_ms: None,
        outcome: None,
        execution_call_id: None,
    }
}

#[test]
fn with_nothing_to_judge_the_sections_say_so() {
    let report = assess(&evidence());
    assert_eq!(report.sections.len(), 8);
    for id in [
        "pci-dss-3.5-3.6-lifecycle",
        "nist-800-57-crypto-periods",
        "destruction-evidence",
        "hsm-generation",
        "open-findings",
    ] {
        assert_eq!(status(&report, id), Status::NoEvidence, "{id}");
    }
    // Configured, never exercised; a chain without a signed checkpoint.
    assert_eq!(status(&report, "split-knowledge"), Status::Partial);
    assert_eq!(status(&report, "audit-integrity"), Status::Partial);
    assert_eq!(status(&report, "separation-of-duties"), Status::Met);
}

#[test]
fn only_enabled_keys_past_their_crypto_period_are_overdue() {
    let mut e = evidence();
    e.keys = vec![
        key("fresh", "local", KeyState::Enabled, NOW + 1000),
        key("off", "local", KeyState::Disabled, NOW - 1000),
    ];
    assert_eq!(
        status(&assess(&e), "nist-800-57-crypto-periods"),
        Status::Met
    );
    e.keys
        .push(key("late", "local", KeyState::Enabled, NOW - 1));
    let report = assess(&e);
    let s = &report.sections[1];
    assert_eq!(s.status, Status::NotMet);
    assert!(
        s.verdict.contains("late") && !s.verdict.contains("off"),
        "{}",
        s.verdict
    );
}

#[test]
fn a_byok_copy_of_an_hsm_key_counts_as_generated_in_the_hsm() {
    let mut e = evidence();
    let original = labelled(
        key("ca/root", "hsm", KeyState::Enabled, NOW + 1),
        &[("usage", "ca")],
    );
    let copy = labelled(
        key("ca/root.aws", "aws", KeyState::Enabled, NOW + 1),
        &[("usage", "ca"), ("byok-original", "id-ca/root")],
    );
    e.keys = vec![original, copy];
    assert_eq!(status(&assess(&e), "hsm-generation"), Status::Met);
    e.keys.push(labelled(
        key("pay/pin", "local", KeyState::Enabled, NOW + 1),
        &[("usage", "pin")],
    ));
    assert_eq!(status(&assess(&e), "hsm-generation"), Status::NotMet);
}

#[test]
fn dual_control_fails_on_a_quorum_of_one_or_a_self_approval() {
    let mut e = evidence();
    e.approvals = vec![granted_request("alice", &["erin", "frank"])];
    assert_eq!(status(&assess(&e), "split-knowledge"), Status::Met);
    e.approval_settings.quorum = 1;
    assert_eq!(status(&assess(&e), "split-knowledge"), Status::NotMet);
    e.approval_settings.quorum = 2;
    e.approvals = vec![granted_request("alice", &["alice", "frank"])];
    let report = assess(&e);
    assert_eq!(status(&report, "split-knowledge"), Status::NotMet);
    assert_eq!(status(&report, "separation-of-duties"), Status::NotMet);
    e.approvals.clear();
    e.duty_policies.clear();
    assert_eq!(status(&assess(&e), "separation-of-duties"), Status::NotMet);
}

#[test]
fn a_destroyed_key_without_its_record_is_not_met() {
    let mut e = evidence();
    e.keys = vec![key("gone", "local", KeyState::Destroyed, NOW)];
    assert_eq!(status(&assess(&e), "destruction-evidence"), Status::NotMet);
    e.destructions = vec![DestructionRecord {
        id: "d1".into(),
        key_id: "id-gone".into(),
        key_name: "gone".into(),
        environment: "prod".into(),
        provider: "local".into(),
        provider_uri: "local://gone".into(),
        requested_by: "alice".into(),
        approval_id: Some("req-1".into()),
        approved_by: vec!["erin".into(), "frank".into()],
        window_seconds: 60,
        scheduled_at_ms: NOW - 100,
        destruction_at_ms: NOW - 40,
        state: "destroyed".into(),
        cancelled_by: None,
        cancelled_at_ms: None,
        destroyed_at_ms: Some(NOW - 30),
        destroy_call_id: Some("c".into()),
        versions: vec![1],
        method: Some("cryptographic erasure".into()),
        checklist: Vec::new(),
        copies: Vec::new(),
    }];
    assert_eq!(status(&assess(&e), "destruction-evidence"), Status::Met);
}

#[test]
fn a_broken_chain_is_not_met() {
    let mut e = evidence();
    e.verification.ok = false;
    e.verification.first_broken_sequence = 7;
    e.verification.reason = "hash mismatch".into();
    let report = assess(&e);
    let s = report
        .sections
        .iter()
        .find(|s| s.id == "audit-integrity")
        .unwrap();
    assert_eq!(s.status, Status::NotMet);
    assert!(s.verdict.contains("sequence 7"), "{}", s.verdict);
}
