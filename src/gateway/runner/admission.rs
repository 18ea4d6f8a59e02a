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

pub fn key_attributes(key: &KeyRecord) -> KeyAttributes<'_> {
    KeyAttributes {
        id: &key.id,
        name: &key.name,
        owner: &key.owner,
        purpose: key.purpose.as_str(),
        environment: &key.environment,
        algorithm: key.algorithm.as_str(),
        state: key.state.as_str(),
        provider: &key.provider,
    }
}

/// A key named in a request: the request field, the name or id, and whether the call changes
/// it (then it is locked and read again).
struct Lookup<'a> {
    field: &'static str,
    key: &'a str,
    changes: bool,
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
        }
    }

    fn context(call: &Call, crypto_period_seconds: i64) -> PolicyContext {
        PolicyContext {
            client_address: call.client_address.clone(),
            time_ms: crate::time::now_ms(),
            crypto_period_seconds,
        }
    }

    /// Cedar's decision for a calling principal, without recording it (listings filter with
    /// it); `None` for actors Cedar does not decide for.
    pub(super) fn decide(
        &self,
        call: &Call,
        actor: &Actor,
        action: Action,
        resource: &Resource<'_>,
        crypto_period_seconds: i64,
    ) -> Option<crate::policy::Decision> {
        match actor {
            Actor::Caller(principal) => Some(self.policy.authorize(
                principal,
                action,
                resource,
                &Self::context(call, crypto_period_seconds),
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
        crypto_period_seconds: i64,
        journal: &mut Journal,
    ) -> Result<(), GatewayError> {
        let target = || match resource {
            Resource::Key(k) => format!("key '{}'", k.name),
            Resource::Catalog => "the key catalog".to_string(),
            Resource::AuditLog => "the audit log".to_string(),
            Resource::Provider(name) => format!("provider '{name}'"),
        };
        let principal = match actor {
            Actor::Caller(p) => p,
            Actor::System(task) if task.permits(action) => {
                journal.policy(task.authority().into());
                return Ok(());
            }
            other => {
                journal.policy(format!("deny ({} actors cannot {action})", other.kind()));
                return Err(GatewayError::PolicyDenied {
                    principal: other.name(),
                    action,
                    target: target(),
                });
            }
        };
        let decision = self.policy.authorize(
            principal,
            action,
            resource,
            &Self::context(call, crypto_period_seconds),
        );
        let summary = decision.summary();
        match decision.verdict {
            Verdict::Allow => {
                journal.policy(summary);
                Ok(())
            }
            Verdict::Deny => {
                journal.policy(summary);
                Err(GatewayError::PolicyDenied {
                    principal: principal.name.clone(),
                    action,
                    target: target(),
                })
            }
            Verdict::NeedsApproval => {
                journal.policy(summary.clone());
                Err(GatewayError::ApprovalRequired {
                    action,
                    target: target(),
                    policies: summary,
                })
            }
        }
    }

    /// Steps 3-4 for a resolved key.
    fn admit_key(
        &self,
        call: &Call,
        actor: &Actor,
        action: Action,
        key: Arc<KeyRecord>,
        journal: &mut Journal,
    ) -> Result<Admitted, GatewayError> {
        journal.key(&key);
        self.authorize(
            call,
            actor,
            action,
            &Resource::Key(key_attributes(&key)),
            key.crypto_period.as_secs() as i64,
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
        let admitted = self.admit_key(call, actor, action, key, journal)?;
        if !changes {
            return Ok(admitted);
        }
        let lock = self.catalog.lock(&admitted.id).await;
        let current = self.catalog.current(&lock)?;
        held.key = Some(lock);
        self.admit_key(call, actor, action, current, journal)
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
                    Subject::Key(self.admit_key(call, actor, action, key, journal)?)
                }
                Target::NewKey(draft) => {
                    journal.new_key(&draft.id, &draft.name);
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
                        }),
                        draft.crypto_period.as_secs() as i64,
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
                    self.authorize(call, actor, action, &Resource::Catalog, 0, journal)?;
                    Subject::Catalog
                }
                Target::AuditLog => {
                    self.authorize(call, actor, action, &Resource::AuditLog, 0, journal)?;
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
                    self.authorize(call, actor, action, &Resource::Provider(&name), 0, journal)?;
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
