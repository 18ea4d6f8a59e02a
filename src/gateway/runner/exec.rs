//! What an admitted operation may do: use the keys it was admitted for, call their
//! providers, change the catalog under the key's lock, and note facts for its event.
//!
//! An [`Admitted`] key can only be made by the runner's admission, and providers are only
//! reachable through one, so an operation cannot reach a backend for a key that policy and
//! lifecycle did not pass. Catalog writes need the [`KeyLock`] the runner took.

use super::journal::Journal;
use super::operation::{Changes, KeyDraft, Mode, Settings};
use super::{Actor, Call, Gateway};
use crate::approvals::{ApprovalRequest, ApprovalSettings, ApprovalStore, Grant};
use crate::audit::AuditReader;
use crate::auth::Principal;
use crate::catalog::{KeyLock, KeyRecord, KeyState, ListFilter, NameReservation};
use crate::gateway::GatewayError;
use crate::lifecycle::destruction::{
    CopyDestruction, DestructionRecord, DestructionRecords, Ending,
};
use crate::policy::{Action, Decision, PolicyStore, Resource};
use keygate_provider::KeyProvider;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

/// A key that passed resolution, authorization and the lifecycle check for this call.
#[derive(Debug, Clone)]
pub struct Admitted(Arc<KeyRecord>);

impl Admitted {
    pub(super) fn new(record: Arc<KeyRecord>) -> Self {
        Admitted(record)
    }

    pub fn record(&self) -> &Arc<KeyRecord> {
        &self.0
    }
}

impl Deref for Admitted {
    type Target = KeyRecord;
    fn deref(&self) -> &KeyRecord {
        &self.0
    }
}

/// What the call was admitted to act on.
pub(super) enum Subject {
    Key(Admitted),
    NewKey {
        draft: KeyDraft,
        provider: Arc<dyn KeyProvider>,
    },
    Catalog,
    AuditLog,
    Approvals,
    /// An approval request to decide on, and its key (`None`: a pending adoption's, which
    /// is not in the catalog yet).
    Approval {
        request: Box<ApprovalRequest>,
        key: Option<Admitted>,
    },
    Policies,
    Posture,
    Provider {
        name: String,
        provider: Arc<dyn KeyProvider>,
    },
}

/// Locks an admin operation holds until its outcome is on record.
#[derive(Default)]
pub(super) struct Held<'g> {
    pub key: Option<KeyLock>,
    pub name: Option<NameReservation<'g>>,
}

/// What an admitted operation works with; `M` is its [`Mode`]: only `Exec<'_, Changes>` has
/// the catalog's write methods.
pub struct Exec<'a, M: Mode> {
    pub(super) gateway: &'a Gateway,
    pub(super) call: &'a Call,
    pub(super) actor: &'a Actor,
    pub(super) journal: &'a mut Journal,
    pub(super) subject: Subject,
    pub(super) destination: Option<Admitted>,
    pub(super) ciphertext_version: Option<u32>,
    pub(super) held: &'a Held<'a>,
    pub(super) mode: PhantomData<M>,
}

pub(super) fn not_admitted(what: &str) -> GatewayError {
    GatewayError::Internal(format!("the operation was not admitted for {what}"))
}

