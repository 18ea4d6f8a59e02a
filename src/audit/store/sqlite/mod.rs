//! The audit log in SQLite (WAL, `synchronous=FULL`; see `crate::db`).

mod wal;
mod write;

use super::{
    After, AuditStore, Checkpoint, CursorRow, FeedCounters, GatewayRef, SideRows, StoreResult,
    StoreWriter,
};
use crate::audit::event::{AuditEvent, AuditRecord, Link};
use crate::audit::filter::AuditFilter;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use std::collections::{HashMap, HashSet};

const COLUMNS: &str = "sequence, time_ms, source, actor, action, key_id, key_name, key_version, \
    outcome, reason, policy, request_id, provider_request_id, client_address, details, \
    previous_hash, hash, format, actor_kind, error_reason, caller_gone, key_uri";

/// [`COLUMNS`] of `audit_events e`, with the ingested record's link beside them.
const LINKED_COLUMNS: &str = "e.sequence, e.time_ms, e.source, e.actor, e.action, e.key_id, \
    e.key_name, e.key_version, e.outcome, e.reason, e.policy, e.request_id, \
    e.provider_request_id, e.client_address, e.details, e.previous_hash, e.hash, e.format, \
    e.actor_kind, e.error_reason, e.caller_gone, e.key_uri, i.feed AS link_feed, \
    i.gateway_sequence AS link_gateway, i.bypass AS link_bypass";

/// Rows per INSERT: 22 bound columns × 1024 stays under SQLite's 32766-variable limit.
pub const MAX_ROWS: usize = 1024;

/// Ids per `IN (…)` list.
const MAX_IN: usize = 500;

#[derive(Clone)]
pub struct SqliteAuditStore {
    db: SqlitePool,
}

impl SqliteAuditStore {
    pub fn new(db: SqlitePool) -> Self {
        Self { db }
    }
}

struct SqliteWriter {
    conn: SqliteConnection,
    catch_up: wal::CatchUp,
}

