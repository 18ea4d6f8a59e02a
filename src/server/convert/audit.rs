//! The audit feed.

use crate::audit::ingest::FeedStatus;
use crate::audit::store::Checkpoint;
use crate::audit::{AuditEvent, AuditFilter, JobStatus, VerifyReport};
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
        key_uri: r.key_uri.clone(),
        linked_sequence: e
            .link
            .as_ref()
            .and_then(|l| l.gateway_sequence)
            .unwrap_or(0),
        bypass: e.link.as_ref().is_some_and(|l| l.bypass),
        feed: e.link.as_ref().map(|l| l.feed.clone()).unwrap_or_default(),
        linked: Vec::new(),
    }
}

fn filter_of(r: &pb::AuditQueryRequest) -> AuditFilter {
    AuditFilter {
        start_ms: r.start_time.as_ref().map(crate::time::from_timestamp),
        end_ms: r.end_time.as_ref().map(crate::time::from_timestamp),
        key: some(r.key.clone()),
        key_id: None,
        actor: some(r.actor.clone()),
        action: some(r.action.clone()),
        outcome: some(r.outcome.clone()),
        request_id: some(r.request_id.clone()),
        source: some(r.source.clone()),
        bypass: r.bypass,
        contains: some(r.contains.clone()),
        after_sequence: (r.after_sequence > 0).then_some(r.after_sequence),
        newest_first: r.newest_first,
    }
}

impl From<pb::AuditQueryRequest> for ops::AuditQuery {
    fn from(r: pb::AuditQueryRequest) -> Self {
        ops::AuditQuery {
            filter: filter_of(&r),
            page_size: r.page_size,
            page_token: r.page_token,
            with_linked: r.include_linked,
        }
    }
}

impl From<ops::AuditPage> for pb::AuditQueryResponse {
    fn from(mut p: ops::AuditPage) -> Self {
        pb::AuditQueryResponse {
            events: p
                .events
                .iter()
                .map(|e| {
                    let mut out = event_to_pb(e);
                    if let Some(linked) = p.linked.remove(&e.sequence) {
                        out.linked = linked.iter().map(event_to_pb).collect();
                    }
                    out
                })
                .collect(),
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
                source: some(r.source),
                request_id: some(r.request_id),
                bypass: r.bypass,
                ..Default::default()
            },
        }
    }
}

impl From<pb::AuditExportRequest> for ops::AuditExport {
    fn from(r: pb::AuditExportRequest) -> Self {
        let format = match pb::audit_export_request::Format::try_from(r.format) {
            Ok(pb::audit_export_request::Format::Ocsf) => ops::ExportFormat::Ocsf,
            _ => ops::ExportFormat::JsonLines,
        };
        ops::AuditExport {
            filter: r.filter.as_ref().map(filter_of).unwrap_or_default(),
            format,
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
            mode: report.mode.as_str().into(),
            head_sequence: report.head_sequence,
            checkpoints_checked: report.checkpoints_checked,
            last_good_checkpoint: report.last_good_checkpoint,
            witness_sequence: report.witness_sequence,
            verified_from: report.verified_from,
            problems: report.problems,
            notes: report.notes,
        }
    }
}

impl From<JobStatus> for pb::VerificationJob {
    fn from(s: JobStatus) -> Self {
        pb::VerificationJob {
            job: s.id,
            done: s.finished_ms > 0,
            events_checked: s.events_checked,
            events_total: s.events_total,
            report: s.report.map(Into::into),
            error: s.error,
            started: Some(crate::time::to_timestamp(s.started_ms)),
            finished: (s.finished_ms > 0).then(|| crate::time::to_timestamp(s.finished_ms)),
        }
    }
}

pub fn checkpoint_to_pb(c: &Checkpoint) -> pb::AuditCheckpoint {
    pb::AuditCheckpoint {
        sequence: c.sequence,
        head_hash: c.head_hash.clone(),
        time: Some(crate::time::to_timestamp(c.time_ms)),
        previous_digest: c.previous_digest.clone(),
        key_id: c.key_id.clone(),
        key_name: c.key_name.clone(),
        key_version: c.key_version,
        algorithm: c.algorithm.clone(),
        public_key: c.public_key.clone(),
        signature: c.signature.clone(),
    }
}

impl From<ops::Checkpoints> for pb::ListCheckpointsResponse {
    fn from(c: ops::Checkpoints) -> Self {
        pb::ListCheckpointsResponse {
            checkpoints: c.checkpoints.iter().map(checkpoint_to_pb).collect(),
            witnesses: c.witnesses,
        }
    }
}

pub fn ingester_to_pb(f: FeedStatus) -> pb::AuditIngester {
    pb::AuditIngester {
        name: f.name,
        source: f.format,
        input: f.input,
        ingested: f.counters.ingested,
        linked: f.counters.linked,
        bypass: f.counters.bypass,
        ignored: f.counters.ignored,
        duplicates: f.counters.duplicates,
        malformed: f.counters.malformed,
        last_malformed: f.last_malformed,
        position: f.position,
        updated: (f.updated_ms > 0).then(|| crate::time::to_timestamp(f.updated_ms)),
    }
}
