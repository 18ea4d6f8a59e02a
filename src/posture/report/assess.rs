//! From the evidence keygate holds to a status per requirement: the key lifecycle, crypto-
//! periods and HSM generation here; approvals, duties and destruction in [`super::controls`];
//! the audit chain and findings in [`super::watch`].
//!
//! Each section decides from the facts alone (no store is read here), so the rules for a
//! status can be tested on data made up for the purpose.

use super::{Report, Section, Status, Table, count, some_names};
use super::{controls, watch};
use crate::approvals::{ApprovalRequest, ApprovalSettings};
use crate::audit::VerifyReport;
use crate::audit::store::Checkpoint;
use crate::auth::Principal;
use crate::catalog::{KeyRecord, KeyState};
use crate::lifecycle::destruction::DestructionRecord;
use crate::policy::PolicyInfo;
use crate::posture::{Finding, ScannedKey};
use crate::time::{format_duration, rfc3339};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Everything the report is decided from, as the `ComplianceReport` operation gathered it.
pub struct Evidence {
    pub now_ms: i64,
    pub generated_by: String,
    pub keys: Vec<Arc<KeyRecord>>,
    /// Provider instance name → kind (`pkcs11`, `aws-kms`, …).
    pub provider_kinds: BTreeMap<String, &'static str>,
    /// Ids of keys whose owner is no configured principal or team.
    pub unknown_owners: BTreeSet<String>,
    /// The newest inventory scan (id, finished at), if one ran.
    pub latest_scan: Option<(i64, i64)>,
    /// The newest scan's keys that keygate does not manage.
    pub unmanaged: Vec<ScannedKey>,
    pub open_findings: Vec<Finding>,
    pub approval_settings: ApprovalSettings,
    /// Newest first.
    pub approvals: Vec<ApprovalRequest>,
    /// Newest first.
    pub destructions: Vec<DestructionRecord>,
    pub verification: VerifyReport,
    /// Oldest first.
    pub checkpoints: Vec<Checkpoint>,
    pub witnesses: Vec<String>,
    /// The policies in force that enforce separation of duties (`@rule`).
    pub duty_policies: Vec<PolicyInfo>,
    pub principals: Vec<Arc<Principal>>,
}

/// The label that puts a key in scope of the HSM requirement, and the values that do: CA
/// keys (WebTrust) and payment or PIN keys (PCI PIN). keygate keys have a purpose
/// (encrypt/sign/mac) but no tier, so the use is a label, as `usage=tls` is for rule 2.
pub const USAGE_LABEL: &str = "usage";
pub const HSM_USAGES: &[&str] = &["ca", "payment", "pin"];

/// Provider kinds whose keys are generated inside a hardware security module.
pub const HSM_KINDS: &[&str] = &["pkcs11"];

pub fn assess(e: &Evidence) -> Report {
    Report {
        generated_at: rfc3339(e.now_ms),
        generated_by: e.generated_by.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        sections: vec![
            lifecycle(e),
            crypto_periods(e),
            controls::split_knowledge(e),
            controls::separation_of_duties(e),
            controls::destruction(e),
            hsm_generation(e),
            watch::audit_chain(e),
            watch::findings(e),
        ],
    }
}

pub(super) fn section(
    id: &str,
    title: &str,
    requirement: &str,
    status: Status,
    verdict: String,
    evidence: Vec<Table>,
) -> Section {
    Section {
        id: id.into(),
        title: title.into(),
        requirement: requirement.into(),
        status,
        verdict,
        evidence: evidence.into_iter().map(Table::capped).collect(),
    }
}

impl Evidence {
    pub(super) fn kind_of(&self, provider: &str) -> &str {
        self.provider_kinds
            .get(provider)
            .copied()
            .unwrap_or("(not configured)")
    }

    pub(super) fn time(&self, ms: i64) -> String {
        if ms <= 0 { String::new() } else { rfc3339(ms) }
    }

    /// The enabled keys whose primary version has outlived its crypto-period.
    fn overdue(&self) -> Vec<&KeyRecord> {
        self.keys
            .iter()
            .filter(|k| k.state == KeyState::Enabled && k.rotation_due_at_ms <= self.now_ms)
            .map(|k| k.as_ref())
            .collect()
    }
}

