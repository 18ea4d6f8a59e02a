//! Steps 1-4 of every call: authenticate, resolve, authorize, lifecycle. Admin operations on
//! an existing key take the key's lock first and read the record under it, so what they
//! check is what they change.

use super::Gateway;
use super::call::{Actor, Call, Credentials};
use super::exec::{Admitted, Held, Subject};
use super::journal::Journal;
use super::operation::{Mode, Operation, Target};
use crate::catalog::{CatalogError, KeyRecord, KeyState};
use crate::gateway::{GatewayError, envelope, validate};
use crate::lifecycle;
use crate::policy::{Action, KeyAttributes, PolicyContext, Resource, Verdict};
use std::sync::Arc;

/// A key named in a request: the request field, the name or id, and whether the call changes
/// it (then it is locked and read again).
struct Lookup<'a> {
    field: &'static str,
    key: &'a str,
    changes: bool,
    requester: Option<&'a str>,
}

/// What admission hands the execute step.
pub(super) struct Admission {
    pub subject: Subject,
    pub destination: Option<Admitted>,
    pub ciphertext_version: Option<u32>,
}

impl Gateway {
    /// Step 1.
    pub(super) fn authenticate(&self, call: &Call) -> Result<Actor, GatewayError> {
        match &call.credentials {
            Credentials::None => Err(GatewayError::NoToken),
            Credentials::Bearer(token) => self
                .tokens
                .authenticate(token)
                .map(Actor::Caller)
                .ok_or(GatewayError::BadToken),
            Credentials::System(task) => Ok(Actor::System(*task)),
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
            crypto_period_seconds: key.crypto_period.as_secs() as i64,
            rotation_overdue: key.rotation_due_at_ms <= crate::time::now_ms(),
            labels: &key.labels,
        }
    }

