//! What the writer knows of an outage of the store in progress, and the event that records
//! it once the store is writable again.

use crate::audit::event::{AuditRecord, Outcome};

/// Events of failed batches kept for the recovery commit, at most this many; beyond it they
/// are counted as lost in the recovery event.
const MAX_LATE: usize = 100_000;

pub(super) struct Outage {
    since_ms: i64,
    pub(super) failed_batches: u64,
    pub(super) last_error: String,
    /// Events whose batch failed to commit: calls that happened (or were refused) but whose
    /// callers got AUDIT_UNAVAILABLE. They are committed, in order, right after the recovery
    /// event.
    pub(super) late: Vec<AuditRecord>,
    lost: u64,
}

impl Outage {
    pub(super) fn new(error: String) -> Self {
        Self {
            since_ms: crate::time::now_ms(),
            failed_batches: 0,
            last_error: error,
            late: Vec::new(),
            lost: 0,
        }
    }

    /// A batch failed: to commit (its call events are `records`, kept for the recovery), or
    /// to become durable once committed (`records` empty: its events are in the chain).
    /// `counted` is false for the writer's own probes, which carry no call.
    pub(super) fn failed(&mut self, error: String, records: Vec<AuditRecord>, counted: bool) {
        self.failed_batches += u64::from(counted);
        self.last_error = error;
        for record in records {
            if self.late.len() < MAX_LATE {
                self.late.push(record);
            } else {
                self.lost += 1;
            }
        }
    }

    pub(super) fn record(&self, refused_calls: u64) -> AuditRecord {
        AuditRecord {
            time_ms: crate::time::now_ms(),
            source: "gateway".into(),
            actor: "keygate:audit-writer".into(),
            actor_kind: "system".into(),
            action: crate::policy::Action::AuditStoreRecovered.as_str().into(),
            outcome: Outcome::Ok.as_str().into(),
            reason: format!(
                "the audit store could not be written from {}; calls were refused meanwhile",
                crate::time::rfc3339(self.since_ms)
            ),
            policy: "system: audit store recovery".into(),
            details: serde_json::json!({
                "unwritable_since": crate::time::rfc3339(self.since_ms),
                "failed_batches": self.failed_batches,
                "refused_calls": refused_calls,
                "late_events": self.late.len(),
                "lost_events": self.lost,
                "last_error": self.last_error,
            })
            .to_string(),
            ..Default::default()
        }
    }
}
