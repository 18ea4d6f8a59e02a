//! The second half of the writer: waits for each committed batch to become durable, then
//! acknowledges its calls and publishes its events to live subscribers, in commit order.
//!
//! It runs as a task of its own, so the writer commits batch N+1 while batch N's flush is
//! still on its way to the disk. The queue between them is bounded ([`MAX_IN_FLIGHT`]): a
//! disk that falls behind slows the writer down instead of piling up batches.

use crate::audit::event::AuditEvent;
use crate::audit::store::Durable;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{broadcast, mpsc};

use super::{Ack, BatchAck};

/// Committed batches waiting for their flush, at most.
pub(super) const MAX_IN_FLIGHT: usize = 8;

/// Who waits for which of a batch's events.
pub(super) enum Waiting {
    One(Ack),
    Many(BatchAck, std::ops::Range<usize>),
}

impl Waiting {
    pub(super) fn events(&self) -> usize {
        match self {
            Waiting::One(_) => 1,
            Waiting::Many(_, range) => range.len(),
        }
    }

    pub(super) fn fail(self, reason: &str) {
        match self {
            Waiting::One(ack) => {
                let _ = ack.send(Err(reason.to_string()));
            }
            Waiting::Many(ack, _) => {
                let _ = ack.send(Err(reason.to_string()));
            }
        }
    }
}

/// Events the waiting jobs account for.
pub(super) fn count(waiting: &[Waiting]) -> usize {
    waiting.iter().map(Waiting::events).sum()
}

/// A batch in the chain, on its way to the disk.
pub(super) struct Committed {
    flush: Flush,
    /// When its commit started, for the commit-latency metric (commit to durable).
    started: Instant,
    /// Its events, the waiting jobs' last (after any recovery and late events).
    events: Vec<AuditEvent>,
    waiting: Vec<Waiting>,
}

enum Flush {
    Pending(Durable),
    Done(Result<(), String>),
}

impl Committed {
    pub fn new(
        durable: Durable,
        started: Instant,
        events: Vec<AuditEvent>,
        waiting: Vec<Waiting>,
    ) -> Self {
        Self {
            flush: Flush::Pending(durable),
            started,
            events,
            waiting,
        }
    }

    /// Waits for the batch's flush (once; later calls return the same outcome).
    pub async fn flushed(&mut self) -> Result<(), String> {
        if let Flush::Pending(durable) = &mut self.flush {
            let outcome = durable.await.map_err(|e| e.to_string());
            self.flush = Flush::Done(outcome);
        }
        match &self.flush {
            Flush::Done(outcome) => outcome.clone(),
            Flush::Pending(_) => unreachable!("resolved above"),
        }
    }
}

pub(super) async fn run(
    mut rx: mpsc::Receiver<Committed>,
    live: broadcast::Sender<Arc<AuditEvent>>,
    metrics: crate::telemetry::AuditWriterMetrics,
    failures: mpsc::UnboundedSender<String>,
) {
    while let Some(mut batch) = rx.recv().await {
        let flushed = batch.flushed().await;
        let Committed {
            started,
            events,
            waiting,
            ..
        } = batch;
        match flushed {
            Ok(()) => {
                metrics.committed(events.len(), started.elapsed(), true);
                let mut at = events.len() - count(&waiting);
                for w in waiting {
                    let n = w.events();
                    match w {
                        Waiting::One(ack) => {
                            let _ = ack.send(Ok(events[at].sequence));
                        }
                        Waiting::Many(ack, range) => {
                            let _ =
                                ack.send(Ok(events[range].iter().map(|e| e.sequence).collect()));
                        }
                    }
                    at += n;
                }
                for event in events {
                    // No subscribers is normal; a lagging one skips ahead.
                    let _ = live.send(Arc::new(event));
                }
            }
            Err(reason) => {
                // Committed but perhaps not on the disk: the callers are told the audit log
                // failed (as if the commit had), and the writer records the outage. The
                // events stay in the chain; live subscribers never see them.
                metrics.committed(events.len(), started.elapsed(), false);
                tracing::error!(error = %reason, events = events.len(), "flushing the audit log failed; the batch's calls get AUDIT_UNAVAILABLE");
                for w in waiting {
                    w.fail(&reason);
                }
                let _ = failures.send(reason);
            }
        }
    }
}