    /// The context of a decision: the call, whether the action is critical on this key, and
    /// the approvals an approved execution carries (only for its own action on its own key).
    fn context(
        &self,
        call: &Call,
        action: Action,
        resource: &Resource<'_>,
        requester: Option<&str>,
    ) -> PolicyContext {
        let (critical, crypto_period_seconds, key_id) = match resource {
            Resource::Key(k) => (
                self.approval_settings.is_critical(action, k.environment),
                k.crypto_period_seconds,
                k.id,
            ),
            _ => (false, 0, ""),
        };
        let mut context = PolicyContext {
            client_address: call.client_address.clone(),
            time_ms: crate::time::now_ms(),
            crypto_period_seconds,
            critical,
            quorum: i64::from(self.approval_settings.quorum),
            approvals: 0,
            approvers: Vec::new(),
            requester: requester.unwrap_or_default().to_string(),
        };
        if let Credentials::Approved(grant) = &call.credentials
            && grant.action == action
            && grant.key_id == key_id
        {
            context.approvals = grant.approvers.len() as i64;
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
    ) -> Option<crate::policy::Decision> {
        match actor {
            Actor::Caller(principal) => Some(self.policy.current().authorize(
                principal,
                action,
                resource,
                &self.context(call, action, resource, None),
            )),
            _ => None,
        }
    }

    /// Step 3: Cedar for callers; the system only for its own task's action.
    fn authorize(
        &self,
        call: &Call,
        actor: &Actor,
        action: Action,
        resource: &Resource<'_>,
        requester: Option<&str>,
        journal: &mut Journal,
    ) -> Result<(), GatewayError> {
        let target = || match resource {
            Resource::Key(k) => format!("key '{}'", k.name),
            Resource::Catalog => "the key catalog".to_string(),
            Resource::AuditLog => "the audit log".to_string(),
            Resource::Provider(name) => format!("provider '{name}'"),
            Resource::Approvals => "the approval requests".to_string(),
            Resource::PolicyStore => "the policies".to_string(),
        };
        let principal = match actor {
            Actor::Caller(p) => p,
            Actor::System(task) if task.action() == action => {
                journal.policy(task.authority().into());
                return Ok(());
            }
            other => {
                journal.policy(format!("deny ({} actors cannot {action})", other.kind()));
                return Err(GatewayError::PolicyDenied {
                    principal: other.name(),
                    action,
                    target: target(),
                    reason: format!("{} actors cannot {action}", other.kind()),
                });
            }
        };
        let context = self.context(call, action, resource, requester);
        let decision = self
            .policy
            .current()
            .authorize(principal, action, resource, &context);
        journal.policy(decision.summary());
        if let Credentials::Approved(grant) = &call.credentials {
            journal.detail("approval_id", grant.request_id.clone().into());
            journal.detail("approvers", grant.approvers.clone().into());
        }
        match decision.verdict {
            Verdict::Allow => Ok(()),
            Verdict::Deny => Err(GatewayError::PolicyDenied {
                principal: principal.name.clone(),
                action,
                target: target(),
                reason: decision.reason,
            }),
            Verdict::NeedsApproval => match resource {
                Resource::Key(k) => Err(GatewayError::ApprovalRequired {
                    action,
                    target: target(),
                    key_id: k.id.to_string(),
                    key_name: k.name.to_string(),
                    environment: k.environment.to_string(),
                }),
                // Approvals are for changes to keys; anything else asking for them is refused.
                _ => Err(GatewayError::PolicyDenied {
                    principal: principal.name.clone(),
                    action,
                    target: target(),
                    reason: "policy asks for approvals, and only key changes can wait for them"
                        .into(),
                }),
            },
        }
    }

    /// Steps 3-4 for a resolved key.
    fn admit_key(
        &self,
        call: &Call,
        actor: &Actor,
        action: Action,
        key: Arc<KeyRecord>,
        requester: Option<&str>,
        journal: &mut Journal,
    ) -> Result<Admitted, GatewayError> {
        journal.key(&key);
        self.authorize(
            call,
            actor,
            action,
            &Resource::Key(self.key_attributes(&key)),
            requester,
            journal,
        )?;
        lifecycle::check(action, &key)?;
        Ok(Admitted::new(key))
    }

    /// Steps 2-4 for a key named by the caller. A change is first authorized on the key as
    /// it was read, so a caller the policy refuses never waits on the key's lock; then the key
    /// is locked, read again and admitted again as it is now.
    async fn resolve_and_admit<'g>(
        &'g self,
        call: &Call,
        actor: &Actor,
        action: Action,
        lookup: Lookup<'_>,
        held: &mut Held<'g>,
        journal: &mut Journal,
    ) -> Result<Admitted, GatewayError> {
        let Lookup {
            field,
            key: name_or_id,
            changes,
            requester,
        } = lookup;
        if name_or_id.is_empty() {
            return Err(GatewayError::NoKeyGiven { field });
        }
        let Some(key) = self.catalog.get(name_or_id) else {
            journal.key_name(name_or_id);
            return Err(GatewayError::KeyNotFound(validate::truncate(
                name_or_id, 200,
            )));
        };
        let admitted = self.admit_key(call, actor, action, key, requester, journal)?;
        if !changes {
            return Ok(admitted);
        }
        let lock = self.catalog.lock(&admitted.id).await;
        let current = self.catalog.current(&lock)?;
        held.key = Some(lock);
        self.admit_key(call, actor, action, current, requester, journal)
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
        let mut ciphertext_version = None;
        let subject =
            match op.target() {
                Target::Key { field, key } => Subject::Key(
                    self.resolve_and_admit(
                        call,
                        actor,
                        action,
                        Lookup {
                            field,
                            key,
                            changes,
                            requester: op.requester(),
                        },
                        held,
                        journal,
                    )
                    .await?,
                ),
                Target::Ciphertext(ciphertext) => {
                    let env = envelope::open(ciphertext)?;
                    let key_id = env.key_id.to_string();
                    let key = self
                        .catalog
                        .get_by_id(&key_id)
                        .ok_or_else(|| GatewayError::CiphertextForeign(key_id.clone()))?;
                    ciphertext_version = Some(env.key_version);
                    Subject::Key(self.admit_key(call, actor, action, key, None, journal)?)
                }
                Target::NewKey(draft) => {
                    journal.key_name(&draft.name);
                    journal.provider(&draft.provider);
                    let provider = self.providers.get(&draft.provider).ok_or_else(|| {
                        GatewayError::ProviderNotConfigured {
                            provider: validate::truncate(&draft.provider, 64),
                            configured: self.providers.names().join(", "),
                        }
                    })?;
                    self.authorize(
                        call,
                        actor,
                        action,
                        &Resource::Key(KeyAttributes {
                            id: &draft.id,
                            name: &draft.name,
                            owner: &draft.owner,
                            purpose: draft.purpose.as_str(),
                            environment: &draft.environment,
                            algorithm: draft.algorithm.as_str(),
                            state: KeyState::Enabled.as_str(),
                            provider: &draft.provider,
                            owner_kind: self.tokens.owner_kind(&draft.owner).as_str(),
                            crypto_period_seconds: draft.crypto_period.as_secs() as i64,
                            rotation_overdue: false,
                            labels: &draft.labels,
                        }),
                        None,
                        journal,
                    )?;
                    held.name = Some(self.catalog.reserve_name(&draft.name).map_err(
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
                Target::Catalog => {
                    self.authorize(call, actor, action, &Resource::Catalog, None, journal)?;
                    Subject::Catalog
                }
                Target::Approvals => {
                    self.authorize(call, actor, action, &Resource::Approvals, None, journal)?;
                    Subject::Approvals
                }
                Target::Policies => {
                    self.authorize(call, actor, action, &Resource::PolicyStore, None, journal)?;
                    Subject::Policies
                }
                Target::AuditLog => {
                    self.authorize(call, actor, action, &Resource::AuditLog, None, journal)?;
                    Subject::AuditLog
                }
                Target::Provider(name) => {
                    let name = if name.is_empty() {
                        self.providers.default_name().to_string()
                    } else {
                        name.to_string()
                    };
                    journal.provider(&name);
                    journal.detail("provider", name.clone().into());
                    self.authorize(
                        call,
                        actor,
                        action,
                        &Resource::Provider(&name),
                        None,
                        journal,
                    )?;
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
            Some(name) => Some(
                self.resolve_and_admit(
                    call,
                    actor,
                    action,
                    Lookup {
                        field: "destination_key",
                        key: name,
                        changes: false,
                        requester: None,
                    },
                    held,
                    journal,
                )
                .await?,
            ),
        };
        // The event is about the primary key; the operation notes the destination itself.
        if let (Some(_), Subject::Key(primary)) = (&destination, &subject) {
            journal.key(primary);
        }
        Ok(Admission {
            subject,
            destination,
            ciphertext_version,
        })
    }
}
