//! The sections on what watches the keys: the audit chain (its verification, signed
//! checkpoints and witnesses) and the open posture findings.

use super::assess::{Evidence, section};
use super::{Section, Status, Table, count};

pub(super) fn audit_chain(e: &Evidence) -> Section {
    let v = &e.verification;
    let mut result = Table::new("Chain verification", &["check", "result"]);
    let mut fact = |name: &str, value: String| result.row(vec![name.into(), value]);
    fact("chain holds", if v.ok { "yes" } else { "no" }.into());
    fact("mode", v.mode.as_str().into());
    fact("verified from sequence", v.verified_from.to_string());
    fact("events checked", v.events_checked.to_string());
    fact("head sequence", v.head_sequence.to_string());
    fact("head hash", v.head_hash.clone());
    fact("checkpoints checked", v.checkpoints_checked.to_string());
    fact("last good checkpoint", v.last_good_checkpoint.to_string());
    fact(
        "newest witnessed checkpoint",
        v.witness_sequence.to_string(),
    );
    if !v.ok {
        fact("first broken sequence", v.first_broken_sequence.to_string());
    }
    for p in &v.problems {
        fact("problem", p.clone());
    }
    for n in &v.notes {
        fact("note", n.clone());
    }
    let mut checkpoints = Table::new(
        "Signed checkpoints (newest first)",
        &[
            "sequence",
            "time",
            "head hash",
            "signing key",
            "version",
            "algorithm",
            "signature",
        ],
    );
    for c in e.checkpoints.iter().rev() {
        checkpoints.row(vec![
            c.sequence.to_string(),
            e.time(c.time_ms),
            c.head_hash.clone(),
            c.key_name.clone(),
            c.key_version.to_string(),
            c.algorithm.clone(),
            hex::encode(&c.signature),
        ]);
    }
    let mut witnesses = Table::new("Witnesses (copies outside the database)", &["witness"]);
    for w in &e.witnesses {
        witnesses.row(vec![w.clone()]);
    }
    let (status, verdict) = if !v.ok {
        (
            Status::NotMet,
            format!(
                "the audit chain is broken at sequence {}: {}",
                v.first_broken_sequence, v.reason
            ),
        )
    } else if e.checkpoints.is_empty() {
        (
            Status::Partial,
            format!(
                "the hash chain holds ({} events checked), but no signed checkpoint anchors it, so a rewritten chain would not be detected",
                v.events_checked
            ),
        )
    } else {
        (
            Status::Met,
            format!(
                "the hash chain holds up to sequence {}; {}, the newest at sequence {}",
                v.head_sequence,
                count(
                    e.checkpoints.len(),
                    "signed checkpoint",
                    "signed checkpoints"
                ),
                e.checkpoints.last().map(|c| c.sequence).unwrap_or_default()
            ),
        )
    };
    section(
        "audit-integrity",
        "Tamper-evident audit trail (PCI DSS 10.5, SOC 2 CC7.2)",
        "Every use, access and change of a key is logged, and the log is protected so that an edit, a deletion or a rollback is detected.",
        status,
        verdict,
        vec![result, checkpoints, witnesses],
    )
}

pub(super) fn findings(e: &Evidence) -> Section {
    let mut open = Table::new(
        "Open findings",
        &[
            "id",
            "severity",
            "rule",
            "key",
            "opened",
            "acknowledged",
            "evidence",
        ],
    );
    for f in &e.open_findings {
        open.row(vec![
            f.id.to_string(),
            f.severity.clone(),
            f.rule.clone(),
            if f.key_name.is_empty() {
                f.provider_uri.clone()
            } else {
                f.key_name.clone()
            },
            e.time(f.opened_at_ms),
            f.acknowledgement
                .as_ref()
                .map(|a| format!("by {}: {}", a.by, a.reason))
                .unwrap_or_default(),
            f.evidence.clone(),
        ]);
    }
    let unaccepted_high = e
        .open_findings
        .iter()
        .filter(|f| f.severity == "high" && f.acknowledgement.is_none())
        .count();
    let (status, verdict) = if e.latest_scan.is_none() {
        (
            Status::NoEvidence,
            "no inventory scan has run, so nothing has been checked".to_string(),
        )
    } else if unaccepted_high > 0 {
        (
            Status::NotMet,
            format!(
                "{}, {unaccepted_high} of them high and not acknowledged",
                count(e.open_findings.len(), "open finding", "open findings")
            ),
        )
    } else if !e.open_findings.is_empty() {
        (
            Status::Partial,
            format!(
                "{}, none high and unacknowledged",
                count(e.open_findings.len(), "open finding", "open findings")
            ),
        )
    } else {
        (
            Status::Met,
            "the newest scan left no finding open".to_string(),
        )
    };
    section(
        "open-findings",
        "Open posture findings",
        "Keys that break a key-management rule (unmanaged, missing, past their crypto-period, without a known owner, destruction overdue) are found and either fixed or accepted with a reason.",
        status,
        verdict,
        vec![open],
    )
}
