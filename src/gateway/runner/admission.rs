//! Steps 1-4 of every call: authenticate, resolve, authorize, lifecycle. Admin operations on
//! an existing key take the key's lock first and read the record under it, so what they
//! check is what they change.

use super::Gateway;
use super::call::{Actor, Call, Credentials};
use super::exec::{Admitted, Held, Subject};
use super::journal::Journal;
use super::operation::{Mode, Operation, Target};
use crate::approvals::PendingChange;
use crate::catalog::{CatalogError, KeyRecord};
use crate::gateway::{GatewayError, envelope, validate};
use crate::lifecycle;
use crate::policy::{
    Action, CallFacts, Decision, KeyAttributes, OperationFacts, PolicyContext, Resource, Verdict,
};
use std::sync::Arc;

mod deciding;

/// What the call asks policy for, beside who asks and on what: the action, the facts the
/// operation adds, the change it would store to wait for approvals, and (deciding on an
/// approval request) the request's requester.
#[derive(Clone)]
struct Ask<'a> {
    action: Action,
    facts: OperationFacts,
    change: Option<&'a PendingChange>,
    requester: Option<&'a str>,
}

/// Authorization passed: allowed now, or once approvers agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    Allowed,
    NeedsApproval,
}

/// What admission hands the execute step.
pub(super) struct Admission {
    pub subject: Subject,
    pub destination: Option<Admitted>,
    pub ciphertext_version: Option<u32>,
    /// Policy asks for approvals: the call opens a request instead of executing.
    pub needs_approval: bool,
}

impl Gateway {
    /// Step 1.
    pub(super) fn authenticate(&self, call: &Call) -> Result<Actor, GatewayError> {
        match &call.credentials {
            Credentials::None => Err(GatewayError::NoToken),
            Credentials::Bearer(token) => self
                .tokens
                .authenticate(token, None)
                .map(Actor::Caller)
                .map_err(refused),
            Credentials::Certified {
                token: Some(token),
                peer,
            } => self
                .tokens
                .authenticate(token, Some(peer))
                .map(Actor::Caller)
                .map_err(refused),
            Credentials::Certified { token: None, peer } => self
                .tokens
                .authenticate_certificate(peer)
                .map(Actor::Caller)
                .map_err(refused),
            Credentials::KmsPlugin => {
                self.tokens.kms_plugin().map(Actor::Caller).ok_or_else(|| {
                    GatewayError::Internal(
                        "a call came on the KMS plugin socket, but no [kms_plugin] is configured"
                            .into(),
                    )
                })
            }
            Credentials::System(task) => Ok(Actor::System(*task)),
            // An approved change runs for its requester, who stays its actor; the approvers
            // are in its event.
            Credentials::Approved(grant) => self
                .tokens
                .principal(&grant.requester)
                .map(Actor::Caller)
                .ok_or_else(|| GatewayError::RequesterUnknown(grant.requester.clone())),
        }
    }

