//! Destruction records: each scheduled destruction of a key from its scheduling (who asked,
//! who approved, the window) to its end (destroyed: when, which versions, how; or cancelled:
//! by whom). Kept after the key material is gone, as the evidence of a deliberate destruction.

use sqlx::{Row, SqlitePool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestructionRecord {
    /// The scheduling call's request id.
    pub id: String,
    pub key_id: String,
    pub key_name: String,
    pub environment: String,
    pub provider: String,
    pub provider_uri: String,
    pub requested_by: String,
    pub approval_id: Option<String>,
    pub approved_by: Vec<String>,
    pub window_seconds: u64,
    pub scheduled_at_ms: i64,
    pub destruction_at_ms: i64,
    /// scheduled | cancelled | destroyed
    pub state: String,
    pub cancelled_by: Option<String>,
    pub cancelled_at_ms: Option<i64>,
    pub destroyed_at_ms: Option<i64>,
    pub destroy_call_id: Option<String>,
    pub versions: Vec<u32>,
    pub method: Option<String>,
    /// The checks the scheduling ran through, in order.
    pub checklist: Vec<Check>,
    /// A BYOK family destroyed as a whole: each copy scheduled with the original (each also
    /// has a record of its own). Empty for a key destroyed alone.
    pub copies: Vec<CopyDestruction>,
}

/// A BYOK copy destroyed with its original: where it is and how it goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopyDestruction {
    pub key_id: String,
    pub key_name: String,
    pub provider: String,
    pub provider_kind: String,
    pub provider_uri: String,
    /// How the copy was imported (the wrap: rsa-aes-key-wrap-sha1, ...).
    pub import_method: String,
    /// How the copy is destroyed.
    pub method: String,
}

/// One item of the destruction checklist and what keygate found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub check: String,
    pub result: String,
}

impl Check {
    pub fn new(check: &str, result: impl Into<String>) -> Self {
        Check {
            check: check.into(),
            result: result.into(),
        }
    }
}

/// How a destruction ended.
pub enum Ending<'a> {
    Cancelled {
        by: &'a str,
        at_ms: i64,
    },
    Destroyed {
        at_ms: i64,
        call_id: &'a str,
        versions: &'a [u32],
        method: &'a str,
    },
}

pub struct DestructionRecords {
    db: SqlitePool,
}

macro_rules! columns {
    () => {
        "id, key_id, key_name, environment, provider, provider_uri, requested_by, approval_id,
         approved_by, window_seconds, scheduled_at_ms, destruction_at_ms, state, cancelled_by,
         cancelled_at_ms, destroyed_at_ms, destroy_call_id, versions, method, checklist, copies"
    };
}

impl DestructionRecords {
    pub fn new(db: SqlitePool) -> Self {
        Self { db }
    }

