//! Who a call comes from: the facts the transport gives ([`Call`]), the actor they
//! authenticate to ([`Actor`]), and whether the caller is still waiting ([`Presence`]).

use crate::auth::Principal;
use crate::config::PrincipalKind;
use crate::policy::Action;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio_util::task::TaskTracker;
use zeroize::Zeroizing;

/// One call as the transport saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub request_id: String,
    pub client_address: String,
    pub credentials: Credentials,
}

#[derive(Debug, Clone)]
pub enum Credentials {
    /// No `authorization` header.
    None,
    /// A bearer token (compared only as a digest), on a connection without a client
    /// certificate.
    Bearer(Zeroizing<Vec<u8>>),
    /// A connection with a verified client certificate (mTLS), with or without a token.
    Certified {
        token: Option<Zeroizing<Vec<u8>>>,
        peer: Arc<crate::auth::PeerIdentity>,
    },
    /// A call on the Kubernetes KMS plugin's UNIX socket (mode 0600: only its owner can
    /// connect), made as the principal configured for the plugin; never reachable from the
    /// network.
    KmsPlugin,
    /// Work keygate starts itself; never reachable from the network, except
    /// [`SystemTask::JwksPublication`], which a fetch of the JWKS endpoint starts and which
    /// may only read the public keys of the keys `[jwks] keys` lists.
    System(SystemTask),
    /// A critical action its approvers' quorum released, run for its requester.
    Approved(Arc<crate::approvals::Grant>),
}

impl Call {
    /// A call keygate makes on its own behalf.
    pub fn system(task: SystemTask) -> Self {
        Call {
            request_id: super::super::new_request_id(),
            client_address: "internal".into(),
            credentials: Credentials::System(task),
        }
    }
}

/// The background work keygate does by itself, each allowed exactly one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemTask {
    /// A key's crypto-period ended.
    ScheduledRotation,
    /// A key's pending destruction window ended.
    ScheduledDestruction,
    /// The policy folder changed.
    PolicyReload,
    /// The audit log's checkpoints: signing them with the audit signing key, and reading that
    /// key's public keys for verification.
    AuditCheckpoint,
    /// Creating the audit signing key when it does not exist yet.
    AuditKeySetup,
    /// The periodic inventory scan (`posture.scan_interval`).
    PostureScan,
    /// The JWKS endpoint building the document of a key `[jwks] keys` lists (the operator's
    /// list is the authority: the endpoint answers anyone).
    JwksPublication,
}

impl SystemTask {
    /// The actions this task may take (and no other).
    pub fn permits(self, action: Action) -> bool {
        match self {
            SystemTask::ScheduledRotation => action == Action::RotateKey,
            SystemTask::ScheduledDestruction => action == Action::DestroyKey,
            SystemTask::AuditCheckpoint => {
                matches!(action, Action::SignAuditCheckpoint | Action::GetPublicKey)
            }
            SystemTask::AuditKeySetup => action == Action::CreateKey,
            SystemTask::PolicyReload => action == Action::ReloadPolicies,
            SystemTask::PostureScan => action == Action::ScanPosture,
            SystemTask::JwksPublication => action == Action::GetPublicKey,
        }
    }

    /// Why the system may do it, for the event's policy field.
    pub fn authority(self) -> &'static str {
        match self {
            SystemTask::ScheduledRotation => "system: the key's crypto-period ended",
            SystemTask::ScheduledDestruction => "system: the pending destruction window ended",
            SystemTask::PolicyReload => "system: the policy folder changed",
            SystemTask::AuditCheckpoint => "system: audit checkpoints (audit.checkpoints)",
            SystemTask::AuditKeySetup => {
                "system: the audit signing key does not exist yet (audit.checkpoints)"
            }
            SystemTask::PostureScan => {
                "system: the periodic inventory scan (posture.scan_interval)"
            }
            SystemTask::JwksPublication => "system: the JWKS endpoint publishes it (jwks.keys)",
        }
    }

    /// Work that still runs while the gateway shuts down (the last checkpoint covers every
    /// call that was audited).
    pub fn runs_at_shutdown(self) -> bool {
        matches!(self, SystemTask::AuditCheckpoint)
    }
}

/// Who acts, typed: the audit log says which kind each event's actor is.
#[derive(Debug, Clone)]
pub enum Actor {
    /// Not yet authenticated (or failed to).
    Anonymous,
    /// A principal calling the API.
    Caller(Arc<Principal>),
    /// keygate itself.
    System(SystemTask),
    /// A principal approving another's request.
    Approver(Arc<Principal>),
    /// A provider's own audit stream, brought into the log.
    Ingester(String),
}

impl Actor {
    pub fn name(&self) -> String {
        match self {
            Actor::Anonymous => "anonymous".into(),
            Actor::Caller(p) | Actor::Approver(p) => p.name.clone(),
            Actor::System(SystemTask::PolicyReload) => "keygate:policy-watcher".into(),
            Actor::System(SystemTask::AuditCheckpoint | SystemTask::AuditKeySetup) => {
                "keygate:audit".into()
            }
            Actor::System(SystemTask::PostureScan) => "keygate:posture".into(),
            Actor::System(SystemTask::JwksPublication) => "keygate:jwks".into(),
            Actor::System(_) => "keygate:scheduler".into(),
            Actor::Ingester(source) => format!("keygate:ingester:{source}"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Anonymous => "anonymous",
            Actor::Caller(p) => match p.kind {
                PrincipalKind::User => "user",
                PrincipalKind::ServiceAccount => "service-account",
            },
            Actor::System(_) => "system",
            Actor::Approver(_) => "approver",
            Actor::Ingester(_) => "ingester",
        }
    }
}

/// Set once the caller stops waiting for the reply (its future was dropped: deadline,
/// cancellation, reset stream). The call itself goes on.
#[derive(Clone, Default)]
pub struct Presence(Arc<AtomicBool>);

impl Presence {
    pub fn gone(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn mark_gone(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A call's future that cannot be cancelled: polled in place while its caller waits (no task
/// of its own, no extra wake-up on the hot path), and moved into a task of its own, to run to
/// its end, if the caller drops it first. Those tasks are tracked, so shutdown waits for them.
pub struct RunToEnd<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    call: Option<Pin<Box<F>>>,
    presence: Presence,
    detached: TaskTracker,
}

impl<F: Future + Send + 'static> RunToEnd<F>
where
    F::Output: Send + 'static,
{
    pub fn new(call: F, presence: Presence, detached: TaskTracker) -> Self {
        RunToEnd {
            call: Some(Box::pin(call)),
            presence,
            detached,
        }
    }
}

impl<F: Future + Send + 'static> Future for RunToEnd<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(call) = self.call.as_mut() else {
            // Polled after it completed: a caller bug, never keygate's.
            return Poll::Pending;
        };
        let done = call.as_mut().poll(cx);
        if done.is_ready() {
            self.call = None;
        }
        done
    }
}

impl<F: Future + Send + 'static> Drop for RunToEnd<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        // While unwinding from a panic in the call itself, its state is not worth resuming.
        if std::thread::panicking() {
            return;
        }
        if let Some(call) = self.call.take() {
            self.presence.mark_gone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    self.detached.spawn_on(
                        async move {
                            let _ = call.await;
                        },
                        &runtime,
                    );
                }
                // No runtime: the process is past shutdown and nothing can run any more.
                Err(_) => tracing::error!("a call was abandoned after shutdown"),
            }
        }
    }
}