    /// A key's attributes as policies see them, now.
    pub(super) fn key_attributes<'k>(&self, key: &'k KeyRecord) -> KeyAttributes<'k> {
        KeyAttributes {
            id: &key.id,
            name: &key.name,
            owner: &key.owner,
            purpose: key.purpose.as_str(),
            environment: &key.environment,
            algorithm: key.algorithm.as_str(),
            state: key.state.as_str(),
            provider: &key.provider,
            owner_kind: self.tokens.owner_kind(&key.owner).as_str(),
            crypto_period_seconds: i64::try_from(key.crypto_period.as_secs()).unwrap_or(i64::MAX),
            rotation_overdue: key.rotation_due_at_ms <= crate::time::now_ms(),
            labels: &key.labels,
        }
    }

    /// The context of a decision: the call, whether the action is critical on this key, the
    /// operation's facts, and the approvals an approved change carries (only for the very
    /// change they approved: its action, key and digest).
    fn context(&self, call: &Call, ask: &Ask<'_>, resource: &Resource<'_>) -> PolicyContext {
        let (critical, key_id) = match resource {
            Resource::Key(k) => (
                self.approval_settings
                    .is_critical(ask.action, k.environment),
                k.id,
            ),
            _ => (false, ""),
        };
        let mut context = PolicyContext {
            call: CallFacts {
                client_address: call.client_address.clone(),
                time_ms: crate::time::now_ms(),
            },
            critical,
            quorum: i64::from(self.approval_settings.quorum),
            approvals: 0,
            approvers: Vec::new(),
            requester: ask.requester.unwrap_or_default().to_string(),
            facts: ask.facts.clone(),
        };
        if let Credentials::Approved(grant) = &call.credentials
            && grant.covers(ask.action, key_id, ask.change)
        {
            context.approvals = i64::try_from(grant.approvers.len()).unwrap_or(i64::MAX);
            context.approvers = grant.approvers.clone();
            context.requester = grant.requester.clone();
        }
        context
    }

    /// Cedar's decision for a calling principal, without recording it (listings filter with
    /// it); `None` for actors Cedar does not decide for.
    pub(super) fn decide(
        &self,
        call: &Call,
        actor: &Actor,
        action: Action,
        resource: &Resource<'_>,
    ) -> Option<Decision> {
        match actor {
            Actor::Caller(principal) => {
                let ask = Ask {
                    action,
                    facts: OperationFacts::default(),
                    change: None,
                    requester: None,
                };
                Some(self.policy.current().authorize(
                    principal,
                    action,
                    resource,
                    &self.context(call, &ask, resource),
                ))
            }
            _ => None,
        }
    }

    /// How policy decides `action` by `principal` on `key` (or the action's own resource),
    /// approvals aside (`keygate policy explain`).
    pub(super) fn explain(
        &self,
        call: &Call,
        principal: &crate::auth::Principal,
        action: Action,
        key: Option<&KeyRecord>,
    ) -> Result<Decision, GatewayError> {
        let resource = match (key, resource_of(action)) {
            (Some(key), None) => Resource::Key(self.key_attributes(key)),
            (None, Some(resource)) => resource,
            (None, None) => {
                return Err(GatewayError::invalid(
                    "key",
                    format!("{action} acts on a key: name one (--key)"),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(GatewayError::invalid(
                    "key",
                    format!("{action} does not act on a key: leave --key out"),
                ));
            }
        };
        let ask = Ask {
            action,
            facts: OperationFacts::default(),
            change: None,
            requester: None,
        };
        let explain_call = Call {
            request_id: call.request_id.clone(),
            client_address: call.client_address.clone(),
            credentials: Credentials::None,
        };
        let context = self.context(&explain_call, &ask, &resource);
        Ok(self
            .policy
            .current()
            .evaluate(principal, action, &resource, &context))
    }

    /// Step 3: Cedar for callers; the system only for its own task's action.
    fn authorize(
        &self,
        call: &Call,
        actor: &Actor,
        ask: &Ask<'_>,
        resource: &Resource<'_>,
        journal: &mut Journal,
    ) -> Result<Admit, GatewayError> {
        let action = ask.action;
        let target = || match resource {
            Resource::Key(k) => format!("key '{}'", k.name),
            Resource::Catalog => "the key catalog".to_string(),
            Resource::AuditLog => "the audit log".to_string(),
            Resource::Provider(name) => format!("provider '{name}'"),
            Resource::Approvals => "the approval requests".to_string(),
            Resource::PolicyStore => "the policies".to_string(),
            Resource::Posture => "the key posture".to_string(),
        };
        let principal = match actor {
            Actor::Caller(p) => p,
            Actor::System(task) if task.permits(action) => {
                journal.policy(task.authority().into());
                return Ok(Admit::Allowed);
            }
            other => {
                journal.policy(format!("deny ({} actors cannot {action})", other.kind()));
                return Err(GatewayError::PolicyDenied {
                    principal: other.name(),
                    action,
                    target: target(),
                    reason: format!("{} actors cannot {action}", other.kind()),
                    policies: Vec::new(),
                });
            }
        };
        let context = self.context(call, ask, resource);
        let decision = {
            let _span = tracing::info_span!(
                target: crate::telemetry::otlp::SPANS,
                "policy",
                keygate.action = %action,
                keygate.verdict = tracing::field::Empty,
            )
            .entered();
            let decision = self
                .policy
                .current()
                .authorize(principal, action, resource, &context);
            _span.record("keygate.verdict", decision.verdict.as_str());
            decision
        };
        journal.policy(decision.summary());
        let denied = |reason: String, policies: Vec<String>| GatewayError::PolicyDenied {
            principal: principal.name.clone(),
            action,
            target: target(),
            reason,
            policies,
        };
        match decision.verdict {
            Verdict::Allow => Ok(Admit::Allowed),
            Verdict::Deny => Err(denied(decision.reason, decision.policies)),
            Verdict::NeedsApproval => {
                let why = match (resource, ask.change, &call.credentials) {
                    (Resource::Key(k), Some(change), Credentials::Approved(grant)) => {
                        if grant.covers(action, k.id, Some(change)) {
                            format!(
                                "{}; approval request {} has {} approvals, fewer than the {} now required",
                                decision.reason,
                                grant.request_id,
                                grant.approvers.len(),
                                self.approval_settings.quorum
                            )
                        } else {
                            format!(
                                "{}; approval request {} does not cover this change",
                                decision.reason, grant.request_id
                            )
                        }
                    }
                    (Resource::Key(_), Some(_), _) => return Ok(Admit::NeedsApproval),
                    _ => format!(
                        "{}; {action} cannot wait for approvals (see `[approvals] critical`)",
                        decision.reason
                    ),
                };
                Err(denied(why, decision.policies))
            }
        }
    }

    /// Steps 3-4 for a resolved key.
    fn admit_key(
        &self,
        call: &Call,
        actor: &Actor,
        ask: &Ask<'_>,
        key: Arc<KeyRecord>,
        journal: &mut Journal,
    ) -> Result<(Admitted, Admit), GatewayError> {
        journal.key(&key);
        let admit = self.authorize(
            call,
            actor,
            ask,
            &Resource::Key(self.key_attributes(&key)),
            journal,
        )?;
        lifecycle::check(ask.action, &key)?;
        Ok((Admitted::new(key), admit))
    }

    /// Steps 2-4 for a key named by the caller. A change is first authorized on the key as
    /// it was read, so a caller the policy refuses never waits on the key's lock; then the key
    /// is locked, read again and admitted again as it is now.
    #[allow(clippy::too_many_arguments)]
    async fn resolve_and_admit<'g>(
        &'g self,
        call: &Call,
        actor: &Actor,
        ask: &Ask<'_>,
        field: &'static str,
        name_or_id: &str,
        changes: bool,
        held: &mut Held<'g>,
        journal: &mut Journal,
    ) -> Result<(Admitted, Admit), GatewayError> {
        if name_or_id.is_empty() {
            return Err(GatewayError::NoKeyGiven { field });
        }
        let Some(key) = self.catalog.get(name_or_id) else {
            journal.key_name(name_or_id);
            return Err(GatewayError::KeyNotFound(validate::truncate(
                name_or_id, 200,
            )));
        };
        let (admitted, admit) = self
            .admit_key(call, actor, ask, key.clone(), journal)
            .map_err(|e| self.conceal(call, actor, &key, name_or_id, e))?;
        if !changes {
            return Ok((admitted, admit));
        }
        let lock = self.catalog.lock(&admitted.id).await;
        let current = self.catalog.current(&lock)?;
        held.key = Some(lock);
        self.admit_key(call, actor, ask, current.clone(), journal)
            .map_err(|e| self.conceal(call, actor, &current, name_or_id, e))
    }

    /// What a caller learns from a refusal on a key named by it: if it may not read the key
    /// (GetKey), the same NOT_FOUND as for a name that does not exist, so trying names tells
    /// nothing about which keys exist. The audit event keeps the refusal itself.
    fn conceal(
        &self,
        call: &Call,
        actor: &Actor,
        key: &KeyRecord,
        name_or_id: &str,
        refusal: GatewayError,
    ) -> GatewayError {
        if !matches!(refusal, GatewayError::PolicyDenied { .. }) {
            return refusal;
        }
        let visible = self
            .decide(
                call,
                actor,
                Action::GetKey,
                &Resource::Key(self.key_attributes(key)),
            )
            .is_none_or(|d| d.verdict != Verdict::Deny);
        if visible {
            return refusal;
        }
        GatewayError::Concealed {
            shown: Box::new(GatewayError::KeyNotFound(validate::truncate(
                name_or_id, 200,
            ))),
            real: Box::new(refusal),
        }
    }

    /// Steps 2-4 for `op`.
    pub(super) async fn admit<'g, O: Operation>(
        &'g self,
        call: &Call,
        actor: &Actor,
        op: &O,
        held: &mut Held<'g>,
        journal: &mut Journal,
    ) -> Result<Admission, GatewayError> {
        let action = op.action();
        let changes = <O::Mode as Mode>::CHANGES;
        let change = op.pending_change();
        let mut facts = OperationFacts::default();
        op.policy_context(&mut facts);
        if let Some(owner) = &facts.new_owner {
            facts.new_owner_kind = Some(self.tokens.owner_kind(owner).as_str().into());
        }
        let ask = Ask {
            action,
            facts,
            change: change.as_ref(),
            requester: None,
        };
        let mut ciphertext_version = None;
        let mut admit = Admit::Allowed;
        let subject = match op.target() {
            Target::Key { field, key } => {
                let (key, verdict) = self
                    .resolve_and_admit(call, actor, &ask, field, key, changes, held, journal)
                    .await?;
                admit = verdict;
                Subject::Key(key)
            }
            Target::Ciphertext(ciphertext) => {
                let env = envelope::open(ciphertext)?;
                let key_id = env.key_id.to_string();
                let key = self
                    .catalog
                    .get_by_id(&key_id)
                    .ok_or_else(|| GatewayError::CiphertextForeign(key_id.clone()))?;
                ciphertext_version = Some(env.key_version);
                let (key, verdict) = self.admit_key(call, actor, &ask, key, journal)?;
                admit = verdict;
                Subject::Key(key)
            }
            Target::NewKey(draft) => {
                journal.new_key(&draft.id, &draft.name);
                journal.provider(&draft.provider);
                // Authorized first: only a caller allowed to create the key hears which
                // providers are configured.
                admit = self.authorize(
                    call,
                    actor,
                    &ask,
                    &Resource::Key(self.draft_attributes(draft)),
                    journal,
                )?;
                let provider = self.providers.get(&draft.provider).ok_or_else(|| {
                    GatewayError::ProviderNotConfigured {
                        provider: validate::truncate(&draft.provider, 64),
                        configured: self.providers.names().join(", "),
                    }
                })?;
                held.name = Some(self.catalog.reserve_name(&draft.name).await.map_err(
                    |e| match e {
                        CatalogError::NameTaken(name) => GatewayError::KeyExists(name),
                        other => other.into(),
                    },
                )?);
                Subject::NewKey {
                    draft: draft.clone(),
                    provider,
                }
            }
            Target::ApprovalRequest(id) => {
                self.admit_decision(call, actor, &ask, id, journal).await?
            }
            Target::Catalog => {
                admit = self.authorize(call, actor, &ask, &Resource::Catalog, journal)?;
                Subject::Catalog
            }
            Target::Approvals => {
                admit = self.authorize(call, actor, &ask, &Resource::Approvals, journal)?;
                Subject::Approvals
            }
            Target::Policies => {
                admit = self.authorize(call, actor, &ask, &Resource::PolicyStore, journal)?;
                Subject::Policies
            }
            Target::AuditLog => {
                admit = self.authorize(call, actor, &ask, &Resource::AuditLog, journal)?;
                Subject::AuditLog
            }
            Target::Posture => {
                admit = self.authorize(call, actor, &ask, &Resource::Posture, journal)?;
                Subject::Posture
            }
            Target::Provider(name) => {
                let name = if name.is_empty() {
                    self.providers.default_name().to_string()
                } else {
                    name.to_string()
                };
                journal.provider(&name);
                journal.detail("provider", name.clone().into());
                admit = self.authorize(call, actor, &ask, &Resource::Provider(&name), journal)?;
                let provider =
                    self.providers
                        .get(&name)
                        .ok_or_else(|| GatewayError::ProviderUnknown {
                            provider: validate::truncate(&name, 64),
                            configured: self.providers.names().join(", "),
                        })?;
                Subject::Provider { name, provider }
            }
        };
        let destination = match op.second_key() {
            None | Some("") => None,
            // One lock per call: a change naming two keys could deadlock against another.
            Some(_) if changes => {
                return Err(GatewayError::Internal(format!(
                    "{action} changes keys and names a second one; changes take one key"
                )));
            }
            Some(name) => {
                let mut facts = ask.facts.clone();
                facts.destination = Some(true);
                let ask = Ask {
                    facts,
                    ..ask.clone()
                };
                let (key, verdict) = self
                    .resolve_and_admit(
                        call,
                        actor,
                        &ask,
                        "destination_key",
                        name,
                        false,
                        held,
                        journal,
                    )
                    .await?;
                if verdict == Admit::NeedsApproval {
                    admit = verdict;
                }
                Some(key)
            }
        };
        // The event is about the primary key; the operation notes the destination itself.
        if let (Some(_), Subject::Key(primary)) = (&destination, &subject) {
            journal.key(primary);
        }
        Ok(Admission {
            subject,
            destination,
            ciphertext_version,
            needs_approval: admit == Admit::NeedsApproval,
        })
    }
}

fn refused(refusal: crate::auth::Refusal) -> GatewayError {
    match refusal {
        crate::auth::Refusal::NoCredentials => GatewayError::NoToken,
        crate::auth::Refusal::BadToken => GatewayError::BadToken,
    }
}

/// The resource an action acts on when it is not a key.
fn resource_of(action: Action) -> Option<Resource<'static>> {
    match action {
        Action::ListKeys => Some(Resource::Catalog),
        Action::AuditQuery | Action::AuditTail | Action::AuditVerify => Some(Resource::AuditLog),
        Action::ListApprovals | Action::GetApproval => Some(Resource::Approvals),
        Action::ReloadPolicies | Action::ExplainPolicy | Action::GetPolicyStatus => {
            Some(Resource::PolicyStore)
        }
        Action::ListInventory | Action::RotateMasterKey => Some(Resource::Provider("")),
        Action::ScanPosture
        | Action::GetPostureInventory
        | Action::ListFindings
        | Action::AcknowledgeFinding
        | Action::ComplianceReport
        | Action::ConsoleSignIn => Some(Resource::Posture),
        _ => None,
    }
}
