//! One request for a critical action, from creation to its close.

use crate::policy::Action;
use serde::{Deserialize, Serialize};

/// What the action runs with once approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PendingChange {
    ScheduleDestruction { window_seconds: u64 },
    Disable,
    SetOwner { owner: String },
}

impl PendingChange {
    pub fn action(&self) -> Action {
        match self {
            PendingChange::ScheduleDestruction { .. } => Action::ScheduleKeyDestruction,
            PendingChange::Disable => Action::DisableKey,
            PendingChange::SetOwner { .. } => Action::SetKeyOwner,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    Pending,
    /// Approved by the quorum and carried out.
    Executed,
    /// Approved by the quorum; carrying it out failed (the outcome says why).
    Failed,
    Denied,
    Cancelled,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Executed => "executed",
            RequestState::Failed => "failed",
            RequestState::Denied => "denied",
            RequestState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            RequestState::Pending,
            RequestState::Executed,
            RequestState::Failed,
            RequestState::Denied,
            RequestState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub principal: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub id: String,
    pub key_id: String,
    pub key_name: String,
    pub environment: String,
    pub change: PendingChange,
    pub requester: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub state: RequestState,
    pub approvals: Vec<Approval>,
    pub closed_by: Option<String>,
    pub closed_at_ms: Option<i64>,
    pub outcome: Option<String>,
}

impl ApprovalRequest {
    pub fn action(&self) -> Action {
        self.change.action()
    }

    /// Pending and not past its expiry at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.state == RequestState::Pending && now_ms < self.expires_at_ms
    }

    /// `pending`, or `expired` for a pending request past its expiry.
    pub fn state_at(&self, now_ms: i64) -> &'static str {
        if self.state == RequestState::Pending && now_ms >= self.expires_at_ms {
            "expired"
        } else {
            self.state.as_str()
        }
    }

    pub fn approvers(&self) -> Vec<String> {
        self.approvals.iter().map(|a| a.principal.clone()).collect()
    }
}

/// The approvals an approved execution carries into authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub request_id: String,
    pub action: Action,
    pub key_id: String,
    pub requester: String,
    pub approvers: Vec<String>,
}
