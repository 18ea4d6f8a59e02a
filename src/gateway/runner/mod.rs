//! The operation runner: the one way a call reaches a provider.
//!
//! [`Gateway::run`] takes an [`Operation`] and performs, in order and for every operation:
//! authenticate → check → resolve → authorize → lifecycle → (intent event, for admin
//! operations) → execute → outcome event. The gateway's parts are private to this module, so
//! an operation reaches keys, providers and the catalog only through [`Exec`].
//!
//! When policy answers NeedsApproval, the call stops after its ready step: it stores its
//! change as an approval request (`Operation::pending_change`) and ends with
//! `APPROVAL_PENDING`, audited as `pending-approval`. The change later comes back through
//! [`Gateway::run`] with [`Credentials::Approved`]: authenticated as its requester, authorized
//! with the grant's approvals in the context (only for the very change they approved), and
//! its outcome recorded in the request.
//!
//! Once started, a call runs to its end: a caller that goes away (its deadline passes, it
//! resets the stream, the server's own timeout fires) drops only its wait for the result; the
//! call moves into a task of its own ([`RunToEnd`]), finishes, and its event records that the
//! caller had gone.

mod admission;
mod backend;
mod byok;
mod call;
mod exec;
mod journal;
mod operation;
mod posture;
mod refusal;
mod tails;
pub use tails::TailSlot;

pub use call::{Actor, Call, Credentials, Presence, RunToEnd, SystemTask};
pub use exec::{Admitted, Exec, NeededChange};
pub use operation::{
    Changes, KeyDraft, Mode, Operation, Reads, RequestedAlgorithm, Settings, Target,
};

use crate::approvals::{ApprovalRequest, ApprovalSettings, ApprovalStore, RequestState};
use crate::audit::AuditLog;
use crate::auth::TokenTable;
use crate::catalog::{Catalog, KeyRecord};
use crate::gateway::{GatewayError, Limits};
use crate::lifecycle::LifecycleSettings;
use crate::lifecycle::destruction::DestructionRecords;
use crate::policy::PolicyStore;
use crate::providers::ProviderRegistry;
use exec::Held;
use futures::FutureExt as _;
use journal::Journal;
use keygate_provider::context::CallScope;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// What a gateway is made of.
pub struct GatewayParts {
    pub catalog: Catalog,
    pub providers: ProviderRegistry,
    pub policy: Arc<PolicyStore>,
    pub audit: AuditLog,
    pub tokens: TokenTable,
    pub limits: Limits,
    pub lifecycle: LifecycleSettings,
    pub approvals: ApprovalStore,
    pub approval_settings: ApprovalSettings,
    pub destructions: DestructionRecords,
    /// Inventory scans and findings.
    pub posture: crate::posture::Posture,
    /// Counts every call (and, through the registry's guards, every provider call).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

pub struct Gateway {
    /// Shared with the catalog's sync task on PostgreSQL ([`crate::catalog::sync`]).
    catalog: Arc<Catalog>,
    providers: ProviderRegistry,
    policy: Arc<PolicyStore>,
    audit: AuditLog,
    tokens: TokenTable,
    limits: Limits,
    lifecycle: LifecycleSettings,
    approvals: ApprovalStore,
    approval_settings: ApprovalSettings,
    destructions: DestructionRecords,
    posture: crate::posture::Posture,
    telemetry: Arc<crate::telemetry::Telemetry>,
    /// Bounds the calls running at once, including those their clients left.
    in_flight: Arc<Semaphore>,
    /// Bounds the Tail streams each principal keeps open.
    tails: Arc<tails::TailSlots>,
    /// Calls whose clients left, finishing in tasks of their own.
    detached: TaskTracker,
    /// Set when shutdown begins: calls not yet admitted are refused, so the drain waits only
    /// for admitted work.
    closing: std::sync::atomic::AtomicBool,
    /// Keys left to a backend that rotates them by itself, each with when the scheduler looks
    /// again (Unix ms), so a waiting key costs a backend read now and then, not every scan.
    pub(crate) rotation_waits: std::sync::Mutex<
        std::collections::HashMap<String, crate::gateway::scheduled::ProviderWait>,
    >,
}

impl Gateway {
    /// The catalog, for a task that outlives a borrow of the gateway.
    pub fn shared_catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    pub fn new(parts: GatewayParts) -> Self {
        let GatewayParts {
            catalog,
            providers,
            policy,
            audit,
            tokens,
            limits,
            lifecycle,
            approvals,
            approval_settings,
            destructions,
            posture,
            telemetry,
        } = parts;
        Self {
            in_flight: Arc::new(Semaphore::new(limits.max_calls_in_flight)),
            tails: tails::TailSlots::new(limits.max_tail_streams_per_principal),
            detached: TaskTracker::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
            rotation_waits: Default::default(),
            catalog: Arc::new(catalog),
            providers,
            policy,
            audit,
            tokens,
            limits,
            lifecycle,
            approvals,
            approval_settings,
            destructions,
            posture,
            telemetry,
        }
    }

