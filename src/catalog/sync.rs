//! Keeps a replica's in-memory catalog current with the database it shares with other
//! replicas (PostgreSQL). A trigger on the catalog tables notifies channel [`CHANNEL`] with the
//! key's id after each committed change (`migrations/postgres/0037`); this task listens and
//! reloads that key. Notifications are not queued for a listener that is away, so each time
//! it (re)subscribes, and every `resync_every` besides, it compares the whole catalog with the
//! database and reloads what differs.
//!
//! A change made on another replica is so seen here within a notification's delivery (a few
//! milliseconds), or at worst `resync_every` when a notification was lost.

use super::Catalog;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The channel the catalog trigger notifies.
pub const CHANNEL: &str = "keygate_catalog";

/// How long to wait before listening again after the connection was lost.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Follows changes until `stop`.
pub async fn run(
    catalog: Arc<Catalog>,
    pool: PgPool,
    resync_every: Duration,
    stop: CancellationToken,
) {
    // Resyncs run on their own, so a key held by a long change delays neither them nor the
    // notifications of other keys.
    tokio::spawn({
        let (catalog, stop) = (catalog.clone(), stop.clone());
        async move {
            let mut tick = tokio::time::interval(resync_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => resync(&catalog).await,
                }
            }
        }
    });
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            () = follow(&catalog, &pool) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

/// Listens on one connection until it is lost.
async fn follow(catalog: &Arc<Catalog>, pool: &PgPool) {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "catalog sync cannot reach the database; retrying");
            return;
        }
    };
    if let Err(e) = listener.listen(CHANNEL).await {
        tracing::warn!(error = %e, "catalog sync cannot listen; retrying");
        return;
    }
    // Subscribed first, compared second: a change committed in between is both notified and
    // seen by the comparison, never neither.
    tokio::spawn({
        let catalog = catalog.clone();
        async move { resync(&catalog).await }
    });
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                // Each key in a task of its own: its reload waits for the key's lock, which a
                // change in progress on this replica may hold for a while.
                let (catalog, id) = (catalog.clone(), n.payload().to_string());
                tokio::spawn(async move {
                    if let Err(e) = catalog.reload(&id).await {
                        tracing::warn!(key = %id, error = %e, "catalog reload failed; the next resync retries");
                    }
                });
            }
            Ok(None) => {
                tracing::warn!("catalog sync lost its connection; resubscribing");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "catalog sync failed; resubscribing");
                return;
            }
        }
    }
}

async fn resync(catalog: &Catalog) {
    match catalog.resync().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(keys = n, "catalog resync reloaded keys changed elsewhere"),
        Err(e) => tracing::warn!(error = %e, "catalog resync failed; retrying later"),
    }
}