#[async_trait::async_trait]
impl StoreWriter for SqliteWriter {
    async fn commit(&mut self, events: &[AuditEvent], side: &SideRows) -> StoreResult<()> {
        // One multi-row INSERT for the whole batch: per-statement overhead, not rows, is what
        // limits SQLite here, so a batch costs about what one row does. Only batches with rows
        // beside the chain (or more rows than one INSERT takes) need a transaction.
        if side.is_empty() && events.len() <= MAX_ROWS {
            return write::insert_events(&mut self.conn, events).await;
        }
        let mut tx = sqlx::Connection::begin(&mut self.conn).await?;
        for chunk in events.chunks(MAX_ROWS) {
            write::insert_events(&mut tx, chunk).await?;
        }
        write::write_side(&mut tx, side).await?;
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

fn event_from_row(row: &SqliteRow) -> Result<AuditEvent, sqlx::Error> {
    let link = match row.try_get::<Option<String>, _>("link_feed") {
        Ok(Some(feed)) => Some(Link {
            feed,
            gateway_sequence: row
                .try_get::<Option<i64>, _>("link_gateway")?
                .map(|s| s as u64),
            bypass: row
                .try_get::<Option<bool>, _>("link_bypass")?
                .unwrap_or(false),
        }),
        _ => None,
    };
    Ok(AuditEvent {
        sequence: row.try_get::<i64, _>("sequence")? as u64,
        // Out-of-range values become 0, which verification reports as an unknown format.
        format: u8::try_from(row.try_get::<i64, _>("format")?).unwrap_or(0),
        previous_hash: row.try_get("previous_hash")?,
        hash: row.try_get("hash")?,
        link,
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
            key_uri: row.try_get("key_uri")?,
            more_provider_request_ids: Vec::new(),
        },
    })
}

fn checkpoint_from_row(row: &SqliteRow) -> Result<Checkpoint, sqlx::Error> {
    let b64 = |column: &str| -> Result<Vec<u8>, sqlx::Error> {
        let text: String = row.try_get(column)?;
        // A value that is not base64 cannot verify; verification names the checkpoint.
        Ok(B64.decode(text.as_bytes()).unwrap_or_default())
    };
    Ok(Checkpoint {
        sequence: row.try_get::<i64, _>("sequence")? as u64,
        head_hash: row.try_get("head_hash")?,
        time_ms: row.try_get("time_ms")?,
        previous_digest: row.try_get("previous_digest")?,
        key_id: row.try_get("key_id")?,
        key_name: row.try_get("key_name")?,
        key_version: row.try_get::<i64, _>("key_version")? as u32,
        algorithm: row.try_get("algorithm")?,
        public_key: b64("public_key")?,
        signature: b64("signature")?,
    })
}

fn cursor_from_row(row: &SqliteRow) -> Result<CursorRow, sqlx::Error> {
    let n = |c: &str| -> Result<u64, sqlx::Error> { Ok(row.try_get::<i64, _>(c)? as u64) };
    Ok(CursorRow {
        feed: row.try_get("feed")?,
        position: row.try_get("position")?,
        counters: FeedCounters {
            ingested: n("ingested")?,
            linked: n("linked")?,
            bypass: n("bypass")?,
            ignored: n("ignored")?,
            duplicates: n("duplicates")?,
            malformed: n("malformed")?,
        },
        last_malformed: row.try_get("last_malformed")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// `details LIKE` pattern matching `text` literally.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn push_filters(q: &mut QueryBuilder<Sqlite>, f: &AuditFilter) {
    if let Some(t) = f.start_ms {
        q.push(" AND e.time_ms >= ").push_bind(t);
    }
    if let Some(t) = f.end_ms {
        q.push(" AND e.time_ms < ").push_bind(t);
    }
    if let Some(s) = f.after_sequence {
        q.push(" AND e.sequence > ").push_bind(s as i64);
    }
    match (&f.key_id, &f.key) {
        // A key the catalog knows: its id is on every event about it (an index range).
        (Some(id), _) => {
            q.push(" AND e.key_id = ").push_bind(id.clone());
        }
        (None, Some(k)) if k.contains("://") || k.starts_with("pkcs11:") => {
            q.push(" AND e.key_uri = ").push_bind(k.clone());
            q.push(" AND e.source <> 'gateway'");
        }
        (None, Some(k)) => {
            q.push(" AND (e.key_id = ").push_bind(k.clone());
            q.push(" OR (e.key_id = '' AND e.key_name = ")
                .push_bind(k.clone())
                .push("))");
        }
        (None, None) => {}
    }
    for (column, value) in [
        ("e.actor", &f.actor),
        ("e.action", &f.action),
        ("e.outcome", &f.outcome),
        ("e.source", &f.source),
    ] {
        if let Some(v) = value {
            q.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    if let Some(id) = &f.request_id {
        // The call's own id, any backend request id it got, or a provider record's own id.
        q.push(" AND e.sequence IN (SELECT sequence FROM audit_events WHERE request_id = ")
            .push_bind(id.clone())
            .push(
                " UNION ALL SELECT sequence FROM audit_provider_request_ids WHERE provider_request_id = ",
            )
            .push_bind(id.clone())
            .push(" UNION ALL SELECT sequence FROM audit_ingested WHERE provider_request_id = ")
            .push_bind(id.clone())
            .push(")");
    }
    if f.bypass {
        q.push(" AND i.bypass = 1");
    }
    if let Some(text) = &f.contains {
        q.push(" AND e.details LIKE ")
            .push_bind(like_pattern(text))
            .push(" ESCAPE '\\'");
    }
}

#[async_trait::async_trait]
impl AuditStore for SqliteAuditStore {
    async fn writer(&self) -> StoreResult<Box<dyn StoreWriter>> {
        // Both on connections of their own, so neither waits for a query's connection.
        let mut conn = self.db.acquire().await?.detach();
        // A commit blocked this long by another process's lock fails, so a call never waits
        // past its request timeout on the audit log; the gateway then refuses calls until
        // the store is writable again.
        sqlx::query("PRAGMA busy_timeout = 5000")
            .execute(&mut conn)
            .await?;
        let checkpoint_conn = self.db.acquire().await?.detach();
        let catch_up = wal::CatchUp::default();
        tokio::spawn(wal::run(checkpoint_conn, catch_up.clone()));
        Ok(Box::new(SqliteWriter { conn, catch_up }))
    }

    async fn head(&self) -> StoreResult<Option<(u64, String)>> {
        let row =
            sqlx::query("SELECT sequence, hash FROM audit_events ORDER BY sequence DESC LIMIT 1")
                .fetch_optional(&self.db)
                .await?;
        row.map(|r| Ok((r.try_get::<i64, _>("sequence")? as u64, r.try_get("hash")?)))
            .transpose()
    }

    async fn query(
        &self,
        filter: &AuditFilter,
        after: Option<After>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {LINKED_COLUMNS} FROM audit_events e \
             LEFT JOIN audit_ingested i ON i.sequence = e.sequence WHERE 1 = 1"
        ));
        push_filters(&mut q, filter);
        // Keyset paging on (time, sequence), either way: the range on time uses the index.
        let (from, beyond, order) = if filter.newest_first {
            (
                " AND e.time_ms <= ",
                "<",
                " ORDER BY e.time_ms DESC, e.sequence DESC LIMIT ",
            )
        } else {
            (
                " AND e.time_ms >= ",
                ">",
                " ORDER BY e.time_ms, e.sequence LIMIT ",
            )
        };
        if let Some(a) = after {
            q.push(from).push_bind(a.time_ms);
            q.push(format!(" AND (e.time_ms {beyond} "))
                .push_bind(a.time_ms)
                .push(format!(" OR e.sequence {beyond} "))
                .push_bind(a.sequence as i64)
                .push(")");
        }
        q.push(order).push_bind(i64::from(limit));
        q.build()
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn linked_to(&self, gateway_sequences: &[u64]) -> StoreResult<Vec<AuditEvent>> {
        let mut out = Vec::new();
        for chunk in gateway_sequences.chunks(MAX_IN) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "SELECT {LINKED_COLUMNS} FROM audit_ingested i \
                 JOIN audit_events e ON e.sequence = i.sequence WHERE i.gateway_sequence IN "
            ));
            q.push_tuples(chunk, |mut b, s| {
                b.push_bind(*s as i64);
            });
            q.push(" ORDER BY e.sequence");
            for row in q.build().fetch_all(&self.db).await? {
                out.push(event_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn page(&self, after: u64, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        // COLUMNS is a constant: nothing from outside enters the SQL text.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_events WHERE sequence > ? ORDER BY sequence LIMIT ?"
        )))
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    async fn hashes_at(&self, sequences: &[u64]) -> StoreResult<HashMap<u64, String>> {
        let mut out = HashMap::new();
        for chunk in sequences.chunks(MAX_IN) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT sequence, hash FROM audit_events WHERE sequence IN ");
            q.push_tuples(chunk, |mut b, s| {
                b.push_bind(*s as i64);
            });
            for row in q.build().fetch_all(&self.db).await? {
                out.insert(
                    row.try_get::<i64, _>("sequence")? as u64,
                    row.try_get("hash")?,
                );
            }
        }
        Ok(out)
    }

    async fn checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        sqlx::query("SELECT * FROM audit_checkpoints ORDER BY sequence")
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(checkpoint_from_row)
            .collect()
    }

    async fn unwitnessed(&self) -> StoreResult<Vec<Checkpoint>> {
        sqlx::query("SELECT * FROM audit_checkpoints WHERE witnessed = 0 ORDER BY sequence")
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(checkpoint_from_row)
            .collect()
    }

    async fn state(&self, name: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM audit_state WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.db)
            .await
    }