    /// The gateway's counters and histograms (for the Prometheus endpoint).
    pub fn telemetry(&self) -> &Arc<crate::telemetry::Telemetry> {
        &self.telemetry
    }

    pub fn settings(&self) -> Settings<'_> {
        Settings {
            limits: &self.limits,
            lifecycle: &self.lifecycle,
            default_provider: self.providers.default_name(),
        }
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.providers.names()
    }

    /// Each provider instance's name and kind (`local`, `pkcs11`, `aws-kms`, …).
    pub fn provider_kinds(&self) -> Vec<(String, &'static str)> {
        self.providers
            .names()
            .into_iter()
            .filter_map(|name| {
                let kind = self.providers.get(&name)?.kind();
                Some((name, kind))
            })
            .collect()
    }

    pub fn policy_count(&self) -> usize {
        self.policy.current().policy_count()
    }

    /// The policy set in force, and its reloading.
    pub fn policies(&self) -> &Arc<PolicyStore> {
        &self.policy
    }

    pub fn lifecycle(&self) -> &LifecycleSettings {
        &self.lifecycle
    }

    pub fn approval_settings(&self) -> &ApprovalSettings {
        &self.approval_settings
    }

    pub(crate) fn approval_store(&self) -> &ApprovalStore {
        &self.approvals
    }

    /// How long an admitted call may work (`limits.request_timeout`).
    pub(crate) fn call_timeout(&self) -> std::time::Duration {
        self.limits.call_timeout
    }

    /// The tracker of calls (and approved changes) that run to their end in tasks of their
    /// own.
    pub(crate) fn detached(&self) -> &TaskTracker {
        &self.detached
    }

    /// Whether the audit log can be written (see [`AuditLog::watch_writable`]).
    pub fn audit_writable(&self) -> tokio::sync::watch::Receiver<bool> {
        self.audit.watch_writable()
    }

    /// Every key, read-only (the scheduler's scan).
    pub fn keys_snapshot(&self) -> Vec<Arc<KeyRecord>> {
        self.catalog.all()
    }

    /// One key by id or name, read-only, outside any call (the KMS plugin's Status reads its
    /// key's current version).
    pub fn key_record(&self, name_or_id: &str) -> Option<Arc<KeyRecord>> {
        self.catalog.get(name_or_id)
    }

    /// Runs `op` for `call` to its end and returns its result. Dropping the returned future
    /// does not stop an admitted call: it completes and is audited, marked as abandoned by
    /// its caller.
    pub async fn run<O: Operation>(
        self: &Arc<Self>,
        call: Call,
        op: O,
    ) -> Result<O::Output, GatewayError> {
        let presence = Presence::default();
        let span = tracing::info_span!(
            "call",
            request_id = %call.request_id,
            action = %op.action(),
            principal = tracing::field::Empty,
            key = tracing::field::Empty,
            provider = tracing::field::Empty,
        );
        // The permit travels with the call, into its own task if the caller leaves, so calls
        // abandoned by their clients still count against the limit.
        let permit = self.in_flight.clone().try_acquire_owned().ok();
        let gateway = self.clone();
        let journal_span = span.clone();
        let watch = presence.clone();
        let call = async move {
            // Boxed here, so the call's large state is built once, in place, and never
            // copied around as the wrappers below move.
            Box::pin(gateway.run_to_end(&call, op, watch, journal_span, permit)).await
        };
        RunToEnd::new(call.instrument(span), presence, self.detached.clone()).await
    }

