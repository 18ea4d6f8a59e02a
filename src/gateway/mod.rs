//! The pipeline every call goes through, in one place:
//!
//! 1. authenticate — bearer token → principal ([`Scope::authenticate`]);
//! 2. resolve — key name, id or ciphertext → catalog record ([`Scope::admit`]);
//! 3. authorize — Cedar decides (also in `admit`);
//! 4. lifecycle — the key's state and purpose allow the action (also in `admit`);
//! 5. execute — the provider call, under the configured deadline ([`Gateway::provider_call`]);
//! 6. audit — one event, appended durably before the reply leaves ([`Scope::finish`]); if it
//!    cannot be written the call fails closed.
//!
//! `admit` is the only way an operation obtains a key record, so no operation can skip steps
//! 2-4, and `finish` is the only way one returns.

mod audit_ops;
mod crypto;
pub mod envelope;
mod error;
mod inventory;
mod keys;
mod scheduled;
mod signing;
mod validate;

pub use audit_ops::{Tail, event_to_pb};
pub use error::GatewayError;
pub use keys::to_pb as key_to_pb;
pub use scheduled::ScheduledWork;

use crate::audit::{AuditLog, AuditRecord, Outcome};
use crate::auth::{Principal, TokenTable};
use crate::catalog::{Catalog, KeyRecord};
use crate::lifecycle::{self, LifecycleSettings};
use crate::policy::{Action, KeyAttributes, PolicyContext, PolicyEngine, Resource};
use crate::providers::ProviderRegistry;
use keygate_provider::KeyProvider;
use std::sync::Arc;
use std::time::Duration;

/// Size limits applied before any work.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_plaintext_bytes: usize,
    pub max_associated_data_bytes: usize,
    /// Deadline for one provider call.
    pub provider_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_plaintext_bytes: 64 * 1024,
            max_associated_data_bytes: 8 * 1024,
            provider_timeout: Duration::from_secs(10),
        }
    }
}

pub struct Gateway {
    pub catalog: Catalog,
    pub providers: ProviderRegistry,
    pub policy: PolicyEngine,
    pub audit: AuditLog,
    pub tokens: TokenTable,
    pub limits: Limits,
    pub lifecycle: LifecycleSettings,
    /// Serialises key creation so a name is checked and taken atomically.
    create_lock: tokio::sync::Mutex<()>,
}

