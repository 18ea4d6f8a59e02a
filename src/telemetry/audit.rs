//! The audit writer's own figures: how many events each group commit carries, how long the
//! commit takes, how many calls wait behind it. They say whether calls wait on the disk
//! (long commits, deep queue) or the writer is idle (batches of one).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Cheap to clone: every clone updates the same series. A value never registered (tools,
/// tests) counts into nothing anyone reads.
#[derive(Clone)]
pub struct AuditWriterMetrics {
    batch_events: Histogram,
    commit_seconds: Histogram,
    queue_depth: Gauge,
    commit_failures: Counter,
}

impl Default for AuditWriterMetrics {
    fn default() -> Self {
        Self {
            // 1 to 1024 events: a commit holds at most `MAX_ROWS`.
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 0.1 ms to about 1.6 s.
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            queue_depth: Gauge::default(),
            commit_failures: Counter::default(),
        }
    }
}

impl AuditWriterMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "audit_commit_events",
            "Events per audit group commit",
            self.batch_events.clone(),
        );
        registry.register(
            "audit_commit_duration_seconds",
            "Time an audit group commit takes, durable on disk at its end",
            self.commit_seconds.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Appends waiting for the audit writer when it took its last batch",
            self.queue_depth.clone(),
        );
        registry.register(
            "audit_commit_failures",
            "Audit group commits that failed (the gateway refuses calls until one succeeds)",
            self.commit_failures.clone(),
        );
    }

    /// A batch taken, with `waiting` appends left behind it in the queue.
    pub fn taken(&self, waiting: usize) {
        self.queue_depth
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        if let Some(otel) = super::otlp::instruments() {
            otel.audit_queue_depth
                .record(u64::try_from(waiting).unwrap_or(u64::MAX), &[]);
        }
    }

    /// A commit of `events` events that took `elapsed`, and whether it succeeded.
    pub fn committed(&self, events: usize, elapsed: Duration, ok: bool) {
        if ok {
            self.batch_events.observe(events as f64);
            self.commit_seconds.observe(elapsed.as_secs_f64());
            if let Some(otel) = super::otlp::instruments() {
                otel.audit_batch_size
                    .record(u64::try_from(events).unwrap_or(u64::MAX), &[]);
                otel.audit_commit_duration
                    .record(elapsed.as_secs_f64(), &[]);
            }
        } else {
            self.commit_failures.inc();
        }
    }
}
