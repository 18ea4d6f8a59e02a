//! SQL for the audit table: batched appends, filtered queries, the chain walk.

use super::{AuditEvent, AuditFilter, AuditRecord};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

const COLUMNS: &str = "sequence, time_ms, source, actor, action, key_id, key_name, key_version, \
    outcome, reason, policy, request_id, provider_request_id, client_address, details, \
    previous_hash, hash, format, actor_kind, error_reason, caller_gone";

/// Rows per INSERT: 21 bound columns × 1024 stays under SQLite's 32766-variable limit.
pub const MAX_ROWS: usize = 1024;

/// One multi-row INSERT for the whole batch: per-statement overhead, not rows, is what limits
/// SQLite here, so a batch costs about what one row does. A batch larger than [`MAX_ROWS`] (a
/// recovery commit carrying an outage's events) is several INSERTs in one transaction.
pub async fn insert_batch(
    conn: &mut SqliteConnection,
    events: &[AuditEvent],
) -> Result<(), sqlx::Error> {
    if events.len() <= MAX_ROWS {
        return insert_rows(conn, events).await;
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for chunk in events.chunks(MAX_ROWS) {
        insert_rows(&mut tx, chunk).await?;
    }
    tx.commit().await
}

async fn insert_rows(
    conn: &mut SqliteConnection,
    events: &[AuditEvent],
) -> Result<(), sqlx::Error> {
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("INSERT INTO audit_events ({COLUMNS}) "));
    q.push_values(events, |mut b, e| {
        let r = &e.record;
        b.push_bind(e.sequence as i64)
            .push_bind(r.time_ms)
            .push_bind(&r.source)
            .push_bind(&r.actor)
            .push_bind(&r.action)
            .push_bind(&r.key_id)
            .push_bind(&r.key_name)
            .push_bind(i64::from(r.key_version))
            .push_bind(&r.outcome)
            .push_bind(&r.reason)
            .push_bind(&r.policy)
            .push_bind(&r.request_id)
            .push_bind(&r.provider_request_id)
            .push_bind(&r.client_address)
            .push_bind(&r.details)
            .push_bind(&e.previous_hash)
            .push_bind(&e.hash)
            .push_bind(i64::from(e.format))
            .push_bind(&r.actor_kind)
            .push_bind(&r.error_reason)
            .push_bind(r.caller_gone);
    });
    q.build().execute(conn).await?;
    Ok(())
}

pub fn event_from_row(row: &SqliteRow) -> Result<AuditEvent, sqlx::Error> {
    Ok(AuditEvent {
        sequence: row.try_get::<i64, _>("sequence")? as u64,
        // Out-of-range values become 0, which verification reports as an unknown format.
        format: u8::try_from(row.try_get::<i64, _>("format")?).unwrap_or(0),
        previous_hash: row.try_get("previous_hash")?,
        hash: row.try_get("hash")?,
        record: AuditRecord {
            time_ms: row.try_get("time_ms")?,
            source: row.try_get("source")?,
            actor: row.try_get("actor")?,
            actor_kind: row.try_get("actor_kind")?,
            action: row.try_get("action")?,
            key_id: row.try_get("key_id")?,
            key_name: row.try_get("key_name")?,
            key_version: row.try_get::<i64, _>("key_version")? as u32,
            outcome: row.try_get("outcome")?,
            reason: row.try_get("reason")?,
            error_reason: row.try_get("error_reason")?,
            policy: row.try_get("policy")?,
            request_id: row.try_get("request_id")?,
            provider_request_id: row.try_get("provider_request_id")?,
            client_address: row.try_get("client_address")?,
            details: row.try_get("details")?,
            caller_gone: row.try_get("caller_gone")?,
        },
    })
}

/// The last event's sequence and hash, where the chain continues.
pub async fn head(db: &SqlitePool) -> Result<Option<(u64, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT sequence, hash FROM audit_events ORDER BY sequence DESC LIMIT 1")
        .fetch_optional(db)
        .await?;
    row.map(|r| Ok((r.try_get::<i64, _>("sequence")? as u64, r.try_get("hash")?)))
        .transpose()
}

pub async fn query(
    db: &SqlitePool,
    filter: &AuditFilter,
    after_sequence: u64,
    limit: u32,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM audit_events WHERE sequence > "
    ));
    q.push_bind(after_sequence as i64);
    if let Some(t) = filter.start_ms {
        q.push(" AND time_ms >= ").push_bind(t);
    }
    if let Some(t) = filter.end_ms {
        q.push(" AND time_ms < ").push_bind(t);
    }
    if let Some(k) = &filter.key {
        q.push(" AND (key_id = ").push_bind(k.clone());
        q.push(" OR key_name = ").push_bind(k.clone()).push(")");
    }
    for (column, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("outcome", &filter.outcome),
        ("request_id", &filter.request_id),
        ("source", &filter.source),
    ] {
        if let Some(v) = value {
            q.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    q.push(" ORDER BY sequence LIMIT ")
        .push_bind(i64::from(limit));
    q.build()
        .fetch_all(db)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
}

/// Events in sequence order from `after`, `limit` at a time (for the chain walk).
pub async fn page(db: &SqlitePool, after: u64, limit: u32) -> Result<Vec<AuditEvent>, sqlx::Error> {
    // COLUMNS is a constant: nothing from outside enters the SQL text.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_events WHERE sequence > ? ORDER BY sequence LIMIT ?"
    )))
    .bind(after as i64)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?
    .iter()
    .map(event_from_row)
    .collect()
}
