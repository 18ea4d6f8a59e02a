//! SQL for the catalog tables, one text for SQLite and PostgreSQL (see [`crate::db::Db`]).

use super::{KeyRecord, KeyState, VersionRecord};
use crate::db::Db;
use crate::on_db;
use std::collections::HashMap;
use std::time::Duration;

fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

/// A `keys` row as stored: only types both databases decode alike.
#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    owner: String,
    purpose: String,
    environment: String,
    algorithm: String,
    provider: String,
    provider_uri: String,
    state: String,
    crypto_period_secs: i64,
    created_at_ms: i64,
    rotation_due_at_ms: i64,
    destruction_at_ms: Option<i64>,
    labels: String,
    retired_below: i64,
    expires_at_ms: Option<i64>,
    primary_version: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    key_id: String,
    version: i64,
    provider_version: String,
    created_at_ms: i64,
}

/// A version number as stored (BIGINT) back to the `u32` keygate counts in.
fn version_number(id: &str, what: &str, stored: i64) -> Result<u32, sqlx::Error> {
    u32::try_from(stored).map_err(|_| corrupt(format!("key {id}: {what} {stored} out of range")))
}

pub async fn load_all(db: &Db) -> Result<Vec<KeyRecord>, sqlx::Error> {
    load(db, None).await
}

/// One key as stored now; `None` if it is not in the database.
pub async fn load_one(db: &Db, id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    Ok(load(db, Some(id)).await?.pop())
}

/// Every key, or only `only`. Both tables are read in one transaction, so a key and its
/// versions come from one moment even while other replicas write (PostgreSQL's default
/// isolation would give each statement its own snapshot; SQLite's read transaction is one).
async fn load(db: &Db, only: Option<&str>) -> Result<Vec<KeyRecord>, sqlx::Error> {
    let postgres = db.is_postgres();
    let (version_rows, key_rows) = on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        if postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let versions: Vec<VersionRow> = sqlx::query_as(
            "SELECT key_id, version, provider_version, created_at_ms FROM key_versions
             WHERE $1 IS NULL OR key_id = $1 ORDER BY key_id, version",
        )
        .bind(only)
        .fetch_all(&mut *tx)
        .await?;
        let keys: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, name, owner, purpose, environment, algorithm, provider, provider_uri,
                    state, crypto_period_secs, created_at_ms, rotation_due_at_ms,
                    destruction_at_ms, labels, retired_below, expires_at_ms, primary_version
             FROM keys WHERE $1 IS NULL OR id = $1",
        )
        .bind(only)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        (versions, keys)
    });
    let mut versions: HashMap<String, Vec<VersionRecord>> = HashMap::new();
    for row in version_rows {
        let version = version_number(&row.key_id, "version", row.version)?;
        versions.entry(row.key_id).or_default().push(VersionRecord {
            version,
            provider_version: row.provider_version,
            created_at_ms: row.created_at_ms,
        });
    }
    let mut records = Vec::with_capacity(key_rows.len());
    for row in key_rows {
        let id = row.id;
        let versions = versions.remove(&id).unwrap_or_default();
        if versions.is_empty() {
            return Err(corrupt(format!("key {id} has no versions")));
        }
        let crypto_period_secs = u64::try_from(row.crypto_period_secs)
            .map_err(|_| corrupt(format!("key {id}: negative crypto-period")))?;
        records.push(KeyRecord {
            name: row.name,
            owner: row.owner,
            purpose: row
                .purpose
                .parse()
                .map_err(|e: keygate_provider::UnknownAlgorithm| corrupt(e.0))?,
            environment: row.environment,
            algorithm: row
                .algorithm
                .parse()
                .map_err(|e: keygate_provider::UnknownAlgorithm| corrupt(e.0))?,
            provider: row.provider,
            provider_uri: keygate_provider::KeyUri::new(row.provider_uri),
            state: row.state.parse().map_err(corrupt)?,
            crypto_period: Duration::from_secs(crypto_period_secs),
            created_at_ms: row.created_at_ms,
            rotation_due_at_ms: row.rotation_due_at_ms,
            destruction_at_ms: row.destruction_at_ms,
            labels: serde_json::from_str(&row.labels)
                .map_err(|e| corrupt(format!("key {id} labels: {e}")))?,
            versions,
            retired_below: version_number(&id, "retired_below", row.retired_below)?,
            expires_at_ms: row.expires_at_ms,
            primary_version: row
                .primary_version
                .map(|v| version_number(&id, "primary_version", v))
                .transpose()?,
            id,
        });
    }
    Ok(records)
}

