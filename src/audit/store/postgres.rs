//! Each replica's audit writer on PostgreSQL. The replicas append to one chain: a batch's
//! transaction locks the chain's head row (`audit_chain_head`, `SELECT … FOR UPDATE`), reseals
//! the batch after the head it finds there if another replica appended since it was sealed,
//! inserts it and moves the head. Sequences and links are so handed out in one total order,
//! with no gap or fork, and replicas' commits queue on that one row (released by the commit or
//! the rollback itself, and visible in `pg_locks` like any other wait). Each replica still
//! group-commits, so the row is taken once per batch, not once per call.

use super::sql::MAX_ROWS;
use super::sql::write::postgres::{insert_events, write_side};
use super::{SideRows, StoreResult, StoreWriter, reseal};
use crate::audit::GENESIS_HASH;
use crate::audit::event::AuditEvent;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use std::time::Duration;

/// How long a batch waits for a connection before the log counts as not writable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn writer(pool: &PgPool) -> StoreResult<Box<dyn StoreWriter>> {
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
    Ok(Box::new(PgWriter { pool: pool.clone() }))
}

/// Commits on pooled connections, so a connection PostgreSQL dropped (a restart) is replaced
/// and the writer recovers with the pool.
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

#[async_trait::async_trait]
impl StoreWriter for PgWriter {
    async fn commit(&mut self, events: &mut [AuditEvent], side: &mut SideRows) -> StoreResult<()> {
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
        if let Some(last) = events.last() {
            sqlx::query("UPDATE audit_chain_head SET sequence = $1, hash = $2 WHERE id = 1")
                .bind(last.sequence as i64)
                .bind(&last.hash)
                .execute(&mut *tx)
                .await?;
        }
        // synchronous_commit (on by default) makes the commit durable before it returns.
        tx.commit().await
    }

    async fn between_batches(&mut self) {}

    async fn check(&mut self) -> StoreResult<()> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(CONNECT_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *conn))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(())
    }
}
