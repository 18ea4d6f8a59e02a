//! keygate's own JSON form of an event (JSON Lines export, `--json` output).

use super::event::AuditEvent;
use serde_json::{Value, json};

pub fn json(e: &AuditEvent) -> Value {
    let r = &e.record;
    json!({
        "sequence": e.sequence,
        "time": crate::time::rfc3339(r.time_ms),
        "source": r.source,
        "actor": r.actor,
        "actor_kind": r.actor_kind,
        "action": r.action,
        "key_id": r.key_id,
        "key_name": r.key_name,
        "key_version": r.key_version,
        "key_uri": r.key_uri,
        "outcome": r.outcome,
        "reason": r.reason,
        "error_reason": r.error_reason,
        "caller_gone": r.caller_gone,
        "policy": r.policy,
        "request_id": r.request_id,
        "provider_request_id": r.provider_request_id,
        "client_address": r.client_address,
        "details": r.details,
        "linked_sequence": e.link.as_ref().and_then(|l| l.gateway_sequence),
        "bypass": e.link.as_ref().is_some_and(|l| l.bypass),
        "feed": e.link.as_ref().map(|l| l.feed.clone()),
        "format": e.format,
        "previous_hash": e.previous_hash,
        "hash": e.hash,
    })
}
