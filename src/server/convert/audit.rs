//! The audit feed.

use crate::audit::{AuditEvent, AuditFilter, VerifyReport};
use crate::gateway::ops;
use crate::pb;

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub fn event_to_pb(e: &AuditEvent) -> pb::AuditEvent {
    let r = &e.record;
    pb::AuditEvent {
        sequence: e.sequence,
        time: Some(crate::time::to_timestamp(r.time_ms)),
        source: r.source.clone(),
        actor: r.actor.clone(),
        action: r.action.clone(),
        key_id: r.key_id.clone(),
        key_name: r.key_name.clone(),
        key_version: r.key_version,
        outcome: r.outcome.clone(),
        reason: r.reason.clone(),
        policy: r.policy.clone(),
        request_id: r.request_id.clone(),
        provider_request_id: r.provider_request_id.clone(),
        client_address: r.client_address.clone(),
        details: r.details.clone(),
        previous_hash: e.previous_hash.clone(),
        hash: e.hash.clone(),
        actor_kind: r.actor_kind.clone(),
        error_reason: r.error_reason.clone(),
        caller_gone: r.caller_gone,
        format: u32::from(e.format),
    }
}

impl From<pb::AuditQueryRequest> for ops::AuditQuery {
    fn from(r: pb::AuditQueryRequest) -> Self {
        ops::AuditQuery {
            filter: AuditFilter {
                start_ms: r.start_time.as_ref().map(crate::time::from_timestamp),
                end_ms: r.end_time.as_ref().map(crate::time::from_timestamp),
                key: some(r.key),
                actor: some(r.actor),
                action: some(r.action),
                outcome: some(r.outcome),
                request_id: some(r.request_id),
                source: some(r.source),
            },
            page_size: r.page_size,
            page_token: r.page_token,
        }
    }
}

impl From<ops::AuditPage> for pb::AuditQueryResponse {
    fn from(p: ops::AuditPage) -> Self {
        pb::AuditQueryResponse {
            events: p.events.iter().map(event_to_pb).collect(),
            next_page_token: p.next_page_token,
        }
    }
}

impl From<pb::AuditTailRequest> for ops::AuditTail {
    fn from(r: pb::AuditTailRequest) -> Self {
        ops::AuditTail {
            filter: AuditFilter {
                key: some(r.key),
                actor: some(r.actor),
                action: some(r.action),
                outcome: some(r.outcome),
                ..Default::default()
            },
        }
    }
}

impl From<VerifyReport> for pb::AuditVerifyResponse {
    fn from(report: VerifyReport) -> Self {
        pb::AuditVerifyResponse {
            ok: report.ok,
            events_checked: report.events_checked,
            first_broken_sequence: report.first_broken_sequence,
            reason: report.reason,
            head_hash: report.head_hash,
        }
    }
}
