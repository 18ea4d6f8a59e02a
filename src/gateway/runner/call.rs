//! Who a call comes from: the facts the transport gives ([`Call`]), the actor they
//! authenticate to ([`Actor`]), and whether the caller is still waiting ([`Presence`]).

use crate::auth::Principal;
use crate::config::PrincipalKind;
use crate::policy::Action;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// A bearer token (compared only as a digest).
    Bearer(Zeroizing<Vec<u8>>),
    /// Work keygate starts itself; never reachable from the network.
    System(SystemTask),
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
}

impl SystemTask {
    pub fn action(self) -> Action {
        match self {
            SystemTask::ScheduledRotation => Action::RotateKey,
            SystemTask::ScheduledDestruction => Action::DestroyKey,
        }
    }

    /// Why the system may do it, for the event's policy field.
    pub fn authority(self) -> &'static str {
        match self {
            SystemTask::ScheduledRotation => "system: the key's crypto-period ended",
            SystemTask::ScheduledDestruction => "system: the pending destruction window ended",
        }
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

    /// Held by the waiting side; dropping it marks the caller gone.
    pub fn waiter(&self) -> Waiter {
        Waiter(self.0.clone())
    }
}

pub struct Waiter(Arc<AtomicBool>);

impl Drop for Waiter {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}
