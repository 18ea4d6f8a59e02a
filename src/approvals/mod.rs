//! Quorum approvals for critical actions (split knowledge, separation of duties).
//!
//! A critical action (configuration: `[approvals] critical`) whose policies answer
//! NeedsApproval does not run: the call stores a pending request with the action's
//! parameters and answers with its id. Approvers (role `approver`, of the key's
//! environment, never the requester) approve or deny it through `ApprovalService`; the
//! approval that completes the quorum runs the action through the same runner as any call,
//! authorized again for the requester with the approvals as Cedar context. Every step is an
//! audit event naming the request.

mod request;
mod settings;
mod store;

pub use request::{Approval, ApprovalRequest, Grant, PendingChange, RequestState};
pub use settings::{APPROVABLE, ApprovalSettings, Critical};
pub use store::{ApprovalError, ApprovalStore, DestructionRecord};
