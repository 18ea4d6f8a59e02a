//! The single writer: batches queued appends into one INSERT, then acknowledges them.
//!
//! Besides the calls' events ([`Job::Event`]), the writer takes [`Job::Batch`]es: records that
//! commit together with rows beside the chain (an ingester's records with its cursor, a
//! checkpoint, a retention step), all in one transaction. Every write to the audit tables goes
//! through here, so nothing contends with the writer for the database.
//!
//! When a batch cannot be committed the log is marked not writable ([`Health`]): the gateway
//! then refuses new calls and reports NOT_SERVING. The writer keeps trying, with each batch
//! and on its own every [`PROBE_INTERVAL`] while idle; the first commit that succeeds carries
//! an `AuditStoreRecovered` event recording the gap, and the log is writable again.

use super::event::{AuditEvent, AuditRecord, GENESIS_HASH, Link, Outcome};
use super::store::{self, IngestedRow, SideRows, StoreWriter, WriteResult};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Jobs committed together at most (one INSERT for calls' events).
const MAX_BATCH: usize = store::sql::MAX_ROWS;

/// How long the writer waits idle before checking that the store is still there.
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// How often an idle writer retries a store that failed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

pub type Ack = oneshot::Sender<Result<u64, String>>;
pub type BatchAck = oneshot::Sender<Result<Vec<u64>, String>>;

/// What the writer is asked to do.
// The large variant is the calls' (one per call): boxing it would allocate on the hot path.
#[allow(clippy::large_enum_variant)]
pub enum Job {
    /// One call's event; acknowledged with its sequence once durable.
    Event(AuditRecord, Ack),
    /// Records and rows beside the chain, all or nothing; acknowledged with the records'
    /// sequences.
    Batch(Batch, BatchAck),
}

/// Records (each with what an ingester knows of it, if it brought it in) and rows beside the
/// chain. The writer adds the request id index rows and the ingested rows itself.
#[derive(Default)]
pub struct Batch {
    pub records: Vec<(AuditRecord, Option<IngestedRow>)>,
    pub side: SideRows,
}

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
    fn begin(reason: String) -> Self {
        Self {
            since_ms: crate::time::now_ms(),
            failed_batches: 0,
            last_error: reason,
            late: Vec::new(),
            lost: 0,
        }
    }

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

/// Where committed events go for the live feed (`Tail`).
pub enum Live {
    /// Straight to the subscribers: this writer is the log's only one.
    Direct(broadcast::Sender<Arc<AuditEvent>>),
    /// Replicas share the log: the follower ([`super::follow`]) reads every replica's events
    /// back in chain order; this writer only wakes it after each commit.
    Wake(Arc<tokio::sync::Notify>),
}

/// Who waits for which of a batch's events.
enum Waiting {
    One(Ack),
    Many(BatchAck, std::ops::Range<usize>),
}

/// Starts the writer: as a task, or on a thread of its own when its store's commits block
/// ([`StoreWriter::blocking`]), so a commit's fsync never holds one of the runtime's workers
/// while calls wait to be polled.
pub fn spawn(
    store: Box<dyn StoreWriter>,
    head: Option<(u64, String)>,
    rx: mpsc::Receiver<Job>,
    live: Live,
    health: Health,
    metrics: crate::telemetry::AuditWriterMetrics,
) -> WriteResult<()> {
    if !store.blocking() {
        tokio::spawn(run(store, head, rx, live, health, metrics));
        return Ok(());
    }
    // A runtime of its own on the thread: for the timers and the channels, which work across
    // runtimes; the calls it acknowledges are woken on theirs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("keygate-audit-writer".into())
        .spawn(move || runtime.block_on(run(store, head, rx, live, health, metrics)))?;
    Ok(())
}

pub async fn run(
    mut store: Box<dyn StoreWriter>,
    head: Option<(u64, String)>,
    mut rx: mpsc::Receiver<Job>,
    live: Live,
    health: Health,
    metrics: crate::telemetry::AuditWriterMetrics,
) {
    let (mut sequence, mut previous) = head.unwrap_or((0, GENESIS_HASH.to_string()));
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut outage: Option<Outage> = None;
    loop {
        let received = if outage.is_some() {
            // None when idle: probe with the recovery event alone.
            tokio::time::timeout(PROBE_INTERVAL, rx.recv_many(&mut jobs, MAX_BATCH))
                .await
                .ok()
        } else {
            match tokio::time::timeout(IDLE_CHECK, rx.recv_many(&mut jobs, MAX_BATCH)).await {
                Ok(n) => Some(n),
                Err(_) => {
                    // Idle: a store that can be lost without a write noticing (a database
                    // server) is checked, so health says NOT_SERVING before a call fails.
                    if let Err(e) = store.check().await {
                        tracing::error!(error = %e, "the audit store cannot be reached; refusing calls until it can");
                        outage = Some(Outage::begin(e.to_string()));
                        health.writable.send_replace(false);
                    }
                    continue;
                }
            }
        };
        if received == Some(0) {
            return; // every sender is gone: the gateway is shutting down
        }
        metrics.taken(rx.len());
        let mut events = Vec::with_capacity(jobs.len() + 1);
        let mut waiting = Vec::with_capacity(jobs.len());
        let mut side = SideRows::default();
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
        for job in jobs.drain(..) {
            match job {
                Job::Event(record, ack) => {
                    events.push(seal(record));
                    waiting.push(Waiting::One(ack));
                }
                Job::Batch(batch, ack) => {
                    let start = events.len();
                    for (record, ingested) in batch.records {
                        let mut event = seal(record);
                        if let Some(row) = ingested {
                            event.link = Some(Link {
                                feed: row.feed.clone(),
                                gateway_sequence: row.gateway_sequence,
                                bypass: row.bypass,
                            });
                            side.ingested.push((event.sequence, row));
                        }
                        events.push(event);
                    }
                    merge(&mut side, batch.side);
                    waiting.push(Waiting::Many(ack, start..events.len()));
                }
            }
        }
        store::provider_request_id_rows(&events, &mut side.provider_request_ids);
        let started = std::time::Instant::now();
        let committed = store.commit(&mut events, &mut side).await;
        metrics.committed(events.len(), started.elapsed(), committed.is_ok());
        match committed {
            Ok(()) => {
                // Where the store put them: after another replica's events, if it appended
                // since (`store::reseal`).
                if let Some(last) = events.last() {
                    sequence = last.sequence;
                    previous = last.hash.clone();
                }
                if outage.take().is_some() {
                    tracing::warn!(
                        late_events = late,
                        "the audit store is writable again; accepting calls"
                    );
                    health.refused.fetch_sub(refused, Ordering::Relaxed);
                    health.writable.send_replace(true);
                }
                // Positions of the waiting jobs' events: after the recovery and late events.
                let skip = events.len() - count(&waiting);
                let mut at = skip;
                for w in waiting {
                    match w {
                        Waiting::One(ack) => {
                            let _ = ack.send(Ok(events[at].sequence));
                            at += 1;
                        }
                        Waiting::Many(ack, range) => {
                            let _ = ack.send(Ok(events[range.clone()]
                                .iter()
                                .map(|e| e.sequence)
                                .collect()));
                            at += range.len();
                        }
                    }
                }
                match &live {
                    // Nobody tails the log most of the time: then no event is shared.
                    Live::Direct(subscribers) if subscribers.receiver_count() == 0 => {}
                    Live::Direct(subscribers) => {
                        for event in events {
                            // No subscribers is normal; a lagging one skips ahead.
                            let _ = subscribers.send(Arc::new(event));
                        }
                    }
                    Live::Wake(follower) => follower.notify_one(),
                }
            }
            Err(e) => {
                // Nothing was written: the chain continues from the old head. Calls' events
                // wait for the recovery commit; batches are retried by whoever sent them.
                let reason = e.to_string();
                let fresh = events.len() - count(&waiting);
                let mut events = events.into_iter().skip(fresh);
                let mut calls = Vec::new();
                let mut acks = Vec::new();
                for w in waiting {
                    match w {
                        Waiting::One(ack) => {
                            calls.extend(events.next().map(|e| e.record));
                            acks.push(Waiting::One(ack));
                        }
                        Waiting::Many(ack, range) => {
                            for _ in range.clone() {
                                events.next();
                            }
                            acks.push(Waiting::Many(ack, range));
                        }
                    }
                }
                match &mut outage {
                    Some(o) => {
                        o.failed_batches += u64::from(!calls.is_empty());
                        o.last_error = reason.clone();
                        o.keep(calls.into_iter());
                    }
                    None => {
                        tracing::error!(error = %e, rows = calls.len(), "audit append failed; refusing calls until the store is writable");
                        let mut o = Outage::begin(reason.clone());
                        o.failed_batches = 1;
                        o.keep(calls.into_iter());
                        outage = Some(o);
                        health.writable.send_replace(false);
                    }
                }
                for w in acks {
                    match w {
                        Waiting::One(ack) => {
                            let _ = ack.send(Err(reason.clone()));
                        }
                        Waiting::Many(ack, _) => {
                            let _ = ack.send(Err(reason.clone()));
                        }
                    }
                }
            }
        }
        store.between_batches().await;
    }
}

/// Events the waiting jobs account for.
fn count(waiting: &[Waiting]) -> usize {
    waiting
        .iter()
        .map(|w| match w {
            Waiting::One(_) => 1,
            Waiting::Many(_, range) => range.len(),
        })
        .sum()
}

fn merge(into: &mut SideRows, from: SideRows) {
    into.provider_request_ids.extend(from.provider_request_ids);
    into.ingested.extend(from.ingested);
    into.cursors.extend(from.cursors);
    into.checkpoints.extend(from.checkpoints);
    into.witnessed.extend(from.witnessed);
    into.state.extend(from.state);
    if from.prune.is_some() {
        into.prune = from.prune;
    }
}
