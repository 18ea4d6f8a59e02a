//! Each replica's audit writer on PostgreSQL. The replicas append to one chain: a batch's
//! transaction locks the chain's head row (`audit_chain_head`, `SELECT … FOR UPDATE`), reseals
//! the batch after the head it finds there if another replica appended since it was sealed,
//! inserts it and moves the head. Sequences and links are so handed out in one total order,
//! with no gap or fork, and replicas' commits queue on that one row (released by the commit or
//! the rollback itself, and visible in `pg_locks` like any other wait). Each replica still
//! group-commits, so the row is taken once per batch, not once per call.

use super::sql::MAX_ROWS;
use super::sql::write::postgres::{insert_events, write_side};
use super::{SideRows, StoreResult, StoreWriter, WriteResult, reseal};
use crate::audit::GENESIS_HASH;
use crate::audit::event::AuditEvent;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};
use std::time::{Duration, Instant};

/// The writer's connections: one commits, and a second can settle a commit whose answer was
/// lost while the first is being replaced.
const WRITER_CONNECTIONS: u32 = 2;

/// How long a batch waits for a connection before the log counts as not writable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a batch whose COMMIT got no answer keeps trying to learn whether it was written.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);

pub(super) async fn writer(pool: &PgPool) -> WriteResult<Box<dyn StoreWriter>> {
    // The head row, made once by whichever replica starts first: after the last event if the
    // log has any, the genesis otherwise.
    sqlx::query(
        "INSERT INTO audit_chain_head (id, sequence, hash) \
         SELECT 1, sequence, hash FROM audit_events ORDER BY sequence DESC LIMIT 1 \
         ON CONFLICT (id) DO NOTHING",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO audit_chain_head (id, sequence, hash) VALUES (1, 0, $1) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(GENESIS_HASH)
    .execute(pool)
    .await?;
    // Connections of its own, apart from the pool that serves reads, so queries, exports and
    // the live feed cannot keep a batch waiting for a connection. Made as needed: a replica
    // that loses the database gets them back when it returns.
    let own = PgPoolOptions::new()
        .max_connections(WRITER_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with((*pool.connect_options()).clone());
    Ok(Box::new(PgWriter { pool: own }))
}

/// Commits on connections of its own pool, so a connection PostgreSQL dropped (a restart) is
/// replaced and the writer recovers with the pool.
struct PgWriter {
    pool: PgPool,
}

impl PgWriter {
    /// A pooled connection. The pool retries a database that refuses connections until its
    /// own timeout; calls waiting on a batch should hear sooner that the log cannot be
    /// written.
    async fn connection(&self) -> StoreResult<PoolConnection<Postgres>> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.pool.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }
}

impl PgWriter {
    /// Whether the batch ending in `last` (sequence, hash) was written after all, once its
    /// transaction has ended; `error` (COMMIT's) if not, or if that cannot be learnt within
    /// [`SETTLE_WITHIN`].
    async fn settle(&self, last: &(i64, String), error: sqlx::Error) -> StoreResult<()> {
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            // Each attempt is bounded too: a connection that hangs must not hold the writer.
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(left, self.written(last))
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut));
            match attempt {
                Ok(true) => {
                    tracing::warn!(
                        sequence = last.0,
                        "an audit batch's COMMIT got no answer, but the batch was written"
                    );
                    return Ok(());
                }
                Ok(false) => return Err(error),
                Err(e) if Instant::now() >= deadline => {
                    tracing::error!(
                        error = %e,
                        sequence = last.0,
                        "an audit batch's COMMIT got no answer and the database cannot say whether it was written; if it was, its calls' events will be recorded twice"
                    );
                    return Err(error);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Looks for the batch's last event (its hash names its content and place in the chain)
    /// after taking the head row, which the batch's transaction holds until it ends.
    async fn written(&self, last: &(i64, String)) -> StoreResult<bool> {
        let mut conn = self.connection().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query("SELECT 1 FROM audit_chain_head WHERE id = 1 FOR SHARE")
            .execute(&mut *tx)
            .await?;
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM audit_events WHERE sequence = $1 AND hash = $2")
                .bind(last.0)
                .bind(&last.1)
                .fetch_optional(&mut *tx)
                .await?;
        tx.rollback().await?;
        Ok(found.is_some())
    }
}

#[async_trait::async_trait]
impl StoreWriter for PgWriter {
    async fn commit(&mut self, events: &mut [AuditEvent], side: &mut SideRows) -> WriteResult<()> {
        Ok(self.commit_batch(events, side).await?)
    }

    async fn between_batches(&mut self) {}

    async fn check(&mut self) -> WriteResult<()> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(CONNECT_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *conn))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(())
    }
}

impl PgWriter {
    async fn commit_batch(
        &mut self,
        events: &mut [AuditEvent],
        side: &mut SideRows,
    ) -> StoreResult<()> {
        let mut conn = self.connection().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let (sequence, hash): (i64, String) =
            sqlx::query_as("SELECT sequence, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        reseal(events, side, (sequence as u64, &hash));
        for chunk in events.chunks(MAX_ROWS) {
            insert_events(&mut tx, chunk).await?;
        }
        write_side(&mut tx, side).await?;
        let Some(last) = events.last() else {
            return tx.commit().await;
        };
        let last = (last.sequence as i64, last.hash.clone());
        sqlx::query("UPDATE audit_chain_head SET sequence = $1, hash = $2 WHERE id = 1")
            .bind(last.0)
            .bind(&last.1)
            .execute(&mut *tx)
            .await?;
        // synchronous_commit (on by default) makes the commit durable before it returns.
        let committed = tx.commit().await;
        drop(conn);
        match committed {
            Ok(()) => Ok(()),
            // The connection failed during COMMIT: the batch may be written even so, and
            // writing its calls' events again as late ones would record them twice.
            Err(e) => self.settle(&last, e).await,
        }
    }
}