/// A fresh request id: a UUIDv7, so ids sort by time and the audit log's request-id index
/// grows at its end instead of dirtying a random page on every append.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Facts about a call from outside the pipeline.
#[derive(Debug, Clone)]
pub struct CallMeta {
    pub request_id: String,
    pub client_address: String,
    /// The bearer token, if the call carried one.
    pub token: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl Gateway {
    pub fn new(
        catalog: Catalog,
        providers: ProviderRegistry,
        policy: PolicyEngine,
        audit: AuditLog,
        tokens: TokenTable,
        limits: Limits,
        lifecycle: LifecycleSettings,
    ) -> Self {
        Self {
            catalog,
            providers,
            policy,
            audit,
            tokens,
            limits,
            lifecycle,
            create_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Opens the pipeline for one call.
    pub fn scope<'g>(&'g self, meta: &'g CallMeta, action: Action) -> Scope<'g> {
        Scope {
            gateway: self,
            meta,
            action,
            principal: None,
            record: AuditRecord {
                source: "gateway".into(),
                actor: "anonymous".into(),
                action: action.as_str().into(),
                request_id: meta.request_id.clone(),
                client_address: meta.client_address.clone(),
                ..Default::default()
            },
            details: serde_json::Map::new(),
        }
    }

    pub fn provider_for(&self, key: &KeyRecord) -> Result<Arc<dyn KeyProvider>, GatewayError> {
        self.providers.get(&key.provider).ok_or_else(|| {
            GatewayError::Unavailable(format!(
                "key '{}' is held by provider '{}', which is not configured on this gateway",
                key.name, key.provider
            ))
        })
    }

    /// Runs one provider call under the deadline; a backend that does not answer in time is
    /// UNAVAILABLE, not a hang.
    pub async fn provider_call<T>(
        &self,
        provider: &str,
        call: impl std::future::Future<Output = keygate_provider::Result<T>>,
    ) -> Result<T, GatewayError> {
        match tokio::time::timeout(self.limits.provider_timeout, call).await {
            Ok(result) => result.map_err(GatewayError::from),
            Err(_) => Err(GatewayError::Unavailable(format!(
                "provider '{provider}' did not answer within {:?}",
                self.limits.provider_timeout
            ))),
        }
    }
}

/// One call in flight: what it has learned so far, for its audit event.
pub struct Scope<'g> {
    gateway: &'g Gateway,
    meta: &'g CallMeta,
    action: Action,
    principal: Option<Arc<Principal>>,
    record: AuditRecord,
    details: serde_json::Map<String, serde_json::Value>,
}

impl<'g> Scope<'g> {
    /// Step 1: who is calling.
    pub fn authenticate(&mut self) -> Result<Arc<Principal>, GatewayError> {
        let token = self.meta.token.as_ref().ok_or_else(|| {
            GatewayError::Unauthenticated(
                "no bearer token: send `authorization: Bearer <token>` metadata".into(),
            )
        })?;
        let principal =
            self.gateway.tokens.authenticate(token).ok_or_else(|| {
                GatewayError::Unauthenticated("the bearer token is not valid".into())
            })?;
        self.record.actor = principal.name.clone();
        self.principal = Some(principal.clone());
        Ok(principal)
    }

    fn principal(&self) -> Result<Arc<Principal>, GatewayError> {
        self.principal
            .clone()
            .ok_or_else(|| GatewayError::Internal("authorization before authentication".into()))
    }

    fn context(&self, crypto_period_seconds: i64) -> PolicyContext {
        PolicyContext {
            client_address: self.meta.client_address.clone(),
            time_ms: crate::time::now_ms(),
            crypto_period_seconds,
        }
    }

    /// Step 3 for any resource; records the decision.
    pub fn authorize(
        &mut self,
        action: Action,
        resource: &Resource<'_>,
        crypto_period_seconds: i64,
    ) -> Result<(), GatewayError> {
        let principal = self.principal()?;
        let context = self.context(crypto_period_seconds);
        let decision = self
            .gateway
            .policy
            .authorize(&principal, action, resource, &context);
        self.record.policy = decision.summary();
        if decision.allowed {
            return Ok(());
        }
        let target = match resource {
            Resource::Key(k) => format!("key '{}'", k.name),
            Resource::AuditLog => "the audit log".to_string(),
            Resource::Provider(name) => format!("provider '{name}'"),
        };
        Err(GatewayError::PermissionDenied(format!(
            "policy denies {} {} on {target}",
            principal.name,
            action.as_str()
        )))
    }

    fn note_key(&mut self, key: &KeyRecord) {
        self.record.key_id = key.id.clone();
        self.record.key_name = key.name.clone();
    }

    /// Steps 2-4 for a key named by the caller.
    pub fn admit(&mut self, name_or_id: &str) -> Result<Arc<KeyRecord>, GatewayError> {
        if name_or_id.is_empty() {
            return Err(GatewayError::InvalidArgument(
                "no key given: set `key` to a key name or id".into(),
            ));
        }
        let key = self.gateway.catalog.get(name_or_id).ok_or_else(|| {
            self.record.key_name = validate::truncate(name_or_id, 200);
            GatewayError::NotFound(format!(
                "no key named or with id '{}'",
                validate::truncate(name_or_id, 200)
            ))
        })?;
        self.admit_record(key, self.action)
    }

    /// Steps 3-4 for a key already resolved (e.g. from a ciphertext), for `action`.
    pub fn admit_record(
        &mut self,
        key: Arc<KeyRecord>,
        action: Action,
    ) -> Result<Arc<KeyRecord>, GatewayError> {
        self.note_key(&key);
        let attrs = key_attributes(&key);
        self.authorize(
            action,
            &Resource::Key(attrs),
            key.crypto_period.as_secs() as i64,
        )?;
        lifecycle::check(action, &key)?;
        Ok(key)
    }

    pub fn note_version(&mut self, version: u32) {
        self.record.key_version = version;
    }

    pub fn note_provider_request(&mut self, request_id: Option<String>) {
        if let Some(id) = request_id {
            self.record.provider_request_id = id;
        }
    }

    pub fn detail(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.details.insert(name.to_string(), value.into());
    }

    /// Step 6: appends the event for this call (whatever its outcome) and waits until it is
    /// durable. A result that cannot be audited is not returned.
    pub async fn finish<T>(mut self, result: Result<T, GatewayError>) -> Result<T, GatewayError> {
        let (outcome, reason) = match &result {
            Ok(_) => (Outcome::Ok, String::new()),
            Err(e) => (e.outcome(), e.to_string()),
        };
        self.record.time_ms = crate::time::now_ms();
        self.record.outcome = outcome.as_str().into();
        self.record.reason = reason;
        if !self.details.is_empty() {
            self.record.details =
                serde_json::Value::Object(std::mem::take(&mut self.details)).to_string();
        }
        match self.gateway.audit.append(self.record).await {
            Ok(_) => result,
            Err(e) => {
                tracing::error!(request_id = %self.meta.request_id, error = %e, "audit append failed; refusing the call");
                Err(GatewayError::Unavailable(e.to_string()))
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_uuid_v7_in_time_order() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_request_id()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 7, "{id}");
        }
        // Sorted as text too: the audit index on request_id only ever grows at its end.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids not increasing");
    }
}
