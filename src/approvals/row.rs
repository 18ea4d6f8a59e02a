//! An `approval_requests` row as the store reads it, and its decoding.

use super::request::{Approval, ApprovalRequest, PendingChange, RequestState};
use super::store::ApprovalError;

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, ApprovalError> {
    serde_json::to_string(value).map_err(|e| ApprovalError::Corrupt(e.to_string()))
}

/// An `approval_requests` row as the store's `columns!` selects it.
#[derive(sqlx::FromRow)]
pub(super) struct ApprovalRow {
    id: String,
    key_id: String,
    key_name: String,
    environment: String,
    change: String,
    digest: String,
    requester: String,
    request_call_id: String,
    quorum: i64,
    created_at_ms: i64,
    expires_at_ms: i64,
    state: String,
    approvals: String,
    closed_by: Option<String>,
    closed_at_ms: Option<i64>,
    outcome: Option<String>,
    execution_call_id: Option<String>,
}

pub(super) fn decode(row: ApprovalRow) -> Result<ApprovalRequest, ApprovalError> {
    let corrupt = |e: String| ApprovalError::Corrupt(e);
    let change: PendingChange =
        serde_json::from_str(&row.change).map_err(|e| corrupt(e.to_string()))?;
    let approvals: Vec<Approval> =
        serde_json::from_str(&row.approvals).map_err(|e| corrupt(e.to_string()))?;
    let state = &row.state;
    Ok(ApprovalRequest {
        state: RequestState::parse(state).ok_or_else(|| corrupt(format!("state '{state}'")))?,
        quorum: u32::try_from(row.quorum).map_err(|e| corrupt(e.to_string()))?,
        id: row.id,
        key_id: row.key_id,
        key_name: row.key_name,
        environment: row.environment,
        change,
        digest: row.digest,
        requester: row.requester,
        request_call_id: row.request_call_id,
        created_at_ms: row.created_at_ms,
        expires_at_ms: row.expires_at_ms,
        approvals,
        closed_by: row.closed_by,
        closed_at_ms: row.closed_at_ms,
        outcome: row.outcome,
        execution_call_id: row.execution_call_id,
    })
}