impl<'a, M: Mode> Exec<'a, M> {
    pub fn settings(&self) -> Settings<'_> {
        self.gateway.settings()
    }

    /// The key the call was admitted for.
    pub fn key(&self) -> Result<&Admitted, GatewayError> {
        match &self.subject {
            Subject::Key(k) | Subject::Approval { key: Some(k), .. } => Ok(k),
            _ => Err(not_admitted("a key")),
        }
    }

    /// The second key (ReEncrypt's destination), if the call named one.
    pub fn destination(&self) -> Option<&Admitted> {
        self.destination.as_ref()
    }

    /// The version a ciphertext named (calls admitted from a ciphertext).
    pub fn ciphertext_version(&self) -> Result<u32, GatewayError> {
        self.ciphertext_version
            .ok_or_else(|| not_admitted("a ciphertext"))
    }

    /// The key being created (CreateKey).
    pub fn draft(&self) -> Result<&KeyDraft, GatewayError> {
        match &self.subject {
            Subject::NewKey { draft, .. } => Ok(draft),
            _ => Err(not_admitted("a new key")),
        }
    }

    pub fn note_version(&mut self, version: u32) {
        self.journal.version(version);
    }

    /// The key the event is about, when it is not the admitted one (ReEncrypt's destination,
    /// a created key).
    pub fn note_key(&mut self, key: &KeyRecord) {
        self.journal.key(key);
    }

    pub fn detail(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.journal.detail(name, value.into());
    }

    // --- reading the catalog and the log ---

    pub fn list_keys(&self, filter: &ListFilter, after: &str, limit: usize) -> Vec<Arc<KeyRecord>> {
        self.gateway.catalog.list(filter, after, limit)
    }

    pub fn all_keys(&self) -> Vec<Arc<KeyRecord>> {
        self.gateway.catalog.all()
    }

    pub fn key_by_id(&self, id: &str) -> Option<Arc<KeyRecord>> {
        self.gateway.catalog.get_by_id(id)
    }

    /// A key by name or id, to name in a filter or an explanation; it admits nothing.
    pub fn lookup_key(&self, name_or_id: &str) -> Option<Arc<KeyRecord>> {
        self.gateway.catalog.get(name_or_id)
    }

    /// Whether the caller may read `key` (GetKey), for listings; decided as admission
    /// decides, without an event of its own.
    pub fn may_read(&self, key: &KeyRecord) -> bool {
        self.gateway
            .decide(
                self.call,
                self.actor,
                Action::GetKey,
                &Resource::Key(self.gateway.key_attributes(key)),
            )
            .is_some_and(|decision| decision.allowed())
    }

    /// The approval request the call was admitted to decide on.
    pub fn approval(&self) -> Result<&ApprovalRequest, GatewayError> {
        match &self.subject {
            Subject::Approval { request, .. } => Ok(request),
            _ => Err(not_admitted("an approval request")),
        }
    }

    pub fn approvals(&self) -> &ApprovalStore {
        &self.gateway.approvals
    }

    pub fn approval_settings(&self) -> &ApprovalSettings {
        &self.gateway.approval_settings
    }

    /// The approvals that released this call, for an approved change.
    pub fn grant(&self) -> Option<&Grant> {
        match &self.call.credentials {
            super::Credentials::Approved(grant) => Some(grant),
            _ => None,
        }
    }

    /// The calling principal's name.
    pub fn actor_name(&self) -> String {
        self.actor.name()
    }

    /// A Tail stream slot for the caller, within `limits.max_tail_streams_per_principal`.
    pub fn tail_slot(&self) -> Result<super::TailSlot, GatewayError> {
        let principal = self.actor.name();
        self.gateway
            .tails
            .take(&principal)
            .ok_or_else(|| GatewayError::TailLimit {
                principal,
                limit: self.gateway.tails.limit(),
            })
    }

    /// This call's request id (its audit events).
    pub fn request_id(&self) -> &str {
        &self.call.request_id
    }

    /// The policy set in force.
    pub fn policies(&self) -> &PolicyStore {
        &self.gateway.policy
    }

    /// Builds the policy set again from its source and puts it in force if valid, on a
    /// blocking thread (it reads and validates files), one reload at a time.
    pub async fn reload_policies(&self) -> crate::policy::ReloadOutcome {
        let store = self.gateway.policy.clone();
        match tokio::task::spawn_blocking(move || store.reload()).await {
            Ok(outcome) => outcome,
            Err(e) => crate::policy::ReloadOutcome {
                policy_count: self.gateway.policy.current().policy_count(),
                error: Some(format!("the reload stopped before it finished: {e}")),
            },
        }
    }

    /// The principal configured under `name`.
    pub fn principal(&self, name: &str) -> Option<Arc<Principal>> {
        self.gateway.tokens.principal(name)
    }

    /// How policy decides `action` by `principal` on `key` (or on the action's own resource),
    /// as a call would see it now, approvals aside. Nothing is recorded but this call's event.
    pub fn explain(
        &self,
        principal: &Principal,
        action: Action,
        key: Option<&KeyRecord>,
    ) -> Result<Decision, GatewayError> {
        self.gateway.explain(self.call, principal, action, key)
    }

    /// The records of a key's destructions, newest first.
    pub async fn destruction_records(
        &self,
        key: &KeyRecord,
    ) -> Result<Vec<DestructionRecord>, GatewayError> {
        Ok(self
            .gateway
            .destructions
            .for_key(&key.id)
            .await
            .map_err(crate::catalog::CatalogError::from)?)
    }

    /// The audit log, to read: operations never write events themselves (the runner does).
    pub fn audit_log(&self) -> AuditReader<'_> {
        self.gateway.audit.reader()
    }

    /// Whether audit events can be written now (calls are refused while they cannot).
    pub fn audit_writable(&self) -> bool {
        self.gateway.audit.is_writable()
    }

    /// Refuses `change` to `key` when another provider instance cannot work without it (the
    /// key that seals a local provider's root key): destroying or disabling it, or retiring
    /// the version in use, would make every key of that instance unrecoverable at its next
    /// start. Checked by every operation that can do one of them.
    pub fn refuse_if_needed(
        &self,
        key: &KeyRecord,
        change: NeededChange,
    ) -> Result<(), GatewayError> {
        let registry = &self.gateway.providers;
        let needing: Vec<String> = registry
            .names()
            .into_iter()
            .filter(|name| {
                registry.get(name).is_some_and(|p| {
                    p.keys_it_needs().iter().any(|needed| {
                        needed.provider == key.provider
                            && needed.uri == key.provider_uri
                            && match change {
                                NeededChange::Destroy | NeededChange::Disable => true,
                                NeededChange::RetireBelow(below) => {
                                    needed.version.is_some_and(|v| v < below)
                                }
                            }
                    })
                })
            })
            .map(|name| format!("'{name}'"))
            .collect();
        if needing.is_empty() {
            return Ok(());
        }
        Err(GatewayError::KeyWrapsMasterKey {
            key: key.name.clone(),
            change: change.to_string(),
            providers: needing,
        })
    }

    /// Each configured provider instance: its name, whether it is the default, and its
    /// circuit breaker's state.
    pub fn provider_health(&self) -> Vec<(String, bool, &'static str)> {
        let default = self.gateway.providers.default_name();
        self.gateway
            .providers
            .names()
            .into_iter()
            .map(|name| {
                let breaker = self.gateway.telemetry.breaker_state(&name);
                (name.clone(), name == default, breaker)
            })
            .collect()
    }
}