    /// For shutdown: admits no new call (those waiting for a key's lock are refused, audited,
    /// with nothing done) and waits, at most `bound`, for the admitted calls whose clients
    /// left to finish and be audited. An admitted call takes at most the call timeout plus
    /// its audit append.
    pub async fn drain(&self, bound: std::time::Duration) -> bool {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.detached.close();
        tokio::time::timeout(bound, self.detached.wait())
            .await
            .is_ok()
    }

    async fn run_to_end<O: Operation>(
        &self,
        call: &Call,
        op: O,
        presence: Presence,
        span: tracing::Span,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<O::Output, GatewayError> {
        let result = self.run_audited(call, op, presence, span, permit).await;
        // An approved change closes its request however it ended, refused before admission
        // included.
        if let Credentials::Approved(grant) = &call.credentials {
            let (executed, outcome) = match &result {
                Ok(_) => (true, "carried out".to_string()),
                Err(e) => (false, format!("{}: {e}", e.reason())),
            };
            if let Err(e) = self
                .approvals
                .finish(&grant.request_id, executed, &outcome)
                .await
            {
                tracing::error!(
                    approval_id = %grant.request_id,
                    error = %e,
                    "could not record how an approved change ended; its audit events say"
                );
            }
        }
        result
    }

    async fn run_audited<O: Operation>(
        &self,
        call: &Call,
        op: O,
        presence: Presence,
        span: tracing::Span,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<O::Output, GatewayError> {
        if !self.audit.is_writable() {
            // Nothing can be audited, so nothing is done; the recovery event counts these.
            self.audit.note_refused();
            return Err(GatewayError::Audit(crate::audit::AuditError::Unwritable));
        }
        let action = op.action();
        let mut journal = Journal::open(call, action, span);
        let mut held = Held::default();
        let work = async {
            if permit.is_none() {
                return Err(GatewayError::Overloaded {
                    limit: self.limits.max_calls_in_flight,
                });
            }
            self.admit_and_execute(call, op, &presence, &mut held, &mut journal)
                .await
        };
        let result = AssertUnwindSafe(work)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!("the call panicked; it is audited as an internal error");
                Err(GatewayError::Internal(
                    "the call failed inside keygate; nothing was changed after the failure point"
                        .into(),
                ))
            });
        let result = journal
            .finish(&self.audit, &self.telemetry, result, presence.gone())
            .await;
        // Locks go only once the outcome is on record, so a key's events stay in order.
        drop(held);
        drop(permit);
        result
    }

