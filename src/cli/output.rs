//! Tables for people, JSON for scripts.

use crate::pb;
use serde_json::{Value, json};

pub fn key_json(k: &pb::Key) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "owner": k.owner,
        "purpose": k.purpose,
        "environment": k.environment,
        "algorithm": k.algorithm,
        "provider": k.provider,
        "provider_uri": k.provider_uri,
        "state": k.state,
        "primary_version": k.primary_version,
        "versions": k.versions.iter().map(|v| json!({"version": v.version, "created_at": v.created_at})).collect::<Vec<_>>(),
        "crypto_period_seconds": k.crypto_period.as_ref().map(|d| d.seconds).unwrap_or_default(),
        "created_at": k.created_at,
        "rotation_due_at": k.rotation_due_at,
        "destruction_at": k.destruction_at,
        "labels": k.labels,
    })
}

pub fn event_json(e: &pb::AuditEvent) -> Value {
    json!({
        "sequence": e.sequence,
        "time": e.time.as_ref().map(|t| crate::time::rfc3339(crate::time::from_timestamp(t))).unwrap_or_default(),
        "source": e.source,
        "actor": e.actor,
        "actor_kind": e.actor_kind,
        "action": e.action,
        "key_id": e.key_id,
        "key_name": e.key_name,
        "key_version": e.key_version,
        "outcome": e.outcome,
        "reason": e.reason,
        "error_reason": e.error_reason,
        "caller_gone": e.caller_gone,
        "policy": e.policy,
        "request_id": e.request_id,
        "provider_request_id": e.provider_request_id,
        "client_address": e.client_address,
        "details": e.details,
        "key_uri": e.key_uri,
        "linked_sequence": (e.linked_sequence > 0).then_some(e.linked_sequence),
        "bypass": e.bypass,
        "feed": (!e.feed.is_empty()).then_some(&e.feed),
        "format": e.format,
        "previous_hash": e.previous_hash,
        "hash": e.hash,
        "linked": e.linked.iter().map(event_json).collect::<Vec<_>>(),
    })
}

/// A plain left-aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<width$}", c, width = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

pub fn key_details(k: &pb::Key) -> String {
    let period = k
        .crypto_period
        .as_ref()
        .map(|d| {
            crate::time::format_duration(std::time::Duration::from_secs(d.seconds.max(0) as u64))
        })
        .unwrap_or_default();
    let mut rows = vec![
        ("name", k.name.clone()),
        ("id", k.id.clone()),
        ("owner", k.owner.clone()),
        ("purpose", k.purpose.clone()),
        ("algorithm", k.algorithm.clone()),
        ("environment", k.environment.clone()),
        ("state", k.state.clone()),
        ("provider", format!("{} ({})", k.provider, k.provider_uri)),
        ("primary version", k.primary_version.to_string()),
        ("versions", k.versions.len().to_string()),
        ("crypto-period", period),
        ("created", k.created_at.clone()),
        ("rotation due", k.rotation_due_at.clone()),
    ];
    if !k.destruction_at.is_empty() {
        rows.push(("destruction at", k.destruction_at.clone()));
    }
    rows.iter().map(|(n, v)| format!("{n:<16} {v}\n")).collect()
}
