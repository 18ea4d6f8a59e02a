//! What a provider may know of the call it serves, and what it tells the call back.
//!
//! The runner sets a [`CallScope`] around an operation's execution. A provider reads the
//! gateway's [`request_id`] and sends it where the backend's own audit log records it (a
//! client request id header, a user agent), so the backend's records join keygate's events;
//! the kit's guard bounds every provider call by the call's [`deadline`] as well as its own;
//! and every request id a backend answers with, on success or failure, goes into the scope
//! ([`note_backend_request_id`]; the guard notes those of successful replies itself), where
//! the runner collects them for the call's audit event. A call that makes several backend
//! requests (ReEncrypt's decrypt and encrypt, a cancel that also disables) records them all.
//!
//! It is a task-local rather than a parameter so that every provider method, and the kit's
//! decorators around them, see it without each signature carrying it. Work a provider moves
//! to another thread or task does not see it: note ids before handing work off.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::time::Instant;

/// The call a provider serves.
#[derive(Debug, Clone)]
pub struct CallScope {
    request_id: Arc<str>,
    deadline: Option<Instant>,
    backend_ids: Arc<Mutex<Vec<String>>>,
}

impl CallScope {
    pub fn new(request_id: &str, deadline: Option<Instant>) -> Self {
        Self {
            request_id: Arc::from(request_id),
            deadline,
            backend_ids: Arc::default(),
        }
    }

    /// The backends' request ids noted so far, in order, without repeats.
    pub fn backend_request_ids(&self) -> Vec<String> {
        self.backend_ids
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default()
    }

    fn note(&self, id: &str) {
        if id.is_empty() {
            return;
        }
        if let Ok(mut ids) = self.backend_ids.lock()
            && !ids.iter().any(|seen| seen == id)
        {
            ids.push(id.to_string());
        }
    }
}

tokio::task_local! {
    static SCOPE: CallScope;
    /// Set around work whose backend requests must each go alone.
    static ONE_REQUEST_EACH: ();
}

/// Runs `work` with each of its encrypts and decrypts sent as a request of its own, never
/// sharing one with other calls (the guard's `coalesce`): for the one-by-one retry of items
/// whose batch request failed as a whole, which batching them again would only repeat.
pub async fn one_request_each<F: Future>(work: F) -> F::Output {
    ONE_REQUEST_EACH.scope((), work).await
}

/// Whether the work being run may share backend requests (not inside [`one_request_each`]).
pub fn may_share_requests() -> bool {
    ONE_REQUEST_EACH.try_with(|_| ()).is_err()
}

/// Runs `work` inside `scope`.
pub async fn within<F: Future>(scope: CallScope, work: F) -> F::Output {
    SCOPE.scope(scope, work).await
}

/// Runs `work` with `request_id` as the current call's request id and no call deadline.
pub async fn with_request_id<F: Future>(request_id: &str, work: F) -> F::Output {
    within(CallScope::new(request_id, None), work).await
}

/// The request id of the call being served, or `None` outside a call (a test, a tool).
pub fn request_id() -> Option<Arc<str>> {
    SCOPE.try_with(|s| s.request_id.clone()).ok()
}

/// When the call being served must be done; provider calls end by then whatever their own
/// deadline says.
pub fn deadline() -> Option<Instant> {
    SCOPE.try_with(|s| s.deadline).ok().flatten()
}

/// Records a request id the backend answered with (an error response's included), for the
/// call's audit event. Outside a call it does nothing.
pub fn note_backend_request_id(id: &str) {
    let _ = SCOPE.try_with(|s| s.note(id));
}

/// Where [`traceparent`] comes from: set once by the gateway when it exports traces.
static TRACEPARENT: OnceLock<fn() -> Option<String>> = OnceLock::new();

/// Registers the source of [`traceparent`] (the gateway, when its OpenTelemetry export is on).
pub fn set_traceparent_source(source: fn() -> Option<String>) {
    let _ = TRACEPARENT.set(source);
}

/// The W3C `traceparent` of the provider call being made (its span in the caller's trace),
/// for providers whose backend or SDK can carry it; `None` when calls are not traced.
pub fn traceparent() -> Option<String> {
    TRACEPARENT.get().and_then(|source| source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_request_id_is_seen_inside_the_call_only() {
        assert_eq!(request_id(), None);
        let seen = with_request_id("req-1", async { request_id() }).await;
        assert_eq!(seen.as_deref(), Some("req-1"));
        assert_eq!(request_id(), None);
    }

    #[tokio::test]
    async fn backend_request_ids_are_collected_in_order_once_each() {
        let scope = CallScope::new("req-2", None);
        within(scope.clone(), async {
            note_backend_request_id("a");
            note_backend_request_id("");
            note_backend_request_id("b");
            note_backend_request_id("a");
        })
        .await;
        assert_eq!(scope.backend_request_ids(), ["a", "b"]);
        note_backend_request_id("outside");
        assert_eq!(scope.backend_request_ids(), ["a", "b"]);
    }
}
