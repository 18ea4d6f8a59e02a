//! Work the gateway does on its own (rotation at the end of a crypto-period, destruction at the
//! end of a pending window), audited like any call, with the scheduler as the actor.

use super::{CallMeta, Gateway, GatewayError};
use crate::catalog::{KeyRecord, KeyState};
use crate::policy::Action;

const SCHEDULER: &str = "keygate:scheduler";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledWork {
    pub rotated: usize,
    pub destroyed: usize,
    pub failed: usize,
}

impl Gateway {
    /// Rotates every enabled key whose crypto-period has ended and destroys every key whose
    /// pending window has ended, as of `now_ms`.
    pub async fn run_due_work(&self, now_ms: i64) -> ScheduledWork {
        let mut work = ScheduledWork::default();
        for key in self.catalog.all() {
            let result = match key.state {
                KeyState::Enabled if key.rotation_due_at_ms <= now_ms => self
                    .scheduled_rotation(&key)
                    .await
                    .map(|_| work.rotated += 1),
                KeyState::PendingDestruction
                    if key.destruction_at_ms.is_some_and(|at| at <= now_ms) =>
                {
                    self.scheduled_destruction(&key)
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
        work
    }

    fn system_meta() -> CallMeta {
        CallMeta {
            request_id: super::new_request_id(),
            client_address: "internal".into(),
            token: None,
        }
    }

    async fn scheduled_rotation(&self, key: &KeyRecord) -> Result<(), GatewayError> {
        let meta = Self::system_meta();
        let mut scope = self.scope(&meta, Action::RotateKey);
        scope.record.actor = SCHEDULER.into();
        scope.record.policy = "system: the key's crypto-period ended".into();
        scope.note_key(key);
        let result = async {
            let (updated, request_id) = self.rotate_record(key).await?;
            scope.note_provider_request(request_id);
            scope.note_version(updated.primary().version);
            Ok(())
        }
        .await;
        scope.finish(result).await
    }

    async fn scheduled_destruction(&self, key: &KeyRecord) -> Result<(), GatewayError> {
        let meta = Self::system_meta();
        let mut scope = self.scope(&meta, Action::ScheduleKeyDestruction);
        scope.record.action = "DestroyKey".into();
        scope.record.actor = SCHEDULER.into();
        scope.record.policy = "system: the pending destruction window ended".into();
        scope.note_key(key);
        let result = async {
            let provider = self.provider_for(key)?;
            let reply = self
                .provider_call(&key.provider, provider.destroy(&key.provider_uri))
                .await?;
            scope.note_provider_request(reply.request_id);
            // The destruction record: what was destroyed, where, and how many versions.
            scope.detail("provider", key.provider.clone());
            scope.detail("provider_uri", key.provider_uri.to_string());
            scope.detail("versions_destroyed", key.versions.len());
            self.catalog
                .set_state(key, KeyState::Destroyed, key.destruction_at_ms)
                .await?;
            Ok(())
        }
        .await;
        scope.finish(result).await
    }
}
