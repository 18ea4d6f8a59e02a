//! The audit log in SQL, on either database: reads, and the writer each database needs
//! (SQLite: the one process's writer; PostgreSQL: each replica's writer, all on one chain).
//! The SQL is written once (`$1…` placeholders, `ON CONFLICT`), in [`write`] for the writers.

mod rows;
pub(super) mod write;

use super::{
    After, AuditStore, Checkpoint, CursorRow, GatewayRef, StoreResult, StoreWriter, WriteResult,
};
use crate::audit::event::AuditEvent;
use crate::audit::filter::AuditFilter;
use crate::db::Db;
use crate::on_db;
use sqlx::{Database, Encode, QueryBuilder, Row, Type};
use std::collections::{HashMap, HashSet};

pub(super) const COLUMNS: &str = "sequence, time_ms, source, actor, action, key_id, key_name, \
    key_version, outcome, reason, policy, request_id, provider_request_id, client_address, \
    details, previous_hash, hash, format, actor_kind, error_reason, caller_gone, key_uri";

/// [`COLUMNS`] of `audit_events e`, with the ingested record's link beside them.
const LINKED_COLUMNS: &str = "e.sequence, e.time_ms, e.source, e.actor, e.action, e.key_id, \
    e.key_name, e.key_version, e.outcome, e.reason, e.policy, e.request_id, \
    e.provider_request_id, e.client_address, e.details, e.previous_hash, e.hash, e.format, \
    e.actor_kind, e.error_reason, e.caller_gone, e.key_uri, i.feed AS link_feed, \
    i.gateway_sequence AS link_gateway, i.bypass AS link_bypass";

/// Rows per INSERT: 22 bound columns × 1024 stays under SQLite's 32766-variable limit (and
/// PostgreSQL's 65535).
pub const MAX_ROWS: usize = 1024;

/// Ids per `IN (…)` list.
const MAX_IN: usize = 500;

#[derive(Clone)]
pub struct SqlAuditStore {
    db: Db,
}

impl SqlAuditStore {
    pub fn new(db: impl Into<Db>) -> Self {
        Self { db: db.into() }
    }
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

fn push_filters<D>(q: &mut QueryBuilder<D>, f: &AuditFilter)
where
    D: Database,
    for<'t> i64: Encode<'t, D> + Type<D>,
    for<'t> String: Encode<'t, D> + Type<D>,
{
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
impl AuditStore for SqlAuditStore {
    fn shared(&self) -> bool {
        self.db.is_postgres()
    }

    async fn writer(&self) -> WriteResult<Box<dyn StoreWriter>> {
        match &self.db {
            Db::Sqlite(pool) => super::sqlite::writer(pool).await,
            Db::Postgres(pool) => super::postgres::writer(pool).await,
        }
    }

    async fn head(&self) -> StoreResult<Option<(u64, String)>> {
        on_db!(&self.db, |pool| {
            let row = sqlx::query(
                "SELECT sequence, hash FROM audit_events ORDER BY sequence DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            row.map(|r| Ok((r.try_get::<i64, _>("sequence")? as u64, r.try_get("hash")?)))
                .transpose()
        })
    }

    async fn query(
        &self,
        filter: &AuditFilter,
        after: Option<After>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        on_db!(&self.db, |pool, D| {
            let mut q: QueryBuilder<D> = QueryBuilder::new(format!(
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
                .fetch_all(pool)
                .await?
                .iter()
                .map(rows::event)
                .collect()
        })
    }

    async fn linked_to(
        &self,
        gateway_sequences: &[u64],
        provider_request_ids: &[String],
    ) -> StoreResult<Vec<AuditEvent>> {
        on_db!(&self.db, |pool, D| {
            let mut out: Vec<AuditEvent> = Vec::new();
            for chunk in gateway_sequences.chunks(MAX_IN) {
                let mut q: QueryBuilder<D> = QueryBuilder::new(format!(
                    "SELECT {LINKED_COLUMNS} FROM audit_ingested i \
                     JOIN audit_events e ON e.sequence = i.sequence WHERE i.gateway_sequence IN "
                ));
                q.push_tuples(chunk, |mut b, s| {
                    b.push_bind(*s as i64);
                });
                for row in q.build().fetch_all(pool).await? {
                    out.push(rows::event(&row)?);
                }
            }
            // Records of requests several calls shared (a batch request of the guard's
            // coalescing): linked to one call, found by the request id for the others.
            for chunk in provider_request_ids.chunks(MAX_IN) {
                let mut q: QueryBuilder<D> = QueryBuilder::new(format!(
                    "SELECT {LINKED_COLUMNS} FROM audit_ingested i \
                     JOIN audit_events e ON e.sequence = i.sequence \
                     WHERE i.gateway_sequence IS NOT NULL AND i.provider_request_id IN "
                ));
                q.push_tuples(chunk, |mut b, id| {
                    b.push_bind(id.clone());
                });
                for row in q.build().fetch_all(pool).await? {
                    out.push(rows::event(&row)?);
                }
            }
            out.sort_by_key(|e| e.sequence);
            out.dedup_by_key(|e| e.sequence);
            Ok(out)
        })
    }

    async fn page(&self, after: u64, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        on_db!(&self.db, |pool| {
            // COLUMNS is a constant: nothing from outside enters the SQL text.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LINKED_COLUMNS} FROM audit_events e \
                 LEFT JOIN audit_ingested i ON i.sequence = e.sequence \
                 WHERE e.sequence > $1 ORDER BY e.sequence LIMIT $2"
            )))
            .bind(after as i64)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::event)
            .collect()
        })
    }

    async fn hashes_at(&self, sequences: &[u64]) -> StoreResult<HashMap<u64, String>> {
        on_db!(&self.db, |pool, D| {
            let mut out = HashMap::new();
            for chunk in sequences.chunks(MAX_IN) {
                let mut q: QueryBuilder<D> =
                    QueryBuilder::new("SELECT sequence, hash FROM audit_events WHERE sequence IN ");
                q.push_tuples(chunk, |mut b, s| {
                    b.push_bind(*s as i64);
                });
                for row in q.build().fetch_all(pool).await? {
                    out.insert(
                        row.try_get::<i64, _>("sequence")? as u64,
                        row.try_get("hash")?,
                    );
                }
            }
            Ok(out)
        })
    }

    async fn checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        on_db!(&self.db, |pool| {
            sqlx::query("SELECT * FROM audit_checkpoints ORDER BY sequence")
                .fetch_all(pool)
                .await?
                .iter()
                .map(rows::checkpoint)
                .collect()
        })
    }