/// What [`Exec::refuse_if_needed`] is asked about.
#[derive(Debug, Clone, Copy)]
pub enum NeededChange {
    Destroy,
    Disable,
    /// Retiring every version below this one.
    RetireBelow(u32),
}

impl std::fmt::Display for NeededChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NeededChange::Destroy => f.write_str("destroying"),
            NeededChange::Disable => f.write_str("disabling"),
            NeededChange::RetireBelow(below) => write!(f, "retiring the versions below {below} of"),
        }
    }
}

/// Changing the catalog: only for [`Changes`] operations, whose key the runner has locked.
impl Exec<'_, Changes> {
    fn lock(&self) -> Result<&KeyLock, GatewayError> {
        self.held
            .key
            .as_ref()
            .ok_or_else(|| not_admitted("a change"))
    }

    /// Adds the version the backend just made: the primary, or `staged` behind the current
    /// primary (a signing key's staged rotation).
    pub async fn add_version(
        &mut self,
        provider_version: String,
        staged: bool,
    ) -> Result<Arc<KeyRecord>, GatewayError> {
        let lock = self.lock()?;
        let record = self
            .gateway
            .catalog
            .add_version(lock, provider_version, crate::time::now_ms(), staged)
            .await?;
        self.journal.version(record.newest().version);
        Ok(record)
    }

    /// Makes the locked key's staged version its primary.
    pub async fn promote_staged(&mut self, expected: u32) -> Result<Arc<KeyRecord>, GatewayError> {
        let lock = self.lock()?;
        let record = self.gateway.catalog.promote(lock, expected).await?;
        self.journal.version(record.primary().version);
        Ok(record)
    }

    pub async fn set_state(
        &mut self,
        expected: KeyState,
        state: KeyState,
        destruction_at_ms: Option<i64>,
    ) -> Result<Arc<KeyRecord>, GatewayError> {
        let lock = self.lock()?;
        Ok(self
            .gateway
            .catalog
            .set_state(lock, expected, state, destruction_at_ms)
            .await?)
    }

    pub async fn set_retired_below(
        &mut self,
        expected: u32,
        floor: u32,
    ) -> Result<Arc<KeyRecord>, GatewayError> {
        let lock = self.lock()?;
        Ok(self
            .gateway
            .catalog
            .set_retired_below(lock, expected, floor)
            .await?)
    }

    pub async fn set_owner(
        &mut self,
        expected: &str,
        owner: &str,
    ) -> Result<Arc<KeyRecord>, GatewayError> {
        let lock = self.lock()?;
        Ok(self
            .gateway
            .catalog
            .set_owner(lock, expected, owner)
            .await?)
    }

    /// Starts the locked key's destruction record: who asked (the caller, or an approved
    /// request's requester), who approved, the window.
    pub async fn record_destruction_scheduled(
        &mut self,
        window: std::time::Duration,
        destruction_at_ms: i64,
        checklist: Vec<crate::lifecycle::destruction::Check>,
        copies: Vec<CopyDestruction>,
    ) -> Result<(), GatewayError> {
        let key = self.key()?.clone();
        let mut record = self.destruction_record(&key, window, destruction_at_ms, checklist);
        record.copies = copies;
        self.records()
            .scheduled(&record)
            .await
            .map_err(crate::catalog::CatalogError::from)?;
        Ok(())
    }

    /// A destruction record for `key` as this call schedules it: who asked (the caller, or
    /// an approved request's requester), who approved, the window.
    pub(super) fn destruction_record(
        &self,
        key: &KeyRecord,
        window: std::time::Duration,
        destruction_at_ms: i64,
        checklist: Vec<crate::lifecycle::destruction::Check>,
    ) -> DestructionRecord {
        let (approval_id, approved_by) = match self.grant() {
            Some(grant) => (Some(grant.request_id.clone()), grant.approvers.clone()),
            None => (None, Vec::new()),
        };
        DestructionRecord {
            id: self.call.request_id.clone(),
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            environment: key.environment.clone(),
            provider: key.provider.clone(),
            provider_uri: key.provider_uri.to_string(),
            requested_by: self.actor.name(),
            approval_id,
            approved_by,
            window_seconds: window.as_secs(),
            scheduled_at_ms: crate::time::now_ms(),
            destruction_at_ms,
            state: "scheduled".into(),
            cancelled_by: None,
            cancelled_at_ms: None,
            destroyed_at_ms: None,
            destroy_call_id: None,
            versions: Vec::new(),
            method: None,
            checklist,
            copies: Vec::new(),
        }
    }

    /// Ends the locked key's open destruction record: cancelled by the caller, or destroyed.
    pub async fn record_destruction_ended(
        &mut self,
        destroyed: Option<(&[u32], &str)>,
    ) -> Result<(), GatewayError> {
        let key = self.key()?.clone();
        let now = crate::time::now_ms();
        let by = self.actor.name();
        let ending = match destroyed {
            None => Ending::Cancelled {
                by: &by,
                at_ms: now,
            },
            Some((versions, method)) => Ending::Destroyed {
                at_ms: now,
                call_id: &self.call.request_id,
                versions,
                method,
            },
        };
        self.records()
            .ended(&key, ending)
            .await
            .map_err(crate::catalog::CatalogError::from)?;
        Ok(())
    }

    pub(super) fn records(&self) -> &DestructionRecords {
        &self.gateway.destructions
    }

    pub async fn insert_key(&mut self, record: KeyRecord) -> Result<Arc<KeyRecord>, GatewayError> {
        let reservation = self
            .held
            .name
            .as_ref()
            .ok_or_else(|| not_admitted("a creation"))?;
        let record = self.gateway.catalog.insert(reservation, record).await?;
        self.journal.key(&record);
        Ok(record)
    }
}
