//! The one process's audit writer on SQLite (WAL, `synchronous=FULL`; see `crate::db`).
//!
//! The calls' events, and the backend request ids beside them, go through a connection of the
//! writer's own (`rusqlite`), with one prepared INSERT bound from the events' own strings: no
//! statement text built per batch, no copy of every value into owned arguments, and no
//! worker thread between the writer and SQLite. The writer runs on a thread of its own
//! ([`StoreWriter::blocking`]), so the commit's fsync holds no runtime worker.
//!
//! The rare batches with other rows beside the chain (an ingester's cursor, a checkpoint, a
//! retention step) go through sqlx with the SQL both databases share (`sql::write`), on a
//! second connection the writer alone uses. Both connections commit in turn on the writer's
//! thread, so the log still has one writer.

mod wal;

use super::sql::MAX_ROWS;
use super::sql::write::sqlite::{insert_events, write_side};
use super::{SideRows, StoreWriter, WriteResult};
use crate::audit::event::AuditEvent;
use sqlx::{SqliteConnection, SqlitePool};
use std::time::Duration;

/// A commit blocked this long by another process's lock fails, so a call never waits past its
/// request timeout on the audit log; the gateway then refuses calls until the store is
/// writable again.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One event's row; the columns are those of every other INSERT into the table.
fn insert_event_sql() -> String {
    let placeholders: Vec<String> = (1..=22).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO audit_events ({}) VALUES ({})",
        super::sql::COLUMNS,
        placeholders.join(", ")
    )
}

const INSERT_PROVIDER_REQUEST_ID: &str = "INSERT INTO audit_provider_request_ids \
     (provider_request_id, sequence) VALUES (?1, ?2) ON CONFLICT DO NOTHING";

/// The writer, and beside it the task that checkpoints the WAL.
pub(super) async fn writer(db: &SqlitePool) -> WriteResult<Box<dyn StoreWriter>> {
    let path = db.connect_options().get_filename().to_path_buf();
    // Opened after the pool, which created the file, set WAL and migrated it.
    let events = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The same durability as the pool's connections (`db::open`): an acknowledged call's
    // event is on disk; checkpoints stay off the commit path (`wal`).
    events.pragma_update(None, "synchronous", "FULL")?;
    events.pragma_update(None, "foreign_keys", "ON")?;
    events.pragma_update(None, "wal_autocheckpoint", 0)?;
    events.pragma_update(None, "journal_size_limit", crate::db::WAL_SIZE_LIMIT)?;
    events.busy_timeout(BUSY_TIMEOUT)?;
    let insert_event = insert_event_sql();
    // Prepared once here, so a schema that does not match fails at start-up, not at a call.
    events.prepare_cached(&insert_event)?;
    events.prepare_cached(INSERT_PROVIDER_REQUEST_ID)?;
    let mut side = db.acquire().await?.detach();
    // BUSY_TIMEOUT, for the batches beside the chain.
    sqlx::query("PRAGMA busy_timeout = 5000")
        .execute(&mut side)
        .await?;
    let checkpoint_conn = db.acquire().await?.detach();
    let catch_up = wal::CatchUp::default();
    tokio::spawn(wal::run(checkpoint_conn, catch_up.clone()));
    Ok(Box::new(SqliteWriter {
        events,
        insert_event,
        side,
        catch_up,
    }))
}

struct SqliteWriter {
    /// The calls' events and their backend request ids.
    events: rusqlite::Connection,
    insert_event: String,
    /// Batches with other rows beside the chain.
    side: SqliteConnection,
    catch_up: wal::CatchUp,
}

impl SqliteWriter {
    /// Appends the events and their backend request ids in one transaction: durable when it
    /// returns Ok (`synchronous=FULL`), nothing written when it returns an error.
    fn append(&mut self, events: &[AuditEvent], side: &SideRows) -> rusqlite::Result<()> {
        let tx = self.events.transaction()?;
        {
            let mut insert = tx.prepare_cached(&self.insert_event)?;
            for e in events {
                let r = &e.record;
                insert.execute(rusqlite::params![
                    e.sequence as i64,
                    r.time_ms,
                    r.source,
                    r.actor,
                    r.action,
                    r.key_id,
                    r.key_name,
                    i64::from(r.key_version),
                    r.outcome,
                    r.reason,
                    r.policy,
                    r.request_id,
                    r.provider_request_id,
                    r.client_address,
                    r.details,
                    e.previous_hash,
                    e.hash,
                    i64::from(e.format),
                    r.actor_kind,
                    r.error_reason,
                    i64::from(r.caller_gone),
                    r.key_uri,
                ])?;
            }
            let mut insert = tx.prepare_cached(INSERT_PROVIDER_REQUEST_ID)?;
            for (id, sequence) in &side.provider_request_ids {
                insert.execute(rusqlite::params![id, *sequence as i64])?;
            }
        }
        tx.commit()
    }

    /// A batch with rows beside the chain other than backend request ids: all of it, events
    /// included, in one transaction through the SQL both databases share.
    async fn append_with_side(
        &mut self,
        events: &[AuditEvent],
        side: &SideRows,
    ) -> Result<(), sqlx::Error> {
        let mut tx = sqlx::Connection::begin(&mut self.side).await?;
        for chunk in events.chunks(MAX_ROWS) {
            insert_events(&mut tx, chunk).await?;
        }
        write_side(&mut tx, side).await?;
        tx.commit().await
    }
}

#[async_trait::async_trait]
impl StoreWriter for SqliteWriter {
    /// The only writer of its database: the batch goes where it was sealed.
    async fn commit(&mut self, events: &mut [AuditEvent], side: &mut SideRows) -> WriteResult<()> {
        if side.only_request_ids() {
            return Ok(self.append(events, side)?);
        }
        Ok(self.append_with_side(events, side).await?)
    }

    async fn between_batches(&mut self) {
        // After the replies went out: copy the few frames the background checkpoint left, so
        // the next commit can restart the WAL (see `wal`).
        if self.catch_up.take()
            && let Err(e) = wal::passive_here(&self.events)
        {
            tracing::warn!(error = %e, "WAL catch-up checkpoint failed");
        }
    }

    fn blocking(&self) -> bool {
        true
    }
}
