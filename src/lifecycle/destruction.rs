//! Destruction records: each scheduled destruction of a key from its scheduling (who asked,
//! who approved, the window) to its end (destroyed: when, which versions, how; or cancelled:
//! by whom). Kept after the key material is gone, as the evidence of a deliberate destruction.

use crate::db::Db;
use crate::on_db;

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
    db: Db,
}

macro_rules! columns {
    () => {
        "id, key_id, key_name, environment, provider, provider_uri, requested_by, approval_id,
         approved_by, window_seconds, scheduled_at_ms, destruction_at_ms, state, cancelled_by,
         cancelled_at_ms, destroyed_at_ms, destroy_call_id, versions, method, checklist, copies"
    };
}

impl DestructionRecords {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn scheduled(&self, record: &DestructionRecord) -> Result<(), sqlx::Error> {
        let approved_by =
            serde_json::to_string(&record.approved_by).unwrap_or_else(|_| "[]".into());
        let checklist = serde_json::to_string(&record.checklist).unwrap_or_else(|_| "[]".into());
        let copies = serde_json::to_string(&record.copies).unwrap_or_else(|_| "[]".into());
        on_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO destruction_records (id, key_id, key_name, environment, provider,
                    provider_uri, requested_by, approval_id, approved_by, window_seconds,
                    scheduled_at_ms, destruction_at_ms, state, checklist, copies)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'scheduled', $13,
                         $14)",
            )
            .bind(&record.id)
            .bind(&record.key_id)
            .bind(&record.key_name)
            .bind(&record.environment)
            .bind(&record.provider)
            .bind(&record.provider_uri)
            .bind(&record.requested_by)
            .bind(&record.approval_id)
            .bind(&approved_by)
            .bind(i64::try_from(record.window_seconds).unwrap_or(i64::MAX))
            .bind(record.scheduled_at_ms)
            .bind(record.destruction_at_ms)
            .bind(&checklist)
            .bind(&copies)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Ends the key's open record (the newest still `scheduled`). A key scheduled before
    /// records were kept has none; its end is then recorded on its own, without the request.
    pub async fn ended(
        &self,
        key: &crate::catalog::KeyRecord,
        ending: Ending<'_>,
    ) -> Result<(), sqlx::Error> {
        let open: Option<String> = on_db!(&self.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM destruction_records WHERE key_id = $1 AND state = 'scheduled'
                 ORDER BY scheduled_at_ms DESC, id DESC LIMIT 1",
            )
            .bind(&key.id)
            .fetch_optional(pool)
            .await?
        });
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
            Ending::Cancelled { by, at_ms } => on_db!(&self.db, |pool| {
                sqlx::query(
                    "UPDATE destruction_records SET state = 'cancelled', cancelled_by = $1,
                        cancelled_at_ms = $2 WHERE id = $3",
                )
                .bind(by)
                .bind(at_ms)
                .bind(&id)
                .execute(pool)
                .await?;
            }),
            Ending::Destroyed {
                at_ms,
                call_id,
                versions,
                method,
            } => {
                let versions = serde_json::to_string(versions).unwrap_or_else(|_| "[]".into());
                on_db!(&self.db, |pool| {
                    sqlx::query(
                        "UPDATE destruction_records SET state = 'destroyed',
                            destroyed_at_ms = $1, destroy_call_id = $2, versions = $3,
                            method = $4 WHERE id = $5",
                    )
                    .bind(at_ms)
                    .bind(call_id)
                    .bind(&versions)
                    .bind(method)
                    .bind(&id)
                    .execute(pool)
                    .await?;
                })
            }
        }
        Ok(())
    }

    /// The newest `limit` records of every key, newest first (the compliance report's
    /// destruction evidence).
    pub async fn newest(&self, limit: u32) -> Result<Vec<DestructionRecord>, sqlx::Error> {
        let rows: Vec<DestructionRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM destruction_records ORDER BY scheduled_at_ms DESC, id DESC LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(decode).collect()
    }

    /// A key's records, newest first.
    pub async fn for_key(&self, key_id: &str) -> Result<Vec<DestructionRecord>, sqlx::Error> {
        let rows: Vec<DestructionRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM destruction_records WHERE key_id = $1
                  ORDER BY scheduled_at_ms DESC, id DESC"
            ))
            .bind(key_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(decode).collect()
    }
}

/// A `destruction_records` row as [`columns!`] selects it; the lists are JSON text, NULL in
/// records kept before their column existed.
#[derive(sqlx::FromRow)]
struct DestructionRow {
    id: String,
    key_id: String,
    key_name: String,
    environment: String,
    provider: String,
    provider_uri: String,
    requested_by: String,
    approval_id: Option<String>,
    approved_by: String,
    window_seconds: i64,
    scheduled_at_ms: i64,
    destruction_at_ms: i64,
    state: String,
    cancelled_by: Option<String>,
    cancelled_at_ms: Option<i64>,
    destroyed_at_ms: Option<i64>,
    destroy_call_id: Option<String>,
    versions: Option<String>,
    method: Option<String>,
    checklist: Option<String>,
    copies: Option<String>,
}

/// A JSON list column: empty when NULL.
fn json_list<T: serde::de::DeserializeOwned>(text: Option<String>) -> Result<Vec<T>, sqlx::Error> {
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e))),
        None => Ok(Vec::new()),
    }
}

fn decode(row: DestructionRow) -> Result<DestructionRecord, sqlx::Error> {
    Ok(DestructionRecord {
        id: row.id,
        key_id: row.key_id,
        key_name: row.key_name,
        environment: row.environment,
        provider: row.provider,
        provider_uri: row.provider_uri,
        requested_by: row.requested_by,
        approval_id: row.approval_id,
        approved_by: json_list(Some(row.approved_by))?,
        window_seconds: u64::try_from(row.window_seconds).unwrap_or_default(),
        scheduled_at_ms: row.scheduled_at_ms,
        destruction_at_ms: row.destruction_at_ms,
        state: row.state,
        cancelled_by: row.cancelled_by,
        cancelled_at_ms: row.cancelled_at_ms,
        destroyed_at_ms: row.destroyed_at_ms,
        destroy_call_id: row.destroy_call_id,
        versions: json_list(row.versions)?,
        method: row.method,
        checklist: json_list(row.checklist)?,
        copies: json_list(row.copies)?,
    })
}
