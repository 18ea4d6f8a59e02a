//! The single writer: batches queued appends into one INSERT, then acknowledges them.
//!
//! When a batch cannot be committed the log is marked not writable ([`Health`]): the gateway
//! then refuses new calls and reports NOT_SERVING. The writer keeps trying, with each batch
//! and on its own every [`PROBE_INTERVAL`] while idle; the first commit that succeeds carries
//! an `AuditStoreRecovered` event recording the gap, and the log is writable again.

use super::checkpoint::{self, CatchUp};
use super::event::{AuditEvent, AuditRecord, GENESIS_HASH, Outcome};
use super::{Ack, store};
use sqlx::SqliteConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// Calls committed together at most (one INSERT; see `store::MAX_ROWS`).
const MAX_BATCH: usize = store::MAX_ROWS;

/// How often an idle writer retries a store that failed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// What the writer reports: whether the last commit succeeded (for the gateway and the
/// health service), and how many calls the gateway refused meanwhile.
pub struct Health {
    pub writable: watch::Sender<bool>,
    pub refused: Arc<AtomicU64>,
}

/// Events of failed batches kept for the recovery commit, at most this many; beyond it they
/// are counted as lost in the recovery event.
const MAX_LATE: usize = 100_000;

/// What the writer knows of an outage in progress.
struct Outage {
    since_ms: i64,
    failed_batches: u64,
    last_error: String,
    /// Events whose batch failed: calls that happened (or were refused) but whose callers got
    /// AUDIT_UNAVAILABLE. They are committed, in order, right after the recovery event.
    late: Vec<AuditRecord>,
    lost: u64,
}

impl Outage {
    fn keep(&mut self, records: impl Iterator<Item = AuditRecord>) {
        for record in records {
            if self.late.len() < MAX_LATE {
                self.late.push(record);
            } else {
                self.lost += 1;
            }
        }
    }

    fn record(&self, refused_calls: u64) -> AuditRecord {
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

pub async fn run(
    mut conn: SqliteConnection,
    head: Option<(u64, String)>,
    mut rx: mpsc::Receiver<(AuditRecord, Ack)>,
    live: broadcast::Sender<Arc<AuditEvent>>,
    catch_up: CatchUp,
    health: Health,
) {
    let (mut sequence, mut previous) = head.unwrap_or((0, GENESIS_HASH.to_string()));
    let mut batch: Vec<(AuditRecord, Ack)> = Vec::with_capacity(MAX_BATCH);
    let mut outage: Option<Outage> = None;
    loop {
        let received = if outage.is_some() {
            // None when idle: probe with the recovery event alone.
            tokio::time::timeout(PROBE_INTERVAL, rx.recv_many(&mut batch, MAX_BATCH))
                .await
                .ok()
        } else {
            Some(rx.recv_many(&mut batch, MAX_BATCH).await)
        };
        if received == Some(0) {
            return; // every sender is gone: the gateway is shutting down
        }
        let mut events = Vec::with_capacity(batch.len() + 1);
        let mut acks = Vec::with_capacity(batch.len());
        let mut seq = sequence;
        let mut prev = previous.clone();
        let mut seal = |record: AuditRecord| {
            seq += 1;
            let event = AuditEvent::seal(seq, std::mem::take(&mut prev), record);
            prev = event.hash.clone();
            event
        };
        let refused = health.refused.load(Ordering::Relaxed);
        let mut late = 0;
        if let Some(o) = &outage {
            events.push(seal(o.record(refused)));
            late = o.late.len();
            for record in &o.late {
                events.push(seal(record.clone()));
            }
        }
        for (record, ack) in batch.drain(..) {
            events.push(seal(record));
            acks.push(ack);
        }
        match store::insert_batch(&mut conn, &events).await {
            Ok(()) => {
                sequence = seq;
                previous = prev;
                if outage.take().is_some() {
                    tracing::warn!(
                        late_events = late,
                        "the audit store is writable again; accepting calls"
                    );
                    health.refused.fetch_sub(refused, Ordering::Relaxed);
                    health.writable.send_replace(true);
                }
                let mut acks = acks.into_iter();
                let skip = events.len() - acks.len();
                for (i, event) in events.into_iter().enumerate() {
                    if i >= skip
                        && let Some(ack) = acks.next()
                    {
                        let _ = ack.send(Ok(event.sequence));
                    }
                    // No subscribers is normal; a lagging one skips ahead.
                    let _ = live.send(Arc::new(event));
                }
            }
            Err(e) => {
                // Nothing was written: the chain continues from the old head, and this
                // batch's events wait for the recovery commit.
                let reason = e.to_string();
                let fresh = events.len() - acks.len();
                let records = events.into_iter().skip(fresh).map(|event| event.record);
                match &mut outage {
                    Some(o) => {
                        o.failed_batches += u64::from(!acks.is_empty());
                        o.last_error = reason.clone();
                        o.keep(records);
                    }
                    None => {
                        tracing::error!(error = %e, rows = acks.len(), "audit append failed; refusing calls until the store is writable");
                        let mut o = Outage {
                            since_ms: crate::time::now_ms(),
                            failed_batches: 1,
                            last_error: reason.clone(),
                            late: Vec::new(),
                            lost: 0,
                        };
                        o.keep(records);
                        outage = Some(o);
                        health.writable.send_replace(false);
                    }
                }
                for ack in acks {
                    let _ = ack.send(Err(reason.clone()));
                }
            }
        }
        // Between batches, after the replies went out: copy the few frames the background
        // checkpoint left, so the next commit can restart the WAL (see `checkpoint`).
        if catch_up.take()
            && let Err(e) = checkpoint::passive(&mut conn).await
        {
            tracing::warn!(error = %e, "WAL catch-up checkpoint failed");
        }
    }
}
