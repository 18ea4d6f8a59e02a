//! The one process's audit writer on SQLite (WAL, `synchronous=FULL`; see `crate::db`).

mod wal;

use super::sql::MAX_ROWS;
use super::sql::write::sqlite::{insert_events, write_side};
use super::{SideRows, StoreResult, StoreWriter};
use crate::audit::event::AuditEvent;
use sqlx::{SqliteConnection, SqlitePool};

/// The writer, and beside it the task that checkpoints the WAL.
pub(super) async fn writer(db: &SqlitePool) -> StoreResult<Box<dyn StoreWriter>> {
    // Both on connections of their own, so neither waits for a query's connection.
    let mut conn = db.acquire().await?.detach();
    // A commit blocked this long by another process's lock fails, so a call never waits
    // past its request timeout on the audit log; the gateway then refuses calls until
    // the store is writable again.
    sqlx::query("PRAGMA busy_timeout = 5000")
        .execute(&mut conn)
        .await?;
    let checkpoint_conn = db.acquire().await?.detach();
    let catch_up = wal::CatchUp::default();
    tokio::spawn(wal::run(checkpoint_conn, catch_up.clone()));
    Ok(Box::new(SqliteWriter { conn, catch_up }))
}

struct SqliteWriter {
    conn: SqliteConnection,
    catch_up: wal::CatchUp,
}

#[async_trait::async_trait]
impl StoreWriter for SqliteWriter {
    /// The only writer of its database: the batch goes where it was sealed.
    async fn commit(&mut self, events: &mut [AuditEvent], side: &mut SideRows) -> StoreResult<()> {
        // One multi-row INSERT for the whole batch: per-statement overhead, not rows, is what
        // limits SQLite here, so a batch costs about what one row does. Only batches with rows
        // beside the chain (or more rows than one INSERT takes) need a transaction.
        if side.is_empty() && events.len() <= MAX_ROWS {
            return insert_events(&mut self.conn, events).await;
        }
        let mut tx = sqlx::Connection::begin(&mut self.conn).await?;
        for chunk in events.chunks(MAX_ROWS) {
            insert_events(&mut tx, chunk).await?;
        }
        write_side(&mut tx, side).await?;
        tx.commit().await
    }

    async fn between_batches(&mut self) {
        // After the replies went out: copy the few frames the background checkpoint left, so
        // the next commit can restart the WAL (see `wal`).
        if self.catch_up.take()
            && let Err(e) = wal::passive(&mut self.conn).await
        {
            tracing::warn!(error = %e, "WAL catch-up checkpoint failed");
        }
    }
}
