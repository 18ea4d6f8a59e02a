//! Changes to a key's versions and state: RotateKey, EnableKey, DisableKey,
//! ScheduleKeyDestruction, CancelKeyDestruction, and the scheduler's DestroyKey; and the
//! records of destructions (ListDestructionRecords).
//!
//! Each is an admin operation: the runner holds the key's lock from resolution to the
//! outcome event and records an intent before the provider is called, so every change
//! applies to the key as it is now.

use super::key_target;
use crate::approvals::PendingChange;
use crate::catalog::{KeyRecord, KeyState};
use crate::gateway::GatewayError;
use crate::gateway::ops::keys::DurationInput;
use crate::gateway::runner::{Changes, Exec, NeededChange, Operation, Reads, Settings, Target};
use crate::lifecycle::destruction::DestructionRecord;
use crate::policy::{Action, OperationFacts};
use crate::time::{format_duration, now_ms, rfc3339};
use keygate_provider::OwnRotation;
use std::sync::Arc;

/// Adds a version and makes it primary. The scheduler sets `only_if_due_at_ms`, so a key
/// rotated by hand since its scan is left alone.
pub struct RotateKey {
    pub key: String,
    pub only_if_due_at_ms: Option<i64>,
    /// What the rotation does: a new primary, a staged version, or the staged one promoted.
    pub step: RotationStep,
}

/// A rotation in one step, or a signing key's staged rotation in two: the new version is
/// published first (its public key listed) and signs only once promoted, so verifiers have
/// fetched it before the first signature they must check with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RotationStep {
    #[default]
    Rotate,
    Stage,
    /// Promote the staged version; with `Some(t)`, only if it was staged at or before `t`
    /// (the scheduler, once the propagation delay has passed).
    Promote {
        staged_by_ms: Option<i64>,
    },
}

impl Operation for RotateKey {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::RotateKey
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    fn ready(&self, cx: &Exec<'_, Changes>) -> Result<(), GatewayError> {
        let key = cx.key()?;
        if let Some(now) = self.only_if_due_at_ms
            && key.rotation_due_at_ms > now
        {
            return Err(GatewayError::NotDueForRotation {
                key: key.name.clone(),
                due: rfc3339(key.rotation_due_at_ms),
            });
        }
        match (self.step, key.staged()) {
            (RotationStep::Stage, _) if key.purpose != keygate_provider::KeyPurpose::Sign => {
                Err(GatewayError::invalid(
                    "stage",
                    format!(
                        "key '{}' does not sign: staging publishes a signing key's next public key before it signs; rotate without --stage",
                        key.name
                    ),
                ))
            }
            (RotationStep::Rotate | RotationStep::Stage, Some(staged)) => {
                Err(GatewayError::invalid(
                    "stage",
                    format!(
                        "key '{}' has version {} staged: promote it first (`keygate key promote {}`)",
                        key.name, staged.version, key.name
                    ),
                ))
            }
            (RotationStep::Promote { .. }, None) => Err(GatewayError::invalid(
                "promote",
                format!(
                    "key '{}' has no staged version to promote; stage one with `keygate key rotate --stage`",
                    key.name
                ),
            )),
            (
                RotationStep::Promote {
                    staged_by_ms: Some(t),
                },
                Some(staged),
            ) if staged.created_at_ms > t => Err(GatewayError::NotDueForRotation {
                key: key.name.clone(),
                due: format!(
                    "once version {} has been published for the propagation delay",
                    staged.version
                ),
            }),
            _ => Ok(()),
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        if let RotationStep::Promote { .. } = self.step {
            let key = cx.key()?.clone();
            let primary = key.primary().version;
            cx.detail("promoted_from", primary);
            return cx.promote_staged(primary).await;
        }
        let staged = self.step == RotationStep::Stage;
        if staged {
            cx.detail("staged", true);
        }
        // A rotation asked for by hand (a suspected compromise, say) always makes new material;
        // the scheduler's adopts what the backend made on its own schedule.
        let own = match self.only_if_due_at_ms {
            Some(_) => cx.own_rotation_in_backend().await?,
            None => OwnRotation::Never,
        };
        let rotated = match own {
            // The backend rotated the key by itself: keygate adopts that version rather than
            // making another.
            OwnRotation::Made(made) => {
                cx.detail("rotated_by", "provider");
                made
            }
            OwnRotation::Expected { at_ms } => {
                let key = cx.key()?.clone();
                let grace = cx.settings().lifecycle.provider_rotation_grace;
                let deadline = crate::time::after(key.rotation_due_at_ms, grace);
                if let Some(now) = self.only_if_due_at_ms
                    && now < deadline
                {
                    return Err(GatewayError::RotationLeftToProvider {
                        key: key.name.clone(),
                        provider: key.provider.clone(),
                        expected: at_ms.map_or("it has not said when".into(), |t| {
                            format!("next at {}", rfc3339(t))
                        }),
                        deadline: rfc3339(deadline),
                    });
                }
                if self.only_if_due_at_ms.is_some() {
                    // Overdue: the crypto-period is the promise, so keygate rotates now.
                    cx.detail("provider_overdue", true);
                }
                cx.detail("rotated_by", "keygate");
                cx.rotate_in_backend().await?
            }
            OwnRotation::Never => {
                cx.detail("rotated_by", "keygate");
                cx.rotate_in_backend().await?
            }
        };
        cx.add_version(rotated.provider_version, staged).await
    }
}

pub struct SetKeyEnabled {
    pub key: String,
    pub enabled: bool,
}

impl Operation for SetKeyEnabled {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        if self.enabled {
            Action::EnableKey
        } else {
            Action::DisableKey
        }
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    fn pending_change(&self) -> Option<PendingChange> {
        (!self.enabled).then_some(PendingChange::Disable)
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        let key = cx.key()?.clone();
        if !self.enabled {
            cx.refuse_if_needed(&key, NeededChange::Disable)?;
        }
        if cx.capabilities(&key)?.disable {
            cx.set_enabled_in_backend(self.enabled).await?;
        } else {
            // The gateway still refuses every use of a disabled key.
            cx.detail("enforced_by", "gateway");
        }
        let state = if self.enabled {
            KeyState::Enabled
        } else {
            KeyState::Disabled
        };
        cx.set_state(key.state, state, None).await
    }
}

pub struct ScheduleKeyDestruction {
    pub key: String,
    /// `None`: the configured default window.
    pub pending_window: Option<DurationInput>,
    /// The key is a BYOK original: its copies go with it (see [`super::family_destruction`]).
    pub family: bool,
}

impl Operation for ScheduleKeyDestruction {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::ScheduleKeyDestruction
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        let lifecycle = settings.lifecycle;
        let window = match self.pending_window {
            None => lifecycle.default_destruction_window,
            Some(d) => d.to_duration().ok_or_else(|| {
                GatewayError::invalid("pending_window", "pending_window is negative")
            })?,
        };
        if window < lifecycle.min_destruction_window || window > lifecycle.max_destruction_window {
            return Err(GatewayError::invalid(
                "pending_window",
                format!(
                    "pending window {} is outside the allowed range {} to {}",
                    format_duration(window),
                    format_duration(lifecycle.min_destruction_window),
                    format_duration(lifecycle.max_destruction_window),
                ),
            ));
        }
        let seconds = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        self.pending_window = Some(DurationInput { seconds, nanos: 0 });
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    fn policy_context(&self, facts: &mut OperationFacts) {
        facts.pending_window_seconds = self.pending_window.map(|w| w.seconds);
    }

