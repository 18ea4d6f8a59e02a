//! The single writer: batches queued appends into one INSERT, then acknowledges them.

use super::checkpoint::{self, CatchUp};
use super::event::{AuditEvent, AuditRecord, GENESIS_HASH};
use super::{Ack, store};
use sqlx::SqliteConnection;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// 17 bound columns × 1024 rows stays under SQLite's 32766-variable limit.
const MAX_BATCH: usize = 1024;

pub async fn run(
    mut conn: SqliteConnection,
    head: Option<(u64, String)>,
    mut rx: mpsc::Receiver<(AuditRecord, Ack)>,
    live: broadcast::Sender<Arc<AuditEvent>>,
    catch_up: CatchUp,
) {
    let (mut sequence, mut previous) = head.unwrap_or((0, GENESIS_HASH.to_string()));
    let mut batch: Vec<(AuditRecord, Ack)> = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return; // every sender is gone: the gateway is shutting down
        }
        let mut events = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut seq = sequence;
        let mut prev = previous.clone();
        for (record, ack) in batch.drain(..) {
            seq += 1;
            let event = AuditEvent::seal(seq, prev, record);
            prev = event.hash.clone();
            events.push(event);
            acks.push(ack);
        }
        match store::insert_batch(&mut conn, &events).await {
            Ok(()) => {
                sequence = seq;
                previous = prev;
                for (event, ack) in events.into_iter().zip(acks) {
                    let _ = ack.send(Ok(event.sequence));
                    // No subscribers is normal; a lagging one skips ahead.
                    let _ = live.send(Arc::new(event));
                }
            }
            Err(e) => {
                // Nothing was written: the chain continues from the old head.
                tracing::error!(error = %e, rows = events.len(), "audit append failed");
                let reason = e.to_string();
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
