//! SQL for the catalog tables.

use super::{KeyRecord, KeyState, VersionRecord};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::time::Duration;

fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

pub async fn load_all(db: &SqlitePool) -> Result<Vec<KeyRecord>, sqlx::Error> {
    let mut versions: HashMap<String, Vec<VersionRecord>> = HashMap::new();
    for row in sqlx::query(
        "SELECT key_id, version, provider_version, created_at_ms FROM key_versions ORDER BY key_id, version",
    )
    .fetch_all(db)
    .await?
    {
        versions
            .entry(row.try_get("key_id")?)
            .or_default()
            .push(VersionRecord {
                version: row.try_get::<i64, _>("version")? as u32,
                provider_version: row.try_get("provider_version")?,
                created_at_ms: row.try_get("created_at_ms")?,
            });
    }
    let rows = sqlx::query(
        "SELECT id, name, owner, purpose, environment, algorithm, provider, provider_uri, state,
                crypto_period_secs, created_at_ms, rotation_due_at_ms, destruction_at_ms, labels,
                retired_below, expires_at_ms, primary_version
         FROM keys",
    )
    .fetch_all(db)
    .await?;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let algorithm: String = row.try_get("algorithm")?;
        let purpose: String = row.try_get("purpose")?;
        let state: String = row.try_get("state")?;
        let labels: String = row.try_get("labels")?;
        let versions = versions.remove(&id).unwrap_or_default();
        if versions.is_empty() {
            return Err(corrupt(format!("key {id} has no versions")));
        }
        records.push(KeyRecord {
            name: row.try_get("name")?,
            owner: row.try_get("owner")?,
            purpose: purpose
                .parse()
                .map_err(|e: keygate_provider::UnknownAlgorithm| corrupt(e.0))?,
            environment: row.try_get("environment")?,
            algorithm: algorithm
                .parse()
                .map_err(|e: keygate_provider::UnknownAlgorithm| corrupt(e.0))?,
            provider: row.try_get("provider")?,
            provider_uri: keygate_provider::KeyUri::new(row.try_get::<String, _>("provider_uri")?),
            state: state.parse().map_err(corrupt)?,
            crypto_period: Duration::from_secs(row.try_get::<i64, _>("crypto_period_secs")? as u64),
            created_at_ms: row.try_get("created_at_ms")?,
            rotation_due_at_ms: row.try_get("rotation_due_at_ms")?,
            destruction_at_ms: row.try_get("destruction_at_ms")?,
            labels: serde_json::from_str(&labels)
                .map_err(|e| corrupt(format!("key {id} labels: {e}")))?,
            versions,
            retired_below: u32::try_from(row.try_get::<i64, _>("retired_below")?)
                .map_err(|_| corrupt(format!("key {id}: retired_below out of range")))?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            primary_version: row
                .try_get::<Option<i64>, _>("primary_version")?
                .map(|v| {
                    u32::try_from(v)
                        .map_err(|_| corrupt(format!("key {id}: primary_version out of range")))
                })
                .transpose()?,
            id,
        });
    }
    Ok(records)
}

pub async fn insert(db: &SqlitePool, r: &KeyRecord) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO keys (id, name, owner, purpose, environment, algorithm, provider, provider_uri,
                           state, crypto_period_secs, created_at_ms, rotation_due_at_ms,
                           destruction_at_ms, labels, retired_below, expires_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(r.crypto_period.as_secs() as i64)
    .bind(r.created_at_ms)
    .bind(r.rotation_due_at_ms)
    .bind(r.destruction_at_ms)
    .bind(serde_json::to_string(&r.labels).unwrap_or_else(|_| "{}".into()))
    .bind(i64::from(r.retired_below))
    .bind(r.expires_at_ms)
    .execute(&mut *tx)
    .await?;
    for v in &r.versions {
        insert_version(&mut tx, &r.id, v).await?;
    }
    tx.commit().await
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key_id: &str,
    v: &VersionRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO key_versions (key_id, version, provider_version, created_at_ms) VALUES (?, ?, ?, ?)",
    )
    .bind(key_id)
    .bind(i64::from(v.version))
    .bind(&v.provider_version)
    .bind(v.created_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn add_version(
    db: &SqlitePool,
    key_id: &str,
    v: &VersionRecord,
    rotation_due_at_ms: i64,
    primary_version: Option<u32>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    insert_version(&mut tx, key_id, v).await?;
    sqlx::query("UPDATE keys SET rotation_due_at_ms = ?, primary_version = ? WHERE id = ?")
        .bind(rotation_due_at_ms)
        .bind(primary_version.map(i64::from))
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Sets the state if the stored one is `expected`; returns whether a row changed.
pub async fn set_state(
    db: &SqlitePool,
    key_id: &str,
    expected: KeyState,
    state: KeyState,
    destruction_at_ms: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE keys SET state = ?, destruction_at_ms = ? WHERE id = ? AND state = ?")
            .bind(state.as_str())
            .bind(destruction_at_ms)
            .bind(key_id)
            .bind(expected.as_str())
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_owner(
    db: &SqlitePool,
    key_id: &str,
    expected: &str,
    owner: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE keys SET owner = ? WHERE id = ? AND owner = ?")
        .bind(owner)
        .bind(key_id)
        .bind(expected)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes the staged version the primary if `expected` still signs; returns whether a row
/// changed.
pub async fn promote(db: &SqlitePool, key_id: &str, expected: u32) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE keys SET primary_version = NULL WHERE id = ? AND primary_version = ?")
            .bind(key_id)
            .bind(i64::from(expected))
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Raises the retirement floor if the stored one is `expected`; returns whether a row changed.
pub async fn set_retired_below(
    db: &SqlitePool,
    key_id: &str,
    expected: u32,
    floor: u32,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE keys SET retired_below = ? WHERE id = ? AND retired_below = ?")
        .bind(i64::from(floor))
        .bind(key_id)
        .bind(i64::from(expected))
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
