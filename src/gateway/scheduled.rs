//! Work the gateway does on its own (rotation at the end of a crypto-period, destruction at the
//! end of a pending window), run through the same runner as any call, with the system as the
//! actor. The scan reads a snapshot; each operation re-reads its key under the key's lock, so
//! a key changed since the scan (rotated by hand, destruction cancelled) is left as it is.

use super::ops::{DestroyKey, RotateKey, RotationStep};
use super::{Call, Gateway, SystemTask};
use crate::catalog::KeyState;
use std::sync::Arc;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledWork {
    pub rotated: usize,
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
                KeyState::Enabled if key.rotation_due_at_ms <= now_ms => self
                    .run(
                        Call::system(SystemTask::ScheduledRotation),
                        RotateKey {
                            key: key.id.clone(),
                            only_if_due_at_ms: Some(now_ms),
                            step: RotationStep::Rotate,
                        },
                    )
                    .await
                    .map(|_| work.rotated += 1),
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
        work
    }
}
