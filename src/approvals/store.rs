//! Approval requests and destruction records in SQLite. Decisions on one request are
//! serialised (one writer at a time), so two approvals racing for the last place of a quorum
//! cannot both execute the action.

use super::request::{Approval, ApprovalRequest, PendingChange, RequestState};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval request with id '{0}'")]
    NotFound(String),
    #[error("approval request {id} is {state}: only a pending request can be decided")]
    Closed { id: String, state: String },
    #[error("{principal} already approved request {id}")]
    AlreadyApproved { id: String, principal: String },
    #[error("the requester {0} cannot approve or deny its own request")]
    SelfApproval(String),
    #[error("only the requester {requester} can cancel request {id}")]
    NotRequester { id: String, requester: String },
    #[error("approval store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("approval store: a stored request is unreadable: {0}")]
    Corrupt(String),
}

pub struct ApprovalStore {
    db: SqlitePool,
    decide: tokio::sync::Mutex<()>,
}

const COLUMNS: &str = "id, key_id, key_name, environment, change, requester, created_at_ms,
    expires_at_ms, state, approvals, closed_by, closed_at_ms, outcome";

impl ApprovalStore {
    pub fn new(db: SqlitePool) -> Self {
        Self {
            db,
            decide: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn create(&self, request: &ApprovalRequest) -> Result<(), ApprovalError> {
        let change = to_json(&request.change)?;
        sqlx::query(
            "INSERT INTO approval_requests (id, action, key_id, key_name, environment, change,
                requester, created_at_ms, expires_at_ms, state, approvals)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', '[]')",
        )
        .bind(&request.id)
        .bind(request.action().as_str())
        .bind(&request.key_id)
        .bind(&request.key_name)
        .bind(&request.environment)
        .bind(change)
        .bind(&request.requester)
        .bind(request.created_at_ms)
        .bind(request.expires_at_ms)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<ApprovalRequest, ApprovalError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM approval_requests WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        decode(&row)
    }

    /// Newest first; `pending_only` leaves out closed requests.
    pub async fn list(
        &self,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let filter = if pending_only {
            "WHERE state = 'pending'"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM approval_requests {filter} ORDER BY created_at_ms DESC, id DESC LIMIT ?"
        ))
        .bind(limit as i64)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Adds `principal`'s approval to the open request `id`, and returns it as it is now.
    /// The caller decides, under the same guard, whether the quorum is reached.
    pub async fn approve(
        &self,
        id: &str,
        principal: &str,
        now_ms: i64,
    ) -> Result<(ApprovalRequest, tokio::sync::MutexGuard<'_, ()>), ApprovalError> {
        let guard = self.decide.lock().await;
        let mut request = self.open_request(id, now_ms).await?;
        if request.requester == principal {
            return Err(ApprovalError::SelfApproval(principal.to_string()));
        }
        if request.approvals.iter().any(|a| a.principal == principal) {
            return Err(ApprovalError::AlreadyApproved {
                id: id.to_string(),
                principal: principal.to_string(),
            });
        }
        request.approvals.push(Approval {
            principal: principal.to_string(),
            at_ms: now_ms,
        });
        let approvals = to_json(&request.approvals)?;
        sqlx::query("UPDATE approval_requests SET approvals = ? WHERE id = ? AND state = 'pending'")
            .bind(approvals)
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok((request, guard))
    }

    /// Closes the open request `id` as `state` (denied, cancelled) by `principal`.
    pub async fn close(
        &self,
        id: &str,
        state: RequestState,
        principal: &str,
        outcome: &str,
        now_ms: i64,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let _guard = self.decide.lock().await;
        let request = self.open_request(id, now_ms).await?;
        match state {
            RequestState::Denied if request.requester == principal => {
                return Err(ApprovalError::SelfApproval(principal.to_string()));
            }
            RequestState::Cancelled if request.requester != principal => {
                return Err(ApprovalError::NotRequester {
                    id: id.to_string(),
                    requester: request.requester,
                });
            }
            _ => {}
        }
        self.finish(id, state, principal, outcome, now_ms).await?;
        self.get(id).await
    }

    /// Records how the approved request ended (executed or failed). Called under the guard
    /// [`Self::approve`] returned.
    pub async fn finish(
        &self,
        id: &str,
        state: RequestState,
        principal: &str,
        outcome: &str,
        now_ms: i64,
    ) -> Result<(), ApprovalError> {
        sqlx::query(
            "UPDATE approval_requests SET state = ?, closed_by = ?, closed_at_ms = ?, outcome = ?
             WHERE id = ? AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(principal)
        .bind(now_ms)
        .bind(outcome)
        .bind(id)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn open_request(&self, id: &str, now_ms: i64) -> Result<ApprovalRequest, ApprovalError> {
        let request = self.get(id).await?;
        if !request.is_open(now_ms) {
            return Err(ApprovalError::Closed {
                id: id.to_string(),
                state: request.state_at(now_ms).to_string(),
            });
        }
        Ok(request)
    }

    /// The newest executed destruction request for `key_id`: who asked and who approved.
    pub async fn destruction_approval(
        &self,
        key_id: &str,
    ) -> Result<Option<ApprovalRequest>, ApprovalError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM approval_requests
             WHERE key_id = ? AND action = 'ScheduleKeyDestruction' AND state = 'executed'
             ORDER BY closed_at_ms DESC LIMIT 1"
        ))
        .bind(key_id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    pub async fn record_destruction(&self, record: &DestructionRecord) -> Result<(), ApprovalError> {
        sqlx::query(
            "INSERT OR REPLACE INTO destruction_records (key_id, key_name, provider, provider_uri,
                versions, requested_by, approved_by, approval_id, scheduled_at_ms,
                destroyed_at_ms, method)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&record.key_id)
        .bind(&record.key_name)
        .bind(&record.provider)
        .bind(&record.provider_uri)
        .bind(to_json(&record.versions)?)
        .bind(&record.requested_by)
        .bind(to_json(&record.approved_by)?)
        .bind(&record.approval_id)
        .bind(record.scheduled_at_ms)
        .bind(record.destroyed_at_ms)
        .bind(&record.method)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    pub async fn destruction_record(
        &self,
        key_id: &str,
    ) -> Result<Option<DestructionRecord>, ApprovalError> {
        let Some(row) = sqlx::query(
            "SELECT key_id, key_name, provider, provider_uri, versions, requested_by, approved_by,
                    approval_id, scheduled_at_ms, destroyed_at_ms, method
             FROM destruction_records WHERE key_id = ?",
        )
        .bind(key_id)
        .fetch_optional(&self.db)
        .await?
        else {
            return Ok(None);
        };
        let parse = |column: &str| -> Result<serde_json::Value, ApprovalError> {
            let text: String = row.try_get(column)?;
            serde_json::from_str(&text).map_err(|e| ApprovalError::Corrupt(e.to_string()))
        };
        let versions = serde_json::from_value(parse("versions")?)
            .map_err(|e| ApprovalError::Corrupt(e.to_string()))?;
        let approved_by = serde_json::from_value(parse("approved_by")?)
            .map_err(|e| ApprovalError::Corrupt(e.to_string()))?;
        Ok(Some(DestructionRecord {
            key_id: row.try_get("key_id")?,
            key_name: row.try_get("key_name")?,
            provider: row.try_get("provider")?,
            provider_uri: row.try_get("provider_uri")?,
            versions,
            requested_by: row.try_get("requested_by")?,
            approved_by,
            approval_id: row.try_get("approval_id")?,
            scheduled_at_ms: row.try_get("scheduled_at_ms")?,
            destroyed_at_ms: row.try_get("destroyed_at_ms")?,
            method: row.try_get("method")?,
        }))
    }
}

/// Who asked for a key's destruction, who approved it, what was destroyed and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestructionRecord {
    pub key_id: String,
    pub key_name: String,
    pub provider: String,
    pub provider_uri: String,
    pub versions: Vec<u32>,
    pub requested_by: String,
    pub approved_by: Vec<String>,
    pub approval_id: Option<String>,
    pub scheduled_at_ms: Option<i64>,
    pub destroyed_at_ms: i64,
    pub method: String,
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, ApprovalError> {
    serde_json::to_string(value).map_err(|e| ApprovalError::Corrupt(e.to_string()))
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<ApprovalRequest, ApprovalError> {
    let corrupt = |e: String| ApprovalError::Corrupt(e);
    let change: String = row.try_get("change")?;
    let change: PendingChange = serde_json::from_str(&change).map_err(|e| corrupt(e.to_string()))?;
    let approvals: String = row.try_get("approvals")?;
    let approvals: Vec<Approval> =
        serde_json::from_str(&approvals).map_err(|e| corrupt(e.to_string()))?;
    let state: String = row.try_get("state")?;
    Ok(ApprovalRequest {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        key_name: row.try_get("key_name")?,
        environment: row.try_get("environment")?,
        change,
        requester: row.try_get("requester")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        state: RequestState::parse(&state).ok_or_else(|| corrupt(format!("state '{state}'")))?,
        approvals,
        closed_by: row.try_get("closed_by")?,
        closed_at_ms: row.try_get("closed_at_ms")?,
        outcome: row.try_get("outcome")?,
    })
}
