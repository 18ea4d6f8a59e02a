//! What a provider may know of the call it serves: the gateway's request id.
//!
//! The runner sets it around an operation's execution; a provider reads it with
//! [`request_id`] and sends it where the backend's own audit log records it (a client
//! request id header, a user agent), so the backend's audit records join keygate's events.
//! It is a task-local rather than a parameter so that every provider method, and the kit's
//! decorators around them, see it without each signature carrying it.

use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// Runs `work` with `request_id` as the current call's request id.
pub async fn with_request_id<F: Future>(request_id: &str, work: F) -> F::Output {
    REQUEST_ID.scope(Arc::from(request_id), work).await
}

/// The request id of the call being served, or `None` outside a call (a test, a tool).
pub fn request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
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
}
