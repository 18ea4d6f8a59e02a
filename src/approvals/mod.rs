//! Quorum approvals for critical actions (split knowledge, separation of duties).
//!
//! A critical action (configuration: `[approvals] critical`) whose policies answer
//! NeedsApproval does not run: the runner stores a pending request holding the exact change
//! ([`PendingChange`], bound to its key, action and requester by a digest) and the call
//! answers with the request's id. Approvers (role `approver`, of the key's environment,
//! never the requester) approve or deny it through `ApprovalService`, each decision a call of
//! its own through the runner. The approval that completes the quorum releases a [`Grant`],
//! and the change runs through `Gateway::run` like any call, for its requester, authorized
//! again with the approvals in the policy context; its outcome closes the request.
//!
//! # Adding a kind of pending change
//! 1. a variant of [`PendingChange`] with the parameters the change runs with, and its action
//!    in [`PendingChange::action`] and words in [`PendingChange::describe`];
//! 2. the action in [`APPROVABLE`] (so configuration may mark it critical);
//! 3. the operation's `Operation::pending_change` returns the variant (the runner refuses to
//!    open a request for an operation that returns `None`);
//! 4. one arm in `Gateway::execute_approved` (src/gateway/approved.rs) that builds the
//!    operation back from the variant.
//!
//! A request is about one key, by id. An adoption's key is not in the catalog while it
//! waits: its request reserves the id the adopted key gets ([`PendingChange::reserves_key_id`]),
//! names it by the name asked for, and is decided on the key as the adoption would create it.

mod request;
mod row;
mod settings;
mod store;

pub use request::{Approval, ApprovalRequest, Grant, PendingChange, RequestState};
pub use settings::{ALWAYS_CRITICAL, APPROVABLE, ApprovalSettings, Critical, DEFAULT_CRITICAL};
pub use store::{ApprovalError, ApprovalStore, Approved, ListFilter};
