//! Operations on the policies: ReloadPolicies (also run by the folder watcher as the
//! system), GetPolicyStatus, ExplainPolicy.

use crate::gateway::runner::{Exec, Operation, Reads, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::{Action, Decision, PolicyInfo};

/// The policy set in force.
pub struct PolicyStatus {
    /// `built-in defaults` or the folder.
    pub source: String,
    pub policies: Vec<PolicyInfo>,
    pub loaded_at_ms: i64,
    /// The last refused reload (why, when), while the set before it stays in force.
    pub last_error: Option<(String, i64)>,
    pub caches_decisions: bool,
}

pub(super) fn status(cx: &Exec<'_, Reads>) -> PolicyStatus {
    let store = cx.policies();
    let engine = store.current();
    PolicyStatus {
        source: store.source().to_string(),
        policies: engine.policies().into_iter().cloned().collect(),
        loaded_at_ms: store.loaded_at_ms(),
        last_error: store.last_error(),
        caches_decisions: engine.caches_decisions(),
    }
}

/// Builds the policies again from their source and puts them in force if they are valid; a
/// bad set is refused (POLICY_INVALID, naming the file and why) and the old one stays.
pub struct ReloadPolicies;

impl Operation for ReloadPolicies {
    type Output = PolicyStatus;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ReloadPolicies
    }

    fn target(&self) -> Target<'_> {
        Target::Policies
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<PolicyStatus, GatewayError> {
        let outcome = cx.reload_policies().await;
        cx.detail("policies", outcome.policy_count);
        cx.detail("source", cx.policies().source().to_string());
        match outcome.error {
            Some(error) => Err(GatewayError::PolicyInvalid(error)),
            None => Ok(status(cx)),
        }
    }
}

pub struct GetPolicyStatus;

impl Operation for GetPolicyStatus {
    type Output = PolicyStatus;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetPolicyStatus
    }

    fn target(&self) -> Target<'_> {
        Target::Policies
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<PolicyStatus, GatewayError> {
        Ok(status(cx))
    }
}

/// How policy decides `action` by `principal` on `key`, as a call would see it now (approvals
/// aside): the verdict, the reason and the ids of the policies that decided.
pub struct ExplainPolicy {
    pub principal: String,
    pub action: String,
    /// A key name or id; empty for actions that do not act on a key.
    pub key: String,
}

pub struct Explanation {
    pub principal: String,
    pub action: Action,
    pub key_name: String,
    pub decision: Decision,
    /// What each deciding policy says of itself.
    pub deciding: Vec<PolicyInfo>,
}

impl Operation for ExplainPolicy {
    type Output = Explanation;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ExplainPolicy
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        if self.principal.is_empty() {
            return Err(GatewayError::invalid(
                "principal",
                "name the principal whose call to explain (--principal)",
            ));
        }
        self.action
            .parse::<Action>()
            .map_err(|e| GatewayError::invalid("action", e))?;
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        Target::Policies
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Explanation, GatewayError> {
        let action = self
            .action
            .parse::<Action>()
            .map_err(|e| GatewayError::invalid("action", e))?;
        let principal = cx.principal(&self.principal).ok_or_else(|| {
            GatewayError::PrincipalUnknown(validate::truncate(&self.principal, 128))
        })?;
        let key = if self.key.is_empty() {
            None
        } else {
            Some(
                cx.lookup_key(&self.key)
                    .ok_or_else(|| GatewayError::KeyNotFound(validate::truncate(&self.key, 200)))?,
            )
        };
        let decision = cx.explain(&principal, action, key.as_deref())?;
        cx.detail("explained_principal", principal.name.clone());
        cx.detail("explained_action", action.as_str());
        cx.detail("explained_decision", decision.summary());
        let engine = cx.policies().current();
        let deciding = engine
            .policies()
            .into_iter()
            .filter(|p| decision.policies.contains(&p.id))
            .cloned()
            .collect();
        Ok(Explanation {
            principal: principal.name.clone(),
            action,
            key_name: key.map(|k| k.name.clone()).unwrap_or_default(),
            decision,
            deciding,
        })
    }
}