/// Adds one `key_versions` row inside the transaction `$tx` (a macro: the transaction's type
/// differs per database).
macro_rules! insert_version {
    ($tx:expr, $key_id:expr, $v:expr) => {
        sqlx::query(
            "INSERT INTO key_versions (key_id, version, provider_version, created_at_ms)
             VALUES ($1, $2, $3, $4)",
        )
        .bind($key_id)
        .bind(i64::from($v.version))
        .bind(&$v.provider_version)
        .bind($v.created_at_ms)
        .execute(&mut *$tx)
        .await
    };
}

pub async fn insert(db: &Db, r: &KeyRecord) -> Result<(), sqlx::Error> {
    let labels = serde_json::to_string(&r.labels).unwrap_or_else(|_| "{}".into());
    let crypto_period_secs = i64::try_from(r.crypto_period.as_secs()).unwrap_or(i64::MAX);
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO keys (id, name, owner, purpose, environment, algorithm, provider,
                               provider_uri, state, crypto_period_secs, created_at_ms,
                               rotation_due_at_ms, destruction_at_ms, labels, retired_below,
                               expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&r.id)
        .bind(&r.name)
        .bind(&r.owner)
        .bind(r.purpose.as_str())
        .bind(&r.environment)
        .bind(r.algorithm.as_str())
        .bind(&r.provider)
        .bind(r.provider_uri.as_str())
        .bind(r.state.as_str())
        .bind(crypto_period_secs)
        .bind(r.created_at_ms)
        .bind(r.rotation_due_at_ms)
        .bind(r.destruction_at_ms)
        .bind(&labels)
        .bind(i64::from(r.retired_below))
        .bind(r.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        for v in &r.versions {
            insert_version!(tx, &r.id, v)?;
        }
        tx.commit().await
    })
}

pub async fn add_version(
    db: &Db,
    key_id: &str,
    v: &VersionRecord,
    rotation_due_at_ms: i64,
    primary_version: Option<u32>,
) -> Result<(), sqlx::Error> {
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        insert_version!(tx, key_id, v)?;
        sqlx::query("UPDATE keys SET rotation_due_at_ms = $1, primary_version = $2 WHERE id = $3")
            .bind(rotation_due_at_ms)
            .bind(primary_version.map(i64::from))
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
}

/// Sets the state if the stored one is `expected`; returns whether a row changed.
pub async fn set_state(
    db: &Db,
    key_id: &str,
    expected: KeyState,
    state: KeyState,
    destruction_at_ms: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = on_db!(db, |pool| {
        sqlx::query(
            "UPDATE keys SET state = $1, destruction_at_ms = $2 WHERE id = $3 AND state = $4",
        )
        .bind(state.as_str())
        .bind(destruction_at_ms)
        .bind(key_id)
        .bind(expected.as_str())
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

pub async fn set_owner(
    db: &Db,
    key_id: &str,
    expected: &str,
    owner: &str,
) -> Result<bool, sqlx::Error> {
    let done = on_db!(db, |pool| {
        sqlx::query("UPDATE keys SET owner = $1 WHERE id = $2 AND owner = $3")
            .bind(owner)
            .bind(key_id)
            .bind(expected)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Makes the staged version the primary if `expected` still signs; returns whether a row
/// changed.
pub async fn promote(db: &Db, key_id: &str, expected: u32) -> Result<bool, sqlx::Error> {
    let done = on_db!(db, |pool| {
        sqlx::query("UPDATE keys SET primary_version = NULL WHERE id = $1 AND primary_version = $2")
            .bind(key_id)
            .bind(i64::from(expected))
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Raises the retirement floor if the stored one is `expected`; returns whether a row changed.
pub async fn set_retired_below(
    db: &Db,
    key_id: &str,
    expected: u32,
    floor: u32,
) -> Result<bool, sqlx::Error> {
    let done = on_db!(db, |pool| {
        sqlx::query("UPDATE keys SET retired_below = $1 WHERE id = $2 AND retired_below = $3")
            .bind(i64::from(floor))
            .bind(key_id)
            .bind(i64::from(expected))
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}
