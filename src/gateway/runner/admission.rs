//! Steps 1-4 of every call: authenticate, resolve, authorize, lifecycle. Admin operations on
//! an existing key take the key's lock first and read the record under it, so what they
//! check is what they change.

use super::Gateway;
use super::call::{Actor, Call, Credentials};
use super::exec::{Admitted, Held, Subject};
use super::journal::Journal;
use super::operation::{Operation, Target};
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
                });
            }
        };
        let context = PolicyContext {
            client_address: call.client_address.clone(),
            time_ms: crate::time::now_ms(),
            crypto_period_seconds,
        };
        let decision = self.policy.authorize(principal, action, resource, &context);
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

    /// Step 2: a key by name or id; under its lock for admin operations.
    async fn resolve_key<'g>(
        &'g self,
        field: &'static str,
        name_or_id: &str,
        action: Action,
        held: &mut Held<'g>,
        journal: &mut Journal,
    ) -> Result<Arc<KeyRecord>, GatewayError> {
        if name_or_id.is_empty() {
            return Err(GatewayError::NoKeyGiven { field });
        }
        let Some(key) = self.catalog.get(name_or_id) else {
            journal.key_name(name_or_id);
            return Err(GatewayError::KeyNotFound(validate::truncate(
                name_or_id, 200,
            )));
        };
        if !action.is_admin() {
            return Ok(key);
        }
        let lock = self.catalog.lock(&key.id).await;
        let current = self.catalog.current(&lock)?;
        held.key = Some(lock);
        Ok(current)
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
        let mut ciphertext_version = None;
        let subject =
            match op.target() {
                Target::Key { field, key } => {
                    let key = self.resolve_key(field, key, action, held, journal).await?;
                    Subject::Key(self.admit_key(call, actor, action, key, journal)?)
                }
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
            Some(name) => {
                let key = self
                    .resolve_key("destination_key", name, action, held, journal)
                    .await?;
                Some(self.admit_key(call, actor, action, key, journal)?)
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
        })
    }
}
