//! The live feed (`Tail`) of a log that replicas share: every replica's events, read back from
//! the store in chain order, so a subscriber on any replica sees the whole log, not only the
//! calls this replica answered. Woken by this replica's writer after each commit (its own
//! events arrive at once), and every [`POLL`] for the other replicas'.

use super::event::AuditEvent;
use super::store::AuditStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// How often other replicas' events are looked for.
const POLL: Duration = Duration::from_millis(100);

/// Events read per query.
const PAGE: u32 = 1000;

/// Follows the log after sequence `after` for as long as the process runs.
pub async fn run(
    store: Arc<dyn AuditStore>,
    mut after: u64,
    wake: Arc<Notify>,
    live: broadcast::Sender<Arc<AuditEvent>>,
) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
        if live.receiver_count() == 0 {
            // Nobody listens: keep the place without reading the events. A subscriber that
            // came while the head was read may be owed events in it (committed after it
            // subscribed): the place moves only if still nobody listens.
            if let Ok(Some((head, _))) = store.head().await
                && live.receiver_count() == 0
            {
                after = head;
                continue;
            }
            if live.receiver_count() == 0 {
                continue;
            }
        }
        loop {
            let events = match store.page(after, PAGE).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "the live audit feed cannot read the log; retrying");
                    break;
                }
            };
            let full = events.len() == PAGE as usize;
            for event in events {
                after = event.sequence;
                // A lagging subscriber skips ahead, as on a single node.
                let _ = live.send(Arc::new(event));
            }
            if !full {
                break;
            }
        }
    }
}
