//! Fault injection shared by both emulators. Everything is off until a test
//! (or the admin endpoint) turns it on, and each fault is consumed per call.

use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

/// Faults to inject into the next requests an emulator answers.
#[derive(Debug)]
pub struct Hooks {
    fail_remaining: AtomicU32,
    fail_status: AtomicU16,
    retry_after_secs: AtomicU32,
    corrupt_remaining: AtomicU32,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            fail_remaining: AtomicU32::new(0),
            fail_status: AtomicU16::new(503),
            retry_after_secs: AtomicU32::new(1),
            corrupt_remaining: AtomicU32::new(0),
        }
    }
}

/// One injected failure: the HTTP status and the `Retry-After` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFailure {
    pub status: u16,
    pub retry_after_secs: u32,
}

impl Hooks {
    /// Answer the next `count` API calls with `status` (429 or 503 make sense)
    /// instead of serving them.
    pub fn fail_next(&self, count: u32, status: u16) {
        self.fail_status.store(status, Ordering::SeqCst);
        self.fail_remaining.store(count, Ordering::SeqCst);
    }

    /// The `Retry-After` value (seconds) sent with injected failures.
    pub fn set_retry_after(&self, secs: u32) {
        self.retry_after_secs.store(secs, Ordering::SeqCst);
    }

    /// Flip one bit of the response checksum in the next `count` responses
    /// that carry one (GCP `*Crc32c` fields), to exercise client integrity checks.
    pub fn corrupt_next_checksums(&self, count: u32) {
        self.corrupt_remaining.store(count, Ordering::SeqCst);
    }

    /// How many injected failures are still pending.
    pub fn pending_failures(&self) -> u32 {
        self.fail_remaining.load(Ordering::SeqCst)
    }

    pub(crate) fn take_failure(&self) -> Option<InjectedFailure> {
        take_one(&self.fail_remaining).then(|| InjectedFailure {
            status: self.fail_status.load(Ordering::SeqCst),
            retry_after_secs: self.retry_after_secs.load(Ordering::SeqCst),
        })
    }

    pub(crate) fn take_corruption(&self) -> bool {
        take_one(&self.corrupt_remaining)
    }
}

/// Decrement `counter` if it is positive; true when a unit was consumed.
fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// `POST /_emulator/fail-next?count=N&status=429|503` and
/// `POST /_emulator/corrupt-checksums?count=N`, for driving the hooks of a
/// server started by hand.
pub(crate) fn admin_routes(hooks: std::sync::Arc<Hooks>) -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route("/_emulator/fail-next", post(admin_fail_next))
        .route("/_emulator/corrupt-checksums", post(admin_corrupt))
        .with_state(hooks)
}

type Params = std::collections::HashMap<String, String>;
type AdminResult = Result<axum::http::StatusCode, (axum::http::StatusCode, String)>;

fn count_param(q: &Params) -> Result<u32, (axum::http::StatusCode, String)> {
    q.get("count").map_or(Ok(1), |c| {
        c.parse::<u32>().map_err(|_| {
            (
                axum::http::StatusCode::BAD_REQUEST,
                "count must be a non-negative integer".to_string(),
            )
        })
    })
}

async fn admin_fail_next(
    axum::extract::State(hooks): axum::extract::State<std::sync::Arc<Hooks>>,
    axum::extract::Query(q): axum::extract::Query<Params>,
) -> AdminResult {
    let count = count_param(&q)?;
    let status = match q.get("status").map(String::as_str) {
        None | Some("503") => 503,
        Some("429") => 429,
        Some(other) => {
            return Err((
                axum::http::StatusCode::BAD_REQUEST,
                format!("status must be 429 or 503, not {other}"),
            ));
        }
    };
    hooks.fail_next(count, status);
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn admin_corrupt(
    axum::extract::State(hooks): axum::extract::State<std::sync::Arc<Hooks>>,
    axum::extract::Query(q): axum::extract::Query<Params>,
) -> AdminResult {
    hooks.corrupt_next_checksums(count_param(&q)?);
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_one_per_call() {
        let hooks = Hooks::default();
        assert_eq!(hooks.take_failure(), None);
        hooks.fail_next(2, 429);
        assert_eq!(hooks.take_failure().map(|f| f.status), Some(429));
        assert_eq!(hooks.take_failure().map(|f| f.status), Some(429));
        assert_eq!(hooks.take_failure(), None);
        hooks.corrupt_next_checksums(1);
        assert!(hooks.take_corruption());
        assert!(!hooks.take_corruption());
    }
}
