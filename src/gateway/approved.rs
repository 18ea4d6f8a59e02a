//! Deciding on an approval request, and carrying out the change a quorum released.
//!
//! An approval is a call of its own (DecideOnRequest). The one that completes the quorum
//! gets a [`Grant`]; the change then runs through [`Gateway::run`] like any call, for its
//! requester (who stays its actor), under the request id the grant names: policy is checked
//! again with the approvals as context, the key is locked, and intent and outcome events are
//! written, both naming the request and its approvers. Both steps run to their end even if
//! the approver's client leaves between them, and the runner records how the change ended
//! in the request.

use super::ops::{
    AdoptKey, CreateKey, DecideOnRequest, Decided, DurationInput, RetireKeyVersions,
    ScheduleKeyDestruction, SetKeyEnabled, SetKeyOwner,
};
use super::runner::{Presence, RunToEnd};
use super::{Call, Credentials, Gateway, GatewayError};
use crate::approvals::{ApprovalRequest, Grant, PendingChange, RequestState};
use std::sync::Arc;

impl Gateway {
    /// Approves or denies a request; an approval that completes the quorum also carries the
    /// change out. Returns the request as it is afterwards (executed or failed, with the
    /// execution's request id and outcome).
    pub async fn decide_on_request(
        self: &Arc<Self>,
        call: Call,
        op: DecideOnRequest,
    ) -> Result<ApprovalRequest, GatewayError> {
        let gateway = self.clone();
        let work = async move {
            let client_address = call.client_address.clone();
            let Decided { request, grant } = gateway.run(call, op).await?;
            let Some(grant) = grant else {
                return Ok(request);
            };
            let id = grant.request_id.clone();
            let execution = gateway.execute_approved(grant, client_address).await;
            // The runner recorded the outcome in the request; read it back.
            match gateway.approval_store().get(&id).await {
                Ok(request) => Ok(request),
                Err(e) => {
                    tracing::warn!(approval_id = %id, error = %e, "cannot read the request back");
                    let mut request = request;
                    request.state = if execution.is_ok() {
                        RequestState::Executed
                    } else {
                        RequestState::Failed
                    };
                    Ok(request)
                }
            }
        };
        RunToEnd::new(work, Presence::default(), self.detached().clone()).await
    }

    /// Runs the change `grant` released, for its requester.
    async fn execute_approved(
        self: &Arc<Self>,
        grant: Grant,
        client_address: String,
    ) -> Result<(), GatewayError> {
        let key = grant.key_id.clone();
        let change = grant.change.clone();
        let call = Call {
            request_id: grant.execution_call_id.clone(),
            client_address,
            credentials: Credentials::Approved(Arc::new(grant)),
        };
        // One arm per kind of pending change (see crate::approvals).
        match change {
            PendingChange::ScheduleDestruction {
                window_seconds,
                family,
            } => {
                let seconds = i64::try_from(window_seconds).unwrap_or(i64::MAX);
                self.run(
                    call,
                    ScheduleKeyDestruction {
                        key,
                        pending_window: Some(DurationInput { seconds, nanos: 0 }),
                        family,
                    },
                )
                .await
                .map(drop)
            }
            PendingChange::Disable => self
                .run(
                    call,
                    SetKeyEnabled {
                        key,
                        enabled: false,
                    },
                )
                .await
                .map(drop),
            PendingChange::SetOwner { owner } => {
                self.run(call, SetKeyOwner { key, owner }).await.map(drop)
            }
            PendingChange::RetireVersions { below } => self
                .run(
                    call,
                    RetireKeyVersions {
                        key,
                        below,
                        force: true,
                    },
                )
                .await
                .map(drop),
            // The key id is the one the request reserved (the grant's), so the approvals
            // cover this adoption and no other. A name taken meanwhile or a provider key
            // adopted meanwhile is refused before anything is written.
            PendingChange::Adopt {
                provider,
                provider_uri,
                name,
                owner,
                purpose,
                algorithm,
                environment,
                crypto_period_seconds,
                labels,
            } => {
                let seconds = i64::try_from(crypto_period_seconds).unwrap_or(i64::MAX);
                let adopt = AdoptKey {
                    provider_uri,
                    key: CreateKey {
                        name,
                        purpose,
                        algorithm,
                        owner,
                        environment,
                        crypto_period: Some(DurationInput { seconds, nanos: 0 }),
                        provider,
                        labels,
                        ttl: None,
                        draft: None,
                    },
                    key_id: Some(key),
                };
                self.run(call, adopt).await.map(drop)
            }
        }
    }
}