    fn pending_change(&self) -> Option<PendingChange> {
        let window = self.pending_window.and_then(DurationInput::to_duration)?;
        Some(PendingChange::ScheduleDestruction {
            window_seconds: window.as_secs(),
            family: self.family,
        })
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        let window = self
            .pending_window
            .and_then(DurationInput::to_duration)
            .ok_or_else(|| GatewayError::Internal("the window was not checked".into()))?;
        let key = cx.key()?.clone();
        // The copies of a family destroyed as a whole, each checked as the key is.
        let copies = if self.family {
            super::family_destruction::copies(cx, &key).await?
        } else {
            Vec::new()
        };
        // The checklist refuses a key whose data may still need it, before anything changes.
        let checklist = super::checklist::run(cx, &key, self.family).await?;
        let at = crate::time::after(now_ms(), window);
        cx.detail("destruction_at", rfc3339(at));
        cx.detail("pending_window_seconds", window.as_secs());
        // Who asked and who approved, on record before the backend is asked: a destruction
        // under way in a backend always has its record. A refusal there closes the record.
        let listed = super::family_destruction::listed(&copies, window);
        cx.record_destruction_scheduled(window, at, checklist, listed)
            .await?;
        if let Err(e) = super::family_destruction::schedule(cx, &copies, window, at).await {
            cx.record_destruction_ended(None).await?;
            return Err(e);
        }
        if let Err(e) = cx.schedule_destroy_in_backend(window).await {
            cx.record_destruction_ended(None).await?;
            return Err(e);
        }
        cx.set_state(key.state, KeyState::PendingDestruction, Some(at))
            .await
    }
}

pub struct CancelKeyDestruction {
    pub key: String,
}

impl Operation for CancelKeyDestruction {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::CancelKeyDestruction
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        let key = cx.key()?.clone();
        // Both steps are idempotent, so a retry after a partial failure completes the cancel.
        cx.cancel_destroy_in_backend().await?;
        if cx.capabilities(&key)?.disable {
            cx.set_enabled_in_backend(false).await?;
        }
        cx.record_destruction_ended(None).await?;
        // Back to disabled, not enabled: using the key again is a second, deliberate step.
        cx.set_state(KeyState::PendingDestruction, KeyState::Disabled, None)
            .await
    }
}