fn lifecycle(e: &Evidence) -> Section {
    let mut counts: BTreeMap<(String, String), [usize; 4]> = BTreeMap::new();
    let mut inventory = Table::new(
        "Key inventory",
        &[
            "key",
            "owner",
            "purpose",
            "environment",
            "provider",
            "algorithm",
            "state",
            "crypto-period",
            "versions",
            "created",
        ],
    );
    for k in &e.keys {
        let slot = match k.state {
            KeyState::Enabled => 0,
            KeyState::Disabled => 1,
            KeyState::PendingDestruction => 2,
            KeyState::Destroyed => 3,
        };
        counts
            .entry((k.provider.clone(), k.environment.clone()))
            .or_default()[slot] += 1;
        let owner = if e.unknown_owners.contains(&k.id) {
            format!("{} (unknown)", k.owner)
        } else {
            k.owner.clone()
        };
        inventory.row(vec![
            k.name.clone(),
            owner,
            k.purpose.as_str().into(),
            k.environment.clone(),
            format!("{} ({})", k.provider, e.kind_of(&k.provider)),
            k.algorithm.as_str().into(),
            k.state.as_str().into(),
            format_duration(k.crypto_period),
            k.versions.len().to_string(),
            e.time(k.created_at_ms),
        ]);
    }
    let mut per_provider = Table::new(
        "Keys per provider and environment",
        &[
            "provider",
            "kind",
            "environment",
            "enabled",
            "disabled",
            "pending destruction",
            "destroyed",
        ],
    );
    for ((provider, environment), n) in &counts {
        let mut row = vec![
            provider.clone(),
            e.kind_of(provider).into(),
            environment.clone(),
        ];
        row.extend(n.iter().map(|c| c.to_string()));
        per_provider.row(row);
    }
    let mut outside = Table::new(
        "Keys the backends hold outside keygate (newest inventory scan)",
        &["provider", "provider URI", "algorithm", "state"],
    );
    for k in &e.unmanaged {
        outside.row(vec![
            k.provider.clone(),
            k.provider_uri.clone(),
            k.algorithm.clone(),
            k.state.clone(),
        ]);
    }
    outside.note = match e.latest_scan {
        Some((id, at)) => format!("scan {id}, finished {}", e.time(at)),
        None => "no inventory scan has run".into(),
    };
    let unknown: Vec<&str> = e
        .keys
        .iter()
        .filter(|k| e.unknown_owners.contains(&k.id))
        .map(|k| k.name.as_str())
        .collect();
    let (status, verdict) = if e.keys.is_empty() && e.unmanaged.is_empty() {
        (Status::NoEvidence, "keygate manages no keys".to_string())
    } else if e.latest_scan.is_none() {
        (
            Status::Partial,
            format!(
                "{} keys are managed with an owner, purpose and crypto-period, but no inventory scan has run, so keys held in the backends outside keygate are unknown",
                e.keys.len()
            ),
        )
    } else if !e.unmanaged.is_empty() || !unknown.is_empty() {
        let mut gaps = Vec::new();
        if !e.unmanaged.is_empty() {
            gaps.push(format!(
                "{} outside keygate's lifecycle",
                count(
                    e.unmanaged.len(),
                    "key in the backends is",
                    "keys in the backends are"
                )
            ));
        }
        if !unknown.is_empty() {
            gaps.push(format!(
                "keys with an unknown owner: {}",
                some_names(&unknown, 5)
            ));
        }
        (Status::Partial, gaps.join("; "))
    } else {
        (
            Status::Met,
            format!(
                "all {} keys have an owner, purpose and crypto-period and follow keygate's lifecycle; the newest scan found no key outside it",
                e.keys.len()
            ),
        )
    };
    section(
        "pci-dss-3.5-3.6-lifecycle",
        "Documented key lifecycle (PCI DSS 3.5-3.6)",
        "Keys that protect cardholder data are inventoried with a custodian, and their whole lifecycle (generation, distribution, storage, rotation at the end of the crypto-period, retirement, destruction) is documented and carried out.",
        status,
        verdict,
        vec![per_provider, inventory, outside],
    )
}

