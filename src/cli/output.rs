//! Tables for people, JSON or YAML for scripts (`--output`).

use crate::pb;
use serde_json::{Value, json};

/// How commands print what they show: the global `--output` / `-o`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and details, for people.
    #[default]
    Table,
    /// JSON: one value per record, or one per line for streams (audit query, tail).
    Json,
    /// YAML: one document per record, or per event for streams.
    Yaml,
}

/// A machine-readable format: what `Format` is when it is not `Table`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    Json,
    Yaml,
}

impl Format {
    /// The machine-readable format, or `None` for tables: `if let Some(data) = fmt.data()`.
    pub fn data(self) -> Option<Data> {
        match self {
            Format::Table => None,
            Format::Json => Some(Data::Json),
            Format::Yaml => Some(Data::Yaml),
        }
    }

    pub fn is_table(self) -> bool {
        self == Format::Table
    }
}

impl Data {
    /// Prints the value on stdout: as one JSON line, or as one YAML document (starting `---`,
    /// so a stream of them is a multi-document YAML stream, as a stream of JSON lines is
    /// JSON Lines).
    pub fn print(self, value: &Value) {
        self.write(std::io::stdout().lock(), value);
    }

    /// `print` to another stream (stderr where stdout carries data).
    pub fn write(self, mut w: impl std::io::Write, value: &Value) {
        // Written to the stream as it is made, not built as one string first: a value
        // may hold a data key's plaintext. Like `println!`, a closed stream ends the command.
        let written = match self {
            Data::Json => writeln!(w, "{value}"),
            Data::Yaml => w.write_all(b"---\n").and_then(|()| {
                // A serde_json::Value has only string keys and finite numbers, which YAML
                // always represents, so only the stream can fail here.
                serde_saphyr::to_io_writer(&mut w, value).map_err(std::io::Error::other)
            }),
        };
        if let Err(e) = written {
            panic!("failed printing to the output stream: {e}");
        }
    }
}

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
        "versions": k.versions.iter().map(|v| {
            let mut version = json!({"version": v.version, "created_at": v.created_at, "retired": v.retired});
            if k.usage_window.is_some() {
                version["uses"] = json!(v.uses);
                version["last_used_at"] = json!(v.last_used_at);
            }
            version
        }).collect::<Vec<_>>(),
        "retired_below": k.retired_below,
        "expires_at": k.expires_at,
        "usage_window_seconds": k.usage_window.as_ref().map(|d| d.seconds),
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
    if !k.expires_at.is_empty() {
        rows.push(("expires (TTL)", k.expires_at.clone()));
    }
    if k.retired_below > 0 {
        rows.push(("retired", format!("versions below {}", k.retired_below)));
    }
    let mut out: String = rows.iter().map(|(n, v)| format!("{n:<16} {v}\n")).collect();
    if let Some(window) = &k.usage_window {
        let window = crate::time::format_duration(std::time::Duration::from_secs(
            window.seconds.max(0) as u64,
        ));
        let rows: Vec<Vec<String>> = k
            .versions
            .iter()
            .map(|v| {
                vec![
                    v.version.to_string(),
                    v.created_at.clone(),
                    if v.retired { "retired" } else { "active" }.to_string(),
                    v.uses.to_string(),
                    if v.last_used_at.is_empty() {
                        "-".to_string()
                    } else {
                        v.last_used_at.clone()
                    },
                ]
            })
            .collect();
        out.push_str(&format!(
            "\nversion usage (decrypts, verifies, re-encryptions in the last {window}):\n"
        ));
        out.push_str(&table(
            &["VERSION", "CREATED", "STATE", "USES", "LAST USED"],
            &rows,
        ));
    }
    out
}

// --- approvals and policies (issue 13) ---

pub fn approval_json(a: &pb::Approval) -> Value {
    json!({
        "id": a.id,
        "state": a.state,
        "key_id": a.key_id,
        "key_name": a.key_name,
        "environment": a.environment,
        "action": a.action,
        "change": a.change,
        "change_json": a.change_json,
        "digest": a.digest,
        "requester": a.requester,
        "requested_in": a.requested_in,
        "quorum": a.quorum,
        "approvals": a.approvals.iter().map(|v| json!({"principal": v.principal, "time": v.time, "request_id": v.request_id})).collect::<Vec<_>>(),
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "closed_by": a.closed_by,
        "closed_at": a.closed_at,
        "outcome": a.outcome,
        "execution_request_id": a.execution_request_id,
    })
}

