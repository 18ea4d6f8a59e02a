//! The writers' SQL: the events' multi-row INSERT and the rows beside the chain. One text for
//! both databases, compiled once for each ([`sqlite`], [`postgres`]).

macro_rules! writes {
    ($module:ident, $db:ty, $conn:ty) => {
pub mod $module {
use super::super::{COLUMNS, MAX_ROWS};
use crate::audit::event::AuditEvent;
use crate::audit::store::{SideRows, StoreResult};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::QueryBuilder;

/// Appends `events` in one INSERT (at most [`MAX_ROWS`]).
pub async fn insert_events(
    conn: &mut $conn,
    events: &[AuditEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut q: QueryBuilder<$db> =
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
            .push_bind(i64::from(r.caller_gone))
            .push_bind(&r.key_uri);
    });
    q.build().execute(conn).await?;
    Ok(())
}

/// The rows beside the chain, in the batch's transaction.
pub async fn write_side(conn: &mut $conn, side: &SideRows) -> StoreResult<()> {
    for chunk in side.provider_request_ids.chunks(MAX_ROWS) {
        let mut q: QueryBuilder<$db> = QueryBuilder::new(
            "INSERT INTO audit_provider_request_ids (provider_request_id, sequence) ",
        );
        q.push_values(chunk, |mut b, (id, seq)| {
            b.push_bind(id).push_bind(*seq as i64);
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&mut *conn).await?;
    }
    for chunk in side.ingested.chunks(MAX_ROWS / 2) {
        let mut q: QueryBuilder<$db> = QueryBuilder::new(
            "INSERT INTO audit_ingested (sequence, source, record_id, feed, provider_request_id, \
             gateway_sequence, bypass) ",
        );
        q.push_values(chunk, |mut b, (seq, row)| {
            b.push_bind(*seq as i64)
                .push_bind(&row.source)
                .push_bind(&row.record_id)
                .push_bind(&row.feed)
                .push_bind(&row.provider_request_id)
                .push_bind(row.gateway_sequence.map(|s| s as i64))
                .push_bind(i64::from(row.bypass));
        });
        // A record a former leader ingested during a hand-over is not a reason to fail the
        // calls committed beside it.
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&mut *conn).await?;
    }
    for c in &side.cursors {
        sqlx::query(
            "INSERT INTO audit_ingest_cursors (feed, position, ingested, linked, bypass, ignored, \
             duplicates, malformed, last_malformed, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (feed) DO UPDATE SET position = excluded.position, \
             ingested = excluded.ingested, linked = excluded.linked, bypass = excluded.bypass, \
             ignored = excluded.ignored, duplicates = excluded.duplicates, \
             malformed = excluded.malformed, last_malformed = excluded.last_malformed, \
             updated_ms = excluded.updated_ms",
        )
        .bind(&c.feed)
        .bind(&c.position)
        .bind(c.counters.ingested as i64)
        .bind(c.counters.linked as i64)
        .bind(c.counters.bypass as i64)
        .bind(c.counters.ignored as i64)
        .bind(c.counters.duplicates as i64)
        .bind(c.counters.malformed as i64)
        .bind(&c.last_malformed)
        .bind(c.updated_ms)
        .execute(&mut *conn)
        .await?;
    }
    for c in &side.checkpoints {
        sqlx::query(
            "INSERT INTO audit_checkpoints (sequence, head_hash, time_ms, previous_digest, key_id, \
             key_name, key_version, algorithm, public_key, signature) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (sequence) DO NOTHING",
        )
        .bind(c.sequence as i64)
        .bind(&c.head_hash)
        .bind(c.time_ms)
        .bind(&c.previous_digest)
        .bind(&c.key_id)
        .bind(&c.key_name)
        .bind(i64::from(c.key_version))
        .bind(&c.algorithm)
        .bind(B64.encode(&c.public_key))
        .bind(B64.encode(&c.signature))
        .execute(&mut *conn)
        .await?;
    }
    for seq in &side.witnessed {
        sqlx::query("UPDATE audit_checkpoints SET witnessed = 1 WHERE sequence = $1")
            .bind(*seq as i64)
            .execute(&mut *conn)
            .await?;
    }
    for (name, value) in &side.state {
        sqlx::query(
            "INSERT INTO audit_state (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(p) = side.prune {
        // The oldest `limit` events at or below `through`, and what refers to them.
        let bound: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(sequence) FROM (SELECT sequence FROM audit_events WHERE sequence <= $1 \
             ORDER BY sequence LIMIT $2) AS oldest",
        )
        .bind(p.through as i64)
        .bind(i64::from(p.limit))
        .fetch_one(&mut *conn)
        .await?;
        if let Some(bound) = bound {
            for sql in [
                "DELETE FROM audit_events WHERE sequence <= $1",
                "DELETE FROM audit_ingested WHERE sequence <= $1",
                "DELETE FROM audit_provider_request_ids WHERE sequence <= $1",
            ] {
                sqlx::query(sql).bind(bound).execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}
}
    };
}

writes!(sqlite, sqlx::Sqlite, sqlx::SqliteConnection);
writes!(postgres, sqlx::Postgres, sqlx::PgConnection);