fn crypto_periods(e: &Evidence) -> Section {
    let mut periods = Table::new(
        "Crypto-periods and rotation",
        &[
            "key",
            "purpose",
            "crypto-period",
            "versions",
            "newest version",
            "rotation due",
            "overdue",
        ],
    )
    .note("Overdue: an enabled key whose primary version has outlived its crypto-period.");
    let mut history = Table::new("Rotation history", &["key", "version", "created"]);
    let live: Vec<&Arc<KeyRecord>> = e
        .keys
        .iter()
        .filter(|k| k.state != KeyState::Destroyed)
        .collect();
    let overdue = e.overdue();
    let mut rotations = 0;
    for k in &live {
        let is_overdue = overdue.iter().any(|o| o.id == k.id);
        periods.row(vec![
            k.name.clone(),
            k.purpose.as_str().into(),
            format_duration(k.crypto_period),
            k.versions.len().to_string(),
            e.time(k.newest().created_at_ms),
            e.time(k.rotation_due_at_ms),
            if is_overdue { "yes" } else { "no" }.into(),
        ]);
        rotations += k.versions.len().saturating_sub(1);
        for v in &k.versions {
            history.row(vec![
                k.name.clone(),
                v.version.to_string(),
                e.time(v.created_at_ms),
            ]);
        }
    }
    let without: Vec<&str> = live
        .iter()
        .filter(|k| k.crypto_period.is_zero())
        .map(|k| k.name.as_str())
        .collect();
    let overdue_names: Vec<&str> = overdue.iter().map(|k| k.name.as_str()).collect();
    let (status, verdict) = if live.is_empty() {
        (Status::NoEvidence, "no key in use".to_string())
    } else if !without.is_empty() {
        (
            Status::NotMet,
            format!("keys without a crypto-period: {}", some_names(&without, 5)),
        )
    } else if !overdue.is_empty() {
        (
            Status::NotMet,
            format!(
                "rotation overdue for {} of {} keys: {}",
                overdue.len(),
                live.len(),
                some_names(&overdue_names, 5)
            ),
        )
    } else {
        (
            Status::Met,
            format!(
                "all {} keys have a crypto-period and none is overdue; {} on record",
                live.len(),
                count(rotations, "rotation", "rotations")
            ),
        )
    };
    section(
        "nist-800-57-crypto-periods",
        "Crypto-periods (NIST SP 800-57)",
        "Each key has a crypto-period fixed for its purpose, and is rotated (or retired) before the crypto-period ends.",
        status,
        verdict,
        vec![periods, history],
    )
}

/// Where a key was generated: inside an HSM (and which), or not.
fn generated_in(e: &Evidence, key: &KeyRecord) -> (bool, String) {
    let kind = e.kind_of(&key.provider);
    if HSM_KINDS.contains(&kind) {
        return (true, format!("HSM ({kind})"));
    }
    // A BYOK copy: the key was generated in the HSM of its original and imported wrapped.
    if let Some(original) = key
        .labels
        .get("byok-original")
        .and_then(|id| e.keys.iter().find(|k| &k.id == id))
    {
        let source = e.kind_of(&original.provider);
        if HSM_KINDS.contains(&source) {
            return (
                true,
                format!(
                    "HSM ({source}), imported into {kind} as a BYOK copy of {}",
                    original.name
                ),
            );
        }
    }
    (false, format!("not an HSM: {kind}"))
}

fn hsm_generation(e: &Evidence) -> Section {
    let mut scope = Table::new(
        "CA and payment keys",
        &[
            "key",
            "usage",
            "purpose",
            "provider",
            "generated in",
            "state",
        ],
    )
    .note(format!(
        "In scope: keys labelled {USAGE_LABEL}={} (destroyed keys left out).",
        HSM_USAGES.join(" | ")
    ));
    let mut outside = Vec::new();
    for k in e.keys.iter().filter(|k| k.state != KeyState::Destroyed) {
        let Some(usage) = k
            .labels
            .get(USAGE_LABEL)
            .filter(|u| HSM_USAGES.contains(&u.as_str()))
        else {
            continue;
        };
        let (in_hsm, place) = generated_in(e, k);
        if !in_hsm {
            outside.push(k.name.clone());
        }
        scope.row(vec![
            k.name.clone(),
            usage.clone(),
            k.purpose.as_str().into(),
            k.provider.clone(),
            place,
            k.state.as_str().into(),
        ]);
    }
    let (status, verdict) = if scope.rows.is_empty() {
        (
            Status::NoEvidence,
            format!("no key is labelled {USAGE_LABEL}={}", HSM_USAGES.join(", ")),
        )
    } else if outside.is_empty() {
        (
            Status::Met,
            format!(
                "all {} CA and payment keys were generated in an HSM",
                scope.rows.len()
            ),
        )
    } else {
        (
            Status::NotMet,
            format!(
                "{} of {} CA and payment keys were not generated in an HSM: {}",
                outside.len(),
                scope.rows.len(),
                some_names(&outside, 5)
            ),
        )
    };
    section(
        "hsm-generation",
        "HSM generation of CA and payment keys (WebTrust, PCI PIN)",
        "Certificate authority keys and payment (PIN) keys are generated inside a hardware security module and never exist in plaintext outside one.",
        status,
        verdict,
        vec![scope],
    )
}