    pub async fn scheduled(&self, record: &DestructionRecord) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO destruction_records (id, key_id, key_name, environment, provider,
                provider_uri, requested_by, approval_id, approved_by, window_seconds,
                scheduled_at_ms, destruction_at_ms, state, checklist, copies)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'scheduled', ?, ?)",
        )
        .bind(&record.id)
        .bind(&record.key_id)
        .bind(&record.key_name)
        .bind(&record.environment)
        .bind(&record.provider)
        .bind(&record.provider_uri)
        .bind(&record.requested_by)
        .bind(&record.approval_id)
        .bind(serde_json::to_string(&record.approved_by).unwrap_or_else(|_| "[]".into()))
        .bind(i64::try_from(record.window_seconds).unwrap_or(i64::MAX))
        .bind(record.scheduled_at_ms)
        .bind(record.destruction_at_ms)
        .bind(serde_json::to_string(&record.checklist).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&record.copies).unwrap_or_else(|_| "[]".into()))
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Ends the key's open record (the newest still `scheduled`). A key scheduled before
    /// records were kept has none; its end is then recorded on its own, without the request.
    pub async fn ended(
        &self,
        key: &crate::catalog::KeyRecord,
        ending: Ending<'_>,
    ) -> Result<(), sqlx::Error> {
        let open: Option<String> = sqlx::query_scalar(
            "SELECT id FROM destruction_records WHERE key_id = ? AND state = 'scheduled'
             ORDER BY scheduled_at_ms DESC, id DESC LIMIT 1",
        )
        .bind(&key.id)
        .fetch_optional(&self.db)
        .await?;
        let id = match open {
            Some(id) => id,
            None => {
                let id = crate::gateway::new_request_id();
                self.scheduled(&DestructionRecord {
                    id: id.clone(),
                    key_id: key.id.clone(),
                    key_name: key.name.clone(),
                    environment: key.environment.clone(),
                    provider: key.provider.clone(),
                    provider_uri: key.provider_uri.to_string(),
                    requested_by: "(not recorded)".into(),
                    approval_id: None,
                    approved_by: Vec::new(),
                    window_seconds: 0,
                    scheduled_at_ms: 0,
                    destruction_at_ms: key.destruction_at_ms.unwrap_or_default(),
                    state: "scheduled".into(),
                    cancelled_by: None,
                    cancelled_at_ms: None,
                    destroyed_at_ms: None,
                    destroy_call_id: None,
                    versions: Vec::new(),
                    method: None,
                    checklist: Vec::new(),
                    copies: Vec::new(),
                })
                .await?;
                id
            }
        };
        match ending {
            Ending::Cancelled { by, at_ms } => {
                sqlx::query(
                    "UPDATE destruction_records SET state = 'cancelled', cancelled_by = ?,
                        cancelled_at_ms = ? WHERE id = ?",
                )
                .bind(by)
                .bind(at_ms)
                .bind(&id)
                .execute(&self.db)
                .await?;
            }
            Ending::Destroyed {
                at_ms,
                call_id,
                versions,
                method,
            } => {
                sqlx::query(
                    "UPDATE destruction_records SET state = 'destroyed', destroyed_at_ms = ?,
                        destroy_call_id = ?, versions = ?, method = ? WHERE id = ?",
                )
                .bind(at_ms)
                .bind(call_id)
                .bind(serde_json::to_string(versions).unwrap_or_else(|_| "[]".into()))
                .bind(method)
                .bind(&id)
                .execute(&self.db)
                .await?;
            }
        }
        Ok(())
    }

    /// The newest `limit` records of every key, newest first (the compliance report's
    /// destruction evidence).
    pub async fn newest(&self, limit: u32) -> Result<Vec<DestructionRecord>, sqlx::Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM destruction_records ORDER BY scheduled_at_ms DESC, id DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// A key's records, newest first.
    pub async fn for_key(&self, key_id: &str) -> Result<Vec<DestructionRecord>, sqlx::Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM destruction_records WHERE key_id = ? ORDER BY scheduled_at_ms DESC, id DESC"
        ))
        .bind(key_id)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(decode).collect()
    }
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<DestructionRecord, sqlx::Error> {
    let json = |column: &str| -> Result<Option<String>, sqlx::Error> { row.try_get(column) };
    let corrupt = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    let approved_by =
        serde_json::from_str(&json("approved_by")?.unwrap_or_default()).map_err(corrupt)?;
    let versions = match json("versions")? {
        Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
        None => Vec::new(),
    };
    let checklist = match json("checklist")? {
        Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
        None => Vec::new(),
    };
    let copies = match json("copies")? {
        Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
        None => Vec::new(),
    };
    let window: i64 = row.try_get("window_seconds")?;
    Ok(DestructionRecord {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        key_name: row.try_get("key_name")?,
        environment: row.try_get("environment")?,
        provider: row.try_get("provider")?,
        provider_uri: row.try_get("provider_uri")?,
        requested_by: row.try_get("requested_by")?,
        approval_id: row.try_get("approval_id")?,
        approved_by,
        window_seconds: u64::try_from(window).unwrap_or_default(),
        scheduled_at_ms: row.try_get("scheduled_at_ms")?,
        destruction_at_ms: row.try_get("destruction_at_ms")?,
        state: row.try_get("state")?,
        cancelled_by: row.try_get("cancelled_by")?,
        cancelled_at_ms: row.try_get("cancelled_at_ms")?,
        destroyed_at_ms: row.try_get("destroyed_at_ms")?,
        destroy_call_id: row.try_get("destroy_call_id")?,
        versions,
        method: row.try_get("method")?,
        checklist,
        copies,
    })
}
