//! The control sections: split knowledge (approvals and quorums), separation of duties and
//! destruction evidence.

use super::assess::{Evidence, section};
use super::{Section, Status, Table, count, some_names};
use crate::approvals::{ALWAYS_CRITICAL, ApprovalRequest, RequestState};
use crate::catalog::KeyState;
use crate::config::PrincipalKind;

/// Role pairs one principal should not hold together: whoever manages keys does not use
/// them, and whoever audits does neither.
const CONFLICTING_ROLES: &[(&str, &str)] = &[
    ("key-admin", "key-user"),
    ("auditor", "key-admin"),
    ("auditor", "key-user"),
];

/// The rule name the separation-of-duties policies carry (`@rule`).
pub const DUTIES_RULE: &str = "separation-of-duties";

/// A request whose quorum was reached (its change released, whatever came of it).
fn granted(r: &ApprovalRequest) -> bool {
    matches!(
        r.state,
        RequestState::Approved | RequestState::Executed | RequestState::Failed
    )
}

/// What is wrong with a granted request's approvals, if anything.
fn approval_fault(r: &ApprovalRequest) -> Option<String> {
    let approvers = r.approvers();
    let mut distinct = approvers.clone();
    distinct.sort();
    distinct.dedup();
    if approvers.iter().any(|a| a == &r.requester) {
        Some(format!("{}: approved by its requester", r.id))
    } else if (distinct.len() as u32) < r.quorum.max(2) {
        Some(format!(
            "{}: {} distinct approvers, quorum {}",
            r.id,
            distinct.len(),
            r.quorum
        ))
    } else {
        None
    }
}

pub(super) fn split_knowledge(e: &Evidence) -> Section {
    let settings = &e.approval_settings;
    let mut config = Table::new("Approval configuration", &["setting", "value"]);
    config.row(vec![
        "quorum (distinct approvers, never the requester)".into(),
        settings.quorum.to_string(),
    ]);
    let critical: Vec<String> = settings
        .critical
        .iter()
        .map(|c| match &c.environment {
            Some(env) => format!("{}@{env}", c.action),
            None => c.action.to_string(),
        })
        .collect();
    config.row(vec!["critical actions".into(), critical.join(", ")]);
    let always: Vec<&str> = ALWAYS_CRITICAL.iter().map(|a| a.as_str()).collect();
    config.row(vec![
        "always critical (cannot be configured away)".into(),
        always.join(", "),
    ]);
    config.row(vec![
        "request expiry".into(),
        crate::time::format_duration(settings.expiry),
    ]);
    let mut requests = Table::new(
        "Approval requests",
        &[
            "request",
            "key",
            "action",
            "requester",
            "approvers",
            "quorum",
            "state",
            "opened",
            "closed",
        ],
    );
    for r in &e.approvals {
        requests.row(vec![
            r.id.clone(),
            r.key_name.clone(),
            r.action().to_string(),
            r.requester.clone(),
            r.approvers().join(", "),
            r.quorum.to_string(),
            r.state_at(e.now_ms).into(),
            e.time(r.created_at_ms),
            r.closed_at_ms.map(|t| e.time(t)).unwrap_or_default(),
        ]);
    }
    let granted: Vec<&ApprovalRequest> = e.approvals.iter().filter(|r| granted(r)).collect();
    let faults: Vec<String> = granted.iter().filter_map(|r| approval_fault(r)).collect();
    let (status, verdict) = if settings.quorum < 2 {
        (
            Status::NotMet,
            format!(
                "the quorum is {}: one approver alone releases a critical action",
                settings.quorum
            ),
        )
    } else if !faults.is_empty() {
        (
            Status::NotMet,
            format!(
                "requests released without dual control: {}",
                some_names(&faults, 3)
            ),
        )
    } else if granted.is_empty() {
        (
            Status::Partial,
            format!(
                "critical actions need {} approvers other than the requester, but no request has been approved yet, so no record shows the control at work",
                settings.quorum
            ),
        )
    } else {
        (
            Status::Met,
            format!(
                "critical actions need {} approvers other than the requester; {} on record, each with its quorum",
                settings.quorum,
                count(granted.len(), "approved request", "approved requests")
            ),
        )
    };
    section(
        "split-knowledge",
        "Split knowledge and dual control (PCI PIN, WebTrust)",
        "No single person can carry out a critical key operation (destruction, a change of custodian, disabling a production key): it needs the approval of at least two others, never the requester.",
        status,
        verdict,
        vec![config, requests],
    )
}

