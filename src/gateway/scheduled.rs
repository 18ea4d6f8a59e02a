//! Work the gateway does on its own (rotation at the end of a crypto-period, destruction at the
//! end of a pending window), run through the same runner as any call, with the system as the
//! actor. The scan reads a snapshot; each operation re-reads its key under the key's lock, so
//! a key changed since the scan (rotated by hand, destruction cancelled) is left as it is.

use super::ops::{DestroyKey, RotateKey, RotationStep};
use super::{Call, Gateway, GatewayError, SystemTask};
use crate::catalog::KeyState;
use std::sync::Arc;

/// A key left to its backend's own rotation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProviderWait {
    /// When the scheduler asks the backend again (Unix ms).
    pub next_look_ms: i64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledWork {
    pub rotated: usize,
    /// Due keys left to a backend that rotates them by itself, within the grace.
    pub left_to_provider: usize,
    pub destroyed: usize,
    pub failed: usize,
}

impl Gateway {
    /// Rotates every enabled key whose crypto-period has ended and destroys every key whose
    /// pending window (or, for a short-lived key, TTL) has ended, as of `now_ms`; stops between two keys once `stop` is
    /// cancelled.
    pub async fn run_due_work(
        self: &Arc<Self>,
        now_ms: i64,
        stop: &tokio_util::sync::CancellationToken,
    ) -> ScheduledWork {
        let mut work = ScheduledWork::default();
        let delay = self.settings().lifecycle.signing_propagation_delay;
        for key in self.keys_snapshot() {
            if stop.is_cancelled() {
                break;
            }
            let ttl_ended = key.state != KeyState::Destroyed
                && key.expires_at_ms.is_some_and(|at| at <= now_ms);
            let result = match key.state {
                _ if ttl_ended => self
                    .run(
                        Call::system(SystemTask::ScheduledDestruction),
                        DestroyKey {
                            key_id: key.id.clone(),
                            now_ms,
                        },
                    )
                    .await
                    .map(|_| work.destroyed += 1),
                KeyState::Enabled if key.rotation_due_at_ms <= now_ms => {
                    if self.waiting_for_provider(&key.id, now_ms) {
                        continue;
                    }
                    let result = self
                        .run(
                            Call::system(SystemTask::ScheduledRotation),
                            RotateKey {
                                key: key.id.clone(),
                                only_if_due_at_ms: Some(now_ms),
                                step: RotationStep::Rotate,
                            },
                        )
                        .await;
                    match result {
                        Err(GatewayError::RotationLeftToProvider { .. }) => {
                            self.wait_for_provider(&key.id, key.rotation_due_at_ms, now_ms);
                            work.left_to_provider += 1;
                            continue;
                        }
                        // A failed look (the backend unreachable) keeps the key's place: it
                        // is asked again when it would have been.
                        Ok(_) => {
                            self.stop_waiting_for_provider(&key.id);
                            work.rotated += 1;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                // A staged version signs once verifiers have had the delay to fetch it.
                KeyState::Enabled
                    if key
                        .staged()
                        .is_some_and(|v| crate::time::after(v.created_at_ms, delay) <= now_ms) =>
                {
                    let staged_by_ms =
                        now_ms.saturating_sub(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    self.run(
                        Call::system(SystemTask::ScheduledRotation),
                        RotateKey {
                            key: key.id.clone(),
                            only_if_due_at_ms: None,
                            step: RotationStep::Promote {
                                staged_by_ms: Some(staged_by_ms),
                            },
                        },
                    )
                    .await
                    .map(|_| work.rotated += 1)
                }
                KeyState::PendingDestruction
                    if key.destruction_at_ms.is_some_and(|at| at <= now_ms) =>
                {
                    self.run(
                        Call::system(SystemTask::ScheduledDestruction),
                        DestroyKey {
                            key_id: key.id.clone(),
                            now_ms,
                        },
                    )
                    .await
                    .map(|_| work.destroyed += 1)
                }
                _ => continue,
            };
            if let Err(e) = result {
                work.failed += 1;
                tracing::warn!(key = %key.name, error = %e, "scheduled key work failed");
            }
        }
        let still_due = self
            .keys_snapshot()
            .iter()
            .filter(|key| key.state == KeyState::Enabled && key.rotation_due_at_ms <= now_ms)
            .count();
        self.telemetry().rotation_due(still_due);
        // Forget keys no longer waiting (rotated by hand, disabled, destroyed).
        let due: std::collections::HashSet<String> = self
            .keys_snapshot()
            .iter()
            .filter(|key| key.state == KeyState::Enabled && key.rotation_due_at_ms <= now_ms)
            .map(|key| key.id.clone())
            .collect();
        self.waits().retain(|id, _| due.contains(id));
        work
    }

    /// Whether `key` was left to its backend's own rotation and is not yet to be looked at
    /// again.
    fn waiting_for_provider(&self, key: &str, now_ms: i64) -> bool {
        self.waits()
            .get(key)
            .is_some_and(|wait| now_ms < wait.next_look_ms)
    }

    /// Leaves `key` (due at `due_ms`) to its backend until the grace ends, looking again
    /// after as long as it has been due (at least a scan, at most a twelfth of the grace): a
    /// backend a minute late is seen within minutes, one a day late costs a dozen reads, each
    /// audited.
    fn wait_for_provider(&self, key: &str, due_ms: i64, now_ms: i64) {
        let lifecycle = &self.settings().lifecycle;
        let late = std::time::Duration::from_millis(u64::try_from(now_ms - due_ms).unwrap_or(0));
        let every = late
            .min(lifecycle.provider_rotation_grace / 12)
            .max(lifecycle.scan_interval);
        self.waits().insert(
            key.to_string(),
            ProviderWait {
                next_look_ms: crate::time::after(now_ms, every),
            },
        );
    }

    fn stop_waiting_for_provider(&self, key: &str) {
        self.waits().remove(key);
    }

    fn waits(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, ProviderWait>> {
        // The map holds only look-again times: a panic while it was held leaves nothing
        // half-done.
        self.rotation_waits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
