//! A backend's own word on when to try again (HTTP `Retry-After` on a 429 or 503).
//!
//! A provider that reads one calls [`backend_asked_to_wait`] before returning its
//! `Throttled` or `Unavailable` error. The guard scopes a slot around every attempt and, when
//! it retries, pauses at least that long; when the wait would pass the call's deadline it
//! gives up at once instead of sleeping into it. Outside the guard the call does nothing.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    static ASKED: Cell<Option<Duration>>;
}

/// Records that the backend asked for `wait` before the next attempt (the longest wait
/// asked during one attempt counts).
pub fn backend_asked_to_wait(wait: Duration) {
    let _ = ASKED.try_with(|slot| {
        slot.set(Some(slot.get().map_or(wait, |w| w.max(wait))));
    });
}

/// Runs one attempt with a fresh slot; returns its output and the wait the backend asked for.
pub(crate) async fn attempt<F: Future>(work: F) -> (F::Output, Option<Duration>) {
    ASKED
        .scope(Cell::new(None), async {
            let out = work.await;
            (out, ASKED.with(Cell::get))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_longest_wait_of_an_attempt_is_seen_and_nothing_leaks_outside() {
        backend_asked_to_wait(Duration::from_secs(9));
        let ((), asked) = attempt(async {
            backend_asked_to_wait(Duration::from_secs(1));
            backend_asked_to_wait(Duration::from_secs(3));
        })
        .await;
        assert_eq!(asked, Some(Duration::from_secs(3)));
        let ((), asked) = attempt(async {}).await;
        assert_eq!(asked, None);
    }
}