/// The end of a pending window: destroys the key material in the backend and records what
/// was destroyed. Only the scheduler runs it; the runner has re-read the key under its lock,
/// so a destruction cancelled meanwhile is not carried out.
pub struct DestroyKey {
    pub key_id: String,
    pub now_ms: i64,
}

impl Operation for DestroyKey {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::DestroyKey
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key_id)
    }

    fn ready(&self, cx: &Exec<'_, Changes>) -> Result<(), GatewayError> {
        let key = cx.key()?;
        let window_ended = key.state == KeyState::PendingDestruction
            && key.destruction_at_ms.is_some_and(|at| at <= self.now_ms);
        if window_ended || ttl_ended(key, self.now_ms) {
            Ok(())
        } else {
            Err(GatewayError::NotDueForDestruction(key.name.clone()))
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        let key = cx.key()?.clone();
        // Checked again where it bites: the key may have become a root-key wrapper since
        // its destruction was scheduled, and a short-lived key has no checklist.
        cx.refuse_if_needed(&key, NeededChange::Destroy)?;
        // A short-lived key has no pending window: its record opens and closes here.
        let by_ttl = key.state != KeyState::PendingDestruction && ttl_ended(&key, self.now_ms);
        let destruction_at = if by_ttl {
            // Backends that keep a deletion window of their own (AWS KMS, Cloud KMS, Key
            // Vault) start it first, with no window of keygate's: their destroy needs it.
            cx.schedule_destroy_in_backend(std::time::Duration::ZERO)
                .await?;
            let at = key.expires_at_ms.unwrap_or(self.now_ms);
            cx.detail("ttl_ended_at", rfc3339(at));
            let checklist = vec![crate::lifecycle::destruction::Check::new(
                super::checklist::AUTHORIZED,
                format!(
                    "a short-lived key: its destruction was decided when it was created on {} with a ttl (owner {})",
                    rfc3339(key.created_at_ms),
                    key.owner
                ),
            )];
            cx.record_destruction_scheduled(std::time::Duration::ZERO, at, checklist, Vec::new())
                .await?;
            Some(at)
        } else {
            key.destruction_at_ms
        };
        // Rule 5 checked again where it bites, whatever the policies in force said when the
        // destruction was scheduled: the open record must carry a quorum's approval, or have
        // been asked for by dev mode's root (a principal that exists only under `serve --dev`).
        // The newest open record is the one this destruction ends (newest first). A short-lived
        // key's destruction was decided when it was created with its ttl.
        if !by_ttl {
            let records = cx.destruction_records(&key).await?;
            let approved = records
                .iter()
                .find(|r| r.state == "scheduled")
                .is_some_and(|r| {
                    (r.approval_id.is_some() && !r.approved_by.is_empty())
                        || cx
                            .principal(&r.requested_by)
                            .is_some_and(|p| p.has_role(crate::auth::DEV_ROOT_ROLE))
                });
            if !approved {
                return Err(GatewayError::DestructionNotApproved(key.name.clone()));
            }
        }
        let erasure = cx.destroy_in_backend().await?;
        // The destruction record: what was destroyed, where, and how.
        let versions: Vec<u32> = key.versions.iter().map(|v| v.version).collect();
        let mut method = format!(
            "every version destroyed in provider '{}' ({}) by keygate's scheduler when {}",
            key.provider,
            key.provider_uri,
            if by_ttl {
                "its TTL ended (a short-lived key: no pending window)"
            } else {
                "the pending window ended"
            }
        );
        if let Some(erasure) = erasure {
            method.push_str(&format!("; the provider reports: {erasure}"));
            cx.detail("erasure", erasure);
        }
        cx.detail("provider", key.provider.clone());
        cx.detail("provider_uri", key.provider_uri.to_string());
        cx.detail("versions_destroyed", versions.len());
        cx.detail("versions", versions.clone());
        cx.record_destruction_ended(Some((&versions, &method)))
            .await?;
        cx.set_state(key.state, KeyState::Destroyed, destruction_at)
            .await
    }
}

/// A short-lived key whose TTL has ended (and that is not destroyed yet).
fn ttl_ended(key: &KeyRecord, now_ms: i64) -> bool {
    key.state != KeyState::Destroyed && key.expires_at_ms.is_some_and(|at| at <= now_ms)
}

/// The records of a key's destructions (who asked, who approved, when, which versions, how),
/// kept after the material is gone.
pub struct ListDestructionRecords {
    pub key: String,
}

impl Operation for ListDestructionRecords {
    type Output = Vec<DestructionRecord>;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ListDestructionRecords
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    async fn execute(
        self,
        cx: &mut Exec<'_, Reads>,
    ) -> Result<Vec<DestructionRecord>, GatewayError> {
        let key = cx.key()?.clone();
        cx.destruction_records(&key).await
    }
}
