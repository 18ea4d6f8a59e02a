//! The single writer: batches queued appends into one INSERT, then acknowledges them once
//! durable.
//!
//! Besides the calls' events ([`Job::Event`]), the writer takes [`Job::Batch`]es: records that
//! commit together with rows beside the chain (an ingester's records with its cursor, a
//! checkpoint, a retention step), all in one transaction. Every write to the audit tables goes
//! through here, so nothing contends with the writer for the database.
//!
//! Committing and becoming durable are two steps ([`StoreWriter::commit`] returns a
//! [`Durable`](super::store::Durable)): this task seals and commits batch after batch, and
//! [`settle`] waits for each one's flush and then acknowledges it, so the next batch is written
//! while the last one is still on its way to the disk. No call is acknowledged before its event
//! is durable.
//!
//! When a batch cannot be committed (or flushed) the log is marked not writable ([`Health`]):
//! the gateway then refuses new calls and reports NOT_SERVING. The writer keeps trying, with
//! each batch and on its own every [`PROBE_INTERVAL`] while idle; the first batch that is
//! committed and durable carries an `AuditStoreRecovered` event recording the gap, and the log
//! is writable again.

mod outage;
mod settle;

use super::event::{AuditEvent, AuditRecord, GENESIS_HASH, Link};
use super::store::{self, IngestedRow, SideRows, StoreWriter};
use outage::Outage;
use settle::{Committed, Waiting};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Jobs committed together at most (one INSERT for calls' events).
const MAX_BATCH: usize = store::sqlite::MAX_ROWS;

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

pub async fn run(
    mut store: Box<dyn StoreWriter>,
    head: Option<(u64, String)>,
    mut rx: mpsc::Receiver<Job>,
    live: broadcast::Sender<Arc<AuditEvent>>,
    health: Health,
    metrics: crate::telemetry::AuditWriterMetrics,
) {
    let (mut sequence, mut previous) = head.unwrap_or((0, GENESIS_HASH.to_string()));
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut outage: Option<Outage> = None;
    // Flushes that failed, from the settler: the writer begins an outage at once, since the
    // gateway refuses calls from then on and no job may come to wake it.
    let (failed, mut failures) = mpsc::unbounded_channel();
    let (settle_tx, settle_rx) = mpsc::channel(settle::MAX_IN_FLIGHT);
    let settler = tokio::spawn(settle::run(settle_rx, live, metrics.clone(), failed));
    loop {
        let probing = outage.is_some();
        let received = tokio::select! {
            biased;
            Some(reason) = failures.recv() => {
                outage_begins(&mut outage, &health, reason, Vec::new(), true);
                continue;
            }
            // Cancel safe: when the other branch wins, nothing was taken from the queue.
            received = next_jobs(&mut rx, &mut jobs, probing) => received,
        };
        if received == Some(0) {
            break; // every sender is gone: the gateway is shutting down
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
        match store.commit(&events, &side).await {
            Ok(durable) => {
                // In the chain from now on, whatever becomes of the flush.
                sequence = seq;
                previous = prev;
                let mut batch = Committed::new(durable, started, events, waiting);
                if outage.is_some() {
                    // The outage ends only with a batch on the disk: wait for this one here.
                    match batch.flushed().await {
                        Ok(()) => {
                            outage = None;
                            tracing::warn!(
                                late_events = late,
                                "the audit store is writable again; accepting calls"
                            );
                            health.refused.fetch_sub(refused, Ordering::Relaxed);
                            health.writable.send_replace(true);
                        }
                        Err(reason) => {
                            // Its late events are in the chain now; the next recovery event
                            // counts this failure.
                            if let Some(o) = &mut outage {
                                o.late.clear();
                            }
                            outage_begins(&mut outage, &health, reason, Vec::new(), true);
                        }
                    }
                }
                if settle_tx.send(batch).await.is_err() {
                    break; // the settler is gone: only at shutdown
                }
            }
            Err(e) => {
                // Nothing was written: the chain continues from the old head. Calls' events
                // wait for the recovery commit; batches are retried by whoever sent them.
                let reason = e.to_string();
                metrics.committed(events.len(), started.elapsed(), false);
                let fresh = events.len() - settle::count(&waiting);
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
                if outage.is_none() {
                    tracing::error!(error = %e, rows = calls.len(), "audit append failed; refusing calls until the store is writable");
                }
                let counted = outage.is_none() || !calls.is_empty();
                outage_begins(&mut outage, &health, reason.clone(), calls, counted);
                for w in acks {
                    w.fail(&reason);
                }
            }
        }
        store.between_batches().await;
    }
    // Every batch committed is acknowledged before the writer is done.
    drop(settle_tx);
    let _ = settler.await;
}

/// Waits for jobs; during an outage, for at most [`PROBE_INTERVAL`] (None when idle: the
/// writer then probes with the recovery event alone).
async fn next_jobs(
    rx: &mut mpsc::Receiver<Job>,
    jobs: &mut Vec<Job>,
    probing: bool,
) -> Option<usize> {
    if probing {
        tokio::time::timeout(PROBE_INTERVAL, rx.recv_many(jobs, MAX_BATCH))
            .await
            .ok()
    } else {
        Some(rx.recv_many(jobs, MAX_BATCH).await)
    }
}

/// Records a failed batch in the outage, starting one (and refusing calls) if none is on.
fn outage_begins(
    outage: &mut Option<Outage>,
    health: &Health,
    reason: String,
    late: Vec<AuditRecord>,
    counted: bool,
) {
    let o = outage.get_or_insert_with(|| {
        health.writable.send_replace(false);
        Outage::new(reason.clone())
    });
    o.failed(reason, late, counted);
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

#[cfg(test)]
mod tests;