    async fn cursor(&self, feed: &str) -> StoreResult<Option<CursorRow>> {
        sqlx::query("SELECT * FROM audit_ingest_cursors WHERE feed = ?")
            .bind(feed)
            .fetch_optional(&self.db)
            .await?
            .as_ref()
            .map(cursor_from_row)
            .transpose()
    }

    async fn cursors(&self) -> StoreResult<Vec<CursorRow>> {
        sqlx::query("SELECT * FROM audit_ingest_cursors ORDER BY feed")
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(cursor_from_row)
            .collect()
    }

    async fn known_records(
        &self,
        source: &str,
        record_ids: &[String],
    ) -> StoreResult<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in record_ids.chunks(MAX_IN) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT record_id FROM audit_ingested WHERE source = ");
            q.push_bind(source.to_string()).push(" AND record_id IN ");
            q.push_tuples(chunk, |mut b, id| {
                b.push_bind(id.clone());
            });
            for row in q.build().fetch_all(&self.db).await? {
                found.insert(row.try_get::<String, _>("record_id")?);
            }
        }
        Ok(found)
    }

    async fn gateway_by_provider_request_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, GatewayRef>> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(MAX_IN) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT p.provider_request_id AS id, e.sequence, e.request_id \
                 FROM audit_provider_request_ids p JOIN audit_events e ON e.sequence = p.sequence \
                 WHERE p.provider_request_id IN ",
            );
            q.push_tuples(chunk, |mut b, id| {
                b.push_bind(id.clone());
            });
            q.push(" ORDER BY e.sequence");
            // The last (the outcome, for a change with an intent) wins.
            for r in q.build().fetch_all(&self.db).await? {
                found.insert(
                    r.try_get::<String, _>("id")?,
                    GatewayRef {
                        sequence: r.try_get::<i64, _>("sequence")? as u64,
                        request_id: r.try_get("request_id")?,
                    },
                );
            }
        }
        Ok(found)
    }

    async fn gateway_by_request_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, GatewayRef>> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(MAX_IN) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT sequence, request_id FROM audit_events WHERE source = 'gateway' \
                 AND request_id IN ",
            );
            q.push_tuples(chunk, |mut b, id| {
                b.push_bind(id.clone());
            });
            q.push(" ORDER BY sequence");
            for r in q.build().fetch_all(&self.db).await? {
                let request_id: String = r.try_get("request_id")?;
                found.insert(
                    request_id.clone(),
                    GatewayRef {
                        sequence: r.try_get::<i64, _>("sequence")? as u64,
                        request_id,
                    },
                );
            }
        }
        Ok(found)
    }

    async fn first_sequence(&self) -> StoreResult<Option<u64>> {
        let first: Option<i64> = sqlx::query_scalar("SELECT MIN(sequence) FROM audit_events")
            .fetch_one(&self.db)
            .await?;
        Ok(first.map(|s| s as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