pub(super) fn separation_of_duties(e: &Evidence) -> Section {
    let mut policies = Table::new(
        "Separation-of-duties policies in force",
        &["policy", "file", "what it refuses"],
    );
    for p in &e.duty_policies {
        policies.row(vec![
            p.id.clone(),
            p.file.clone(),
            p.reason.clone().unwrap_or_default(),
        ]);
    }
    let mut principals = Table::new(
        "Principals and their roles",
        &["principal", "kind", "roles", "environments", "conflict"],
    );
    let mut conflicted = Vec::new();
    for p in &e.principals {
        let conflicts: Vec<String> = CONFLICTING_ROLES
            .iter()
            .filter(|(a, b)| p.has_role(a) && p.has_role(b))
            .map(|(a, b)| format!("{a} and {b}"))
            .collect();
        if !conflicts.is_empty() {
            conflicted.push(p.name.clone());
        }
        principals.row(vec![
            p.name.clone(),
            match p.kind {
                PrincipalKind::User => "user",
                PrincipalKind::ServiceAccount => "service-account",
            }
            .into(),
            p.roles.join(", "),
            p.environments.join(", "),
            conflicts.join("; "),
        ]);
    }
    let mut self_approved = Table::new(
        "Requests approved by their own requester",
        &["request", "key", "requester"],
    );
    for r in e
        .approvals
        .iter()
        .filter(|r| r.approvers().contains(&r.requester))
    {
        self_approved.row(vec![r.id.clone(), r.key_name.clone(), r.requester.clone()]);
    }
    let (status, verdict) = if e.duty_policies.is_empty() {
        (
            Status::NotMet,
            "no policy in force enforces separation of duties".to_string(),
        )
    } else if !self_approved.rows.is_empty() {
        (
            Status::NotMet,
            format!(
                "{} approved by their own requester",
                count(self_approved.rows.len(), "request was", "requests were")
            ),
        )
    } else if !conflicted.is_empty() {
        (
            Status::Partial,
            format!(
                "{} key admins, key users and auditors apart, but these principals hold conflicting roles: {}",
                count(e.duty_policies.len(), "policy keeps", "policies keep"),
                some_names(&conflicted, 5)
            ),
        )
    } else {
        (
            Status::Met,
            format!(
                "{} key admins, key users and auditors apart and forbid self-approval; no principal holds conflicting roles and no request was approved by its requester",
                count(e.duty_policies.len(), "policy keeps", "policies keep")
            ),
        )
    };
    section(
        "separation-of-duties",
        "Separation of duties (PCI DSS 3.6.8, ISO 27001 A.5.3)",
        "Those who administer keys do not use them, those who use keys do not administer them, auditors only read, and nobody approves their own request.",
        status,
        verdict,
        vec![policies, principals, self_approved],
    )
}

pub(super) fn destruction(e: &Evidence) -> Section {
    let mut records = Table::new(
        "Destruction records",
        &[
            "key",
            "provider",
            "requested by",
            "approved by",
            "window",
            "scheduled",
            "state",
            "destroyed",
            "versions",
            "method",
        ],
    );
    for d in &e.destructions {
        let versions: Vec<String> = d.versions.iter().map(|v| v.to_string()).collect();
        records.row(vec![
            d.key_name.clone(),
            d.provider.clone(),
            d.requested_by.clone(),
            d.approved_by.join(", "),
            crate::time::format_duration(std::time::Duration::from_secs(d.window_seconds)),
            e.time(d.scheduled_at_ms),
            d.state.clone(),
            d.destroyed_at_ms.map(|t| e.time(t)).unwrap_or_default(),
            versions.join(", "),
            d.method.clone().unwrap_or_default(),
        ]);
    }
    let mut missing = Table::new(
        "Destroyed keys without a destruction record",
        &["key", "provider", "environment"],
    );
    for k in e.keys.iter().filter(|k| {
        k.state == KeyState::Destroyed
            && !e
                .destructions
                .iter()
                .any(|d| d.key_id == k.id && d.state == "destroyed")
    }) {
        missing.row(vec![
            k.name.clone(),
            k.provider.clone(),
            k.environment.clone(),
        ]);
    }
    let destroyed: Vec<_> = e
        .destructions
        .iter()
        .filter(|d| d.state == "destroyed")
        .collect();
    let unapproved: Vec<&str> = destroyed
        .iter()
        .filter(|d| d.approved_by.is_empty())
        .map(|d| d.key_name.as_str())
        .collect();
    let (status, verdict) = if e.destructions.is_empty() && missing.rows.is_empty() {
        (
            Status::NoEvidence,
            "no key has been scheduled for destruction".to_string(),
        )
    } else if !missing.rows.is_empty() {
        (
            Status::NotMet,
            format!(
                "{} no destruction record",
                count(
                    missing.rows.len(),
                    "destroyed key has",
                    "destroyed keys have"
                )
            ),
        )
    } else if destroyed.is_empty() {
        (
            Status::Partial,
            format!(
                "{} scheduled, none carried out yet",
                count(e.destructions.len(), "destruction", "destructions")
            ),
        )
    } else if !unapproved.is_empty() {
        (
            Status::Partial,
            format!(
                "every destroyed key has a record, but these were destroyed without recorded approvals (a time to live, the dev root, or before records were kept): {}",
                some_names(&unapproved, 5)
            ),
        )
    } else {
        (
            Status::Met,
            format!(
                "{} on record, each requested, approved by others, after a pending window, with the method and versions destroyed",
                count(destroyed.len(), "destruction", "destructions")
            ),
        )
    };
    section(
        "destruction-evidence",
        "Evidence of key destruction (SOC 2 CC6.5, ISO 27001 A.8.10)",
        "Keys are destroyed deliberately, after approval and a pending window, and each destruction leaves a record of who asked, who approved, when, how and which versions.",
        status,
        verdict,
        vec![records, missing],
    )
}