    async fn admit_and_execute<'g, O: Operation>(
        &'g self,
        call: &Call,
        mut op: O,
        presence: &Presence,
        held: &mut Held<'g>,
        journal: &mut Journal,
    ) -> Result<O::Output, GatewayError> {
        if let Credentials::Approved(grant) = &call.credentials {
            journal.detail("approval_id", grant.request_id.clone().into());
            journal.detail("approvers", grant.approvers.clone().into());
        }
        let actor = self.authenticate(call)?;
        journal.actor(&actor);
        op.check(&self.settings())?;
        let admission = self.admit(call, &actor, &op, held, journal).await?;
        let needs_approval = admission.needs_approval;
        let mut cx = Exec {
            gateway: self,
            call,
            actor: &actor,
            journal,
            subject: admission.subject,
            destination: admission.destination,
            ciphertext_version: admission.ciphertext_version,
            held,
            mode: PhantomData,
        };
        op.ready(&cx)?;
        // Admitted calls run to their end; a caller that left before admission gets nothing
        // done, so a retry after its deadline cannot repeat a change.
        if presence.gone() {
            return Err(GatewayError::CallerGone);
        }
        let at_shutdown =
            matches!(&call.credentials, Credentials::System(task) if task.runs_at_shutdown());
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) && !at_shutdown {
            return Err(GatewayError::ShuttingDown);
        }
        if needs_approval {
            return Err(self.open_request(call, &actor, &op, &mut cx).await);
        }
        if <O::Mode as Mode>::CHANGES {
            for (name, value) in op.intent_details() {
                cx.journal.detail(name, value);
            }
            cx.journal.intent(&self.audit).await?;
        }
        // The request id reaches the providers, which send it where the backend records it;
        // every provider call ends by the call's deadline; the backends' request ids come
        // back for the event, failures' included.
        let bound = self.limits.call_timeout;
        let scope = CallScope::new(&call.request_id, Some(Instant::now() + bound));
        let work = keygate_provider::context::within(scope.clone(), op.execute(&mut cx));
        let result = if <O::Mode as Mode>::CHANGES {
            // A change is never cut off once its intent is on record: dropping it could stop
            // it between a backend's answer and the catalog write that records it. Its
            // provider calls end by the deadline; the catalog writes are local.
            work.await
        } else {
            match tokio::time::timeout(bound, work).await {
                Ok(result) => result,
                Err(_) => Err(GatewayError::CallTimedOut { after: bound }),
            }
        };
        cx.journal.backend_request_ids(scope.backend_request_ids());
        result
    }
}

impl Gateway {
    /// Policy asks for approvals: store the change as a pending request (or find the open
    /// one for the very same change) and answer with its id. Nothing else happens.
    async fn open_request<O: Operation>(
        &self,
        call: &Call,
        actor: &Actor,
        op: &O,
        cx: &mut Exec<'_, O::Mode>,
    ) -> GatewayError {
        // The key the change is about: an existing one, or (an adoption) the one it will
        // create, whose id the request reserves.
        let key = match (cx.key(), cx.draft()) {
            (Ok(key), _) => Some((key.id.clone(), key.name.clone(), key.environment.clone())),
            (_, Ok(draft)) => Some((
                draft.id.clone(),
                draft.name.clone(),
                draft.environment.clone(),
            )),
            _ => None,
        };
        let (Some(change), Some((key_id, key_name, environment))) = (op.pending_change(), key)
        else {
            return GatewayError::Internal(format!(
                "{} was admitted to wait for approvals without a change to store",
                op.action()
            ));
        };
        let requester = actor.name();
        let now = crate::time::now_ms();
        let target = format!("key '{key_name}'");
        let request = ApprovalRequest {
            id: crate::gateway::new_request_id(),
            digest: change.digest(&key_id, &requester),
            key_id,
            key_name,
            environment,
            change,
            requester,
            request_call_id: call.request_id.clone(),
            quorum: self.approval_settings.quorum,
            created_at_ms: now,
            expires_at_ms: crate::time::after(now, self.approval_settings.expiry),
            state: RequestState::Pending,
            approvals: Vec::new(),
            closed_by: None,
            closed_at_ms: None,
            outcome: None,
            execution_call_id: None,
        };
        let (request, new) = match self.approvals.open(&request, now).await {
            Ok(opened) => opened,
            Err(e) => return e.into(),
        };
        cx.detail("approval_id", request.id.clone());
        cx.detail("approval_digest", request.digest.clone());
        cx.detail("change", request.change.describe());
        cx.detail("quorum", request.quorum);
        cx.detail("expires_at", crate::time::rfc3339(request.expires_at_ms));
        if !new {
            cx.detail("approval_reused", true);
        }
        GatewayError::ApprovalPending {
            id: request.id,
            action: op.action(),
            target,
            quorum: request.quorum,
            expires_at: crate::time::rfc3339(request.expires_at_ms),
        }
    }
}