pub fn approval_details(a: &pb::Approval) -> String {
    let approvers: Vec<String> = a
        .approvals
        .iter()
        .map(|v| format!("{} ({})", v.principal, v.time))
        .collect();
    let mut rows = vec![
        ("id", a.id.clone()),
        ("state", a.state.clone()),
        ("key", format!("{} ({})", a.key_name, a.environment)),
        ("action", a.action.clone()),
        ("change", a.change.clone()),
        ("digest", a.digest.clone()),
        ("requester", a.requester.clone()),
        (
            "approvals",
            format!(
                "{} of {}: {}",
                a.approvals.len(),
                a.quorum,
                approvers.join(", ")
            ),
        ),
        ("created", a.created_at.clone()),
        ("expires", a.expires_at.clone()),
    ];
    for (name, value) in [
        ("closed by", &a.closed_by),
        ("closed", &a.closed_at),
        ("outcome", &a.outcome),
        ("executed as", &a.execution_request_id),
    ] {
        if !value.is_empty() {
            rows.push((name, value.clone()));
        }
    }
    rows.iter().map(|(n, v)| format!("{n:<12} {v}\n")).collect()
}

pub fn policy_status_json(s: &pb::PolicyStatus) -> Value {
    json!({
        "source": s.source,
        "policies": s.policies.iter().map(|p| json!({"id": p.id, "file": p.file, "rule": p.rule, "approval": p.approval})).collect::<Vec<_>>(),
        "loaded_at": s.loaded_at,
        "last_error": s.last_error,
        "last_error_at": s.last_error_at,
        "caches_decisions": s.caches_decisions,
    })
}

pub fn gateway_status_json(s: &pb::GatewayStatus) -> Value {
    json!({
        "version": s.version,
        "providers": s.providers.iter().map(|p| json!({"name": p.name, "default": p.default, "breaker": p.breaker})).collect::<Vec<_>>(),
        "policy": s.policy.as_ref().map(policy_status_json),
        "audit_writable": s.audit_writable,
        "checkpoint": {
            "sequence": s.checkpoint_sequence,
            "head_hash": s.checkpoint_head_hash,
            "at": s.checkpoint_at,
        },
    })
}

pub fn explanation_json(e: &pb::PolicyExplanation) -> Value {
    json!({
        "principal": e.principal,
        "action": e.action,
        "key": e.key,
        "decision": e.decision,
        "reason": e.reason,
        "policies": e.policies,
        "errors": e.errors,
    })
}

pub fn explanation_details(e: &pb::PolicyExplanation) -> String {
    let on = if e.key.is_empty() {
        String::new()
    } else {
        format!(" on {}", e.key)
    };
    let mut out = format!("{} {}{}: {}\n", e.principal, e.action, on, e.decision);
    if !e.reason.is_empty() {
        out.push_str(&format!("reason: {}\n", e.reason));
    }
    if e.policies.is_empty() {
        out.push_str("decided by: no policy (default deny)\n");
    } else {
        out.push_str("decided by:\n");
        for id in &e.policies {
            match e.deciding.iter().find(|p| &p.id == id) {
                Some(p) if !p.file.is_empty() => {
                    out.push_str(&format!("  {id}  ({})\n", p.file));
                }
                _ => out.push_str(&format!("  {id}\n")),
            }
        }
    }
    for error in &e.errors {
        out.push_str(&format!("error: {error}\n"));
    }
    out
}

pub fn destruction_json(r: &pb::DestructionRecord) -> Value {
    json!({
        "id": r.id,
        "key_id": r.key_id,
        "key_name": r.key_name,
        "environment": r.environment,
        "provider": r.provider,
        "provider_uri": r.provider_uri,
        "requested_by": r.requested_by,
        "approval_id": r.approval_id,
        "approved_by": r.approved_by,
        "window_seconds": r.window_seconds,
        "scheduled_at": r.scheduled_at,
        "destruction_at": r.destruction_at,
        "state": r.state,
        "cancelled_by": r.cancelled_by,
        "cancelled_at": r.cancelled_at,
        "destroyed_at": r.destroyed_at,
        "destroy_request_id": r.destroy_request_id,
        "versions": r.versions,
        "method": r.method,
        "checklist": r.checklist.iter().map(|c| json!({"check": c.check, "result": c.result})).collect::<Vec<_>>(),
        "copies": r.copies.iter().map(|c| json!({
            "key_id": c.key_id,
            "key_name": c.key_name,
            "provider": c.provider,
            "provider_kind": c.provider_kind,
            "provider_uri": c.provider_uri,
            "import_method": c.import_method,
            "method": c.method,
        })).collect::<Vec<_>>(),
    })
}