    async fn unwitnessed(&self) -> StoreResult<Vec<Checkpoint>> {
        on_db!(&self.db, |pool| {
            sqlx::query("SELECT * FROM audit_checkpoints WHERE witnessed = 0 ORDER BY sequence")
                .fetch_all(pool)
                .await?
                .iter()
                .map(rows::checkpoint)
                .collect()
        })
    }

    async fn state(&self, name: &str) -> StoreResult<Option<String>> {
        on_db!(&self.db, |pool| {
            sqlx::query_scalar("SELECT value FROM audit_state WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })
    }

    async fn cursor(&self, feed: &str) -> StoreResult<Option<CursorRow>> {
        on_db!(&self.db, |pool| {
            sqlx::query("SELECT * FROM audit_ingest_cursors WHERE feed = $1")
                .bind(feed)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(rows::cursor)
                .transpose()
        })
    }

    async fn cursors(&self) -> StoreResult<Vec<CursorRow>> {
        on_db!(&self.db, |pool| {
            sqlx::query("SELECT * FROM audit_ingest_cursors ORDER BY feed")
                .fetch_all(pool)
                .await?
                .iter()
                .map(rows::cursor)
                .collect()
        })
    }

    async fn known_records(
        &self,
        source: &str,
        record_ids: &[String],
    ) -> StoreResult<HashSet<String>> {
        on_db!(&self.db, |pool, D| {
            let mut found = HashSet::new();
            for chunk in record_ids.chunks(MAX_IN) {
                let mut q: QueryBuilder<D> =
                    QueryBuilder::new("SELECT record_id FROM audit_ingested WHERE source = ");
                q.push_bind(source.to_string()).push(" AND record_id IN ");
                q.push_tuples(chunk, |mut b, id| {
                    b.push_bind(id.clone());
                });
                for row in q.build().fetch_all(pool).await? {
                    found.insert(row.try_get::<String, _>("record_id")?);
                }
            }
            Ok(found)
        })
    }

    async fn gateway_by_provider_request_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, GatewayRef>> {
        on_db!(&self.db, |pool, D| {
            let mut found = HashMap::new();
            for chunk in ids.chunks(MAX_IN) {
                let mut q: QueryBuilder<D> = QueryBuilder::new(
                    "SELECT p.provider_request_id AS id, e.sequence, e.request_id \
                     FROM audit_provider_request_ids p JOIN audit_events e ON e.sequence = p.sequence \
                     WHERE p.provider_request_id IN ",
                );
                q.push_tuples(chunk, |mut b, id| {
                    b.push_bind(id.clone());
                });
                q.push(" ORDER BY e.sequence");
                // The last (the outcome, for a change with an intent) wins.
                for r in q.build().fetch_all(pool).await? {
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
        })
    }

    async fn gateway_by_request_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, GatewayRef>> {
        on_db!(&self.db, |pool, D| {
            let mut found = HashMap::new();
            for chunk in ids.chunks(MAX_IN) {
                let mut q: QueryBuilder<D> = QueryBuilder::new(
                    "SELECT sequence, request_id FROM audit_events WHERE source = 'gateway' \
                     AND request_id IN ",
                );
                q.push_tuples(chunk, |mut b, id| {
                    b.push_bind(id.clone());
                });
                q.push(" ORDER BY sequence");
                for r in q.build().fetch_all(pool).await? {
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
        })
    }

    async fn first_sequence(&self) -> StoreResult<Option<u64>> {
        on_db!(&self.db, |pool| {
            let first: Option<i64> = sqlx::query_scalar("SELECT MIN(sequence) FROM audit_events")
                .fetch_one(pool)
                .await?;
            Ok(first.map(|s| s as u64))
        })
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
