//! Admission for what is not yet a catalog key: a key about to be created, and a decision on
//! an approval request, whose key may itself be one about to be adopted.

use super::Ask;
use crate::approvals::PendingChange;
use crate::catalog::KeyState;
use crate::gateway::GatewayError;
use crate::gateway::runner::Gateway;
use crate::gateway::runner::call::{Actor, Call};
use crate::gateway::runner::exec::Subject;
use crate::gateway::runner::journal::Journal;
use crate::gateway::runner::operation::KeyDraft;
use crate::gateway::validate;
use crate::policy::{KeyAttributes, Resource};

impl Gateway {
    /// A key about to be created, as policy sees it.
    pub(super) fn draft_attributes<'d>(&self, draft: &'d KeyDraft) -> KeyAttributes<'d> {
        KeyAttributes {
            id: &draft.id,
            name: &draft.name,
            owner: &draft.owner,
            purpose: draft.purpose.as_str(),
            environment: &draft.environment,
            algorithm: draft.algorithm.as_str(),
            state: KeyState::Enabled.as_str(),
            provider: &draft.provider,
            owner_kind: self.tokens.owner_kind(&draft.owner).as_str(),
            crypto_period_seconds: i64::try_from(draft.crypto_period.as_secs()).unwrap_or(i64::MAX),
            rotation_overdue: false,
            labels: &draft.labels,
        }
    }

    /// Step 2-3 for a decision on approval request `id` (approve, deny, cancel): admitted on
    /// the request's key, with its requester in the policy context. A pending adoption's key
    /// is not in the catalog: the decision is admitted on the key as the adoption would
    /// create it (its reserved id, name, owner, environment…), as its request stores it.
    pub(super) async fn admit_decision(
        &self,
        call: &Call,
        actor: &Actor,
        ask: &Ask<'_>,
        id: &str,
        journal: &mut Journal,
    ) -> Result<Subject, GatewayError> {
        journal.detail("approval_id", validate::truncate(id, 80).into());
        let request = self.approvals.get(id).await?;
        let ask = Ask {
            requester: Some(&request.requester),
            ..ask.clone()
        };
        let key = match (&request.change, self.catalog.get_by_id(&request.key_id)) {
            (_, Some(key)) => Some(self.admit_key(call, actor, &ask, key, journal)?.0),
            (
                PendingChange::Adopt {
                    provider,
                    owner,
                    purpose,
                    algorithm,
                    environment,
                    crypto_period_seconds,
                    labels,
                    ..
                },
                None,
            ) => {
                journal.new_key(&request.key_id, &request.key_name);
                journal.provider(provider);
                let attributes = KeyAttributes {
                    id: &request.key_id,
                    name: &request.key_name,
                    owner,
                    purpose,
                    environment,
                    algorithm,
                    state: KeyState::Enabled.as_str(),
                    provider,
                    owner_kind: self.tokens.owner_kind(owner).as_str(),
                    crypto_period_seconds: i64::try_from(*crypto_period_seconds)
                        .unwrap_or(i64::MAX),
                    rotation_overdue: false,
                    labels,
                };
                // A decision never waits for approvals itself: only admission matters here.
                self.authorize(call, actor, &ask, &Resource::Key(attributes), journal)?;
                None
            }
            (_, None) => return Err(GatewayError::KeyNotFound(request.key_name.clone())),
        };
        Ok(Subject::Approval {
            request: Box::new(request),
            key,
        })
    }
}
