//! A BYOK family destroyed as a whole: ScheduleKeyDestruction with `family` on the original
//! (`keygate byok destroy NAME`). It is the ordinary destruction of the original (one
//! decision, one approval where destruction is critical, one pending window, the checklist,
//! the record) carried to every imported copy: each copy is checked as its own destruction
//! would check it, gets a record of its own with the same requester, approval and window, is
//! scheduled in its backend and left pending destruction; the scheduler's DestroyKey then
//! destroys each key, original and copies alike, when the window ends. The original's record
//! lists every copy (provider, URI, how it was imported and how it goes).

use super::checklist;
use crate::catalog::{KeyRecord, KeyState};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Changes, Exec};
use crate::lifecycle::destruction::{Check, CopyDestruction};
use crate::time::format_duration;
use std::sync::Arc;
use std::time::Duration;

/// A copy to destroy with its original, and its own checklist.
pub struct FamilyCopy {
    pub record: Arc<KeyRecord>,
    pub provider_kind: String,
    pub import_method: String,
    pub checklist: Vec<Check>,
}

/// The original's copies, each checked before anything changes. Refused: a key that is not
/// a BYOK original, and a copy already pending destruction (cancel it first, or destroy the
/// original alone). Copies already destroyed, and imports that never completed, have nothing
/// to destroy.
pub async fn copies(
    cx: &Exec<'_, Changes>,
    original: &KeyRecord,
) -> Result<Vec<FamilyCopy>, GatewayError> {
    let family = cx.key_family(&original.id).await?.ok_or_else(|| {
        GatewayError::invalid(
            "family",
            format!(
                "key '{}' was not made by a BYOK import: it has no copies to destroy with it",
                original.name
            ),
        )
    })?;
    let mut out = Vec::new();
    for copy in family.copies.iter().filter(|c| c.imported) {
        let Some(record) = copy.copy_key_id.as_deref().and_then(|id| cx.key_by_id(id)) else {
            continue;
        };
        match record.state {
            KeyState::Destroyed => continue,
            KeyState::PendingDestruction => {
                return Err(GatewayError::invalid(
                    "family",
                    format!(
                        "copy '{}' of '{}' is already pending destruction: cancel it first, or \
                         destroy the original alone",
                        record.name, original.name
                    ),
                ));
            }
            _ => {}
        }
        let checklist = checklist::run(cx, &record, false).await?;
        out.push(FamilyCopy {
            record,
            provider_kind: copy.provider_kind.clone(),
            import_method: copy.import_method.clone(),
            checklist,
        });
    }
    Ok(out)
}

/// The copies as the original's record lists them.
pub fn listed(copies: &[FamilyCopy], window: Duration) -> Vec<CopyDestruction> {
    copies
        .iter()
        .map(|c| CopyDestruction {
            key_id: c.record.id.clone(),
            key_name: c.record.name.clone(),
            provider: c.record.provider.clone(),
            provider_kind: c.provider_kind.clone(),
            provider_uri: c.record.provider_uri.to_string(),
            import_method: c.import_method.clone(),
            method: format!(
                "scheduled with the original in provider '{}' ({}) with the same pending window \
                 ({}); every version destroyed there by keygate's scheduler when it ends (the \
                 copy's own record says how)",
                c.record.provider,
                c.provider_kind,
                format_duration(window)
            ),
        })
        .collect()
}

/// Schedules each copy's destruction. A copy that fails stops the rest: the ones before it
/// stay pending destruction (the call's event names them; CancelKeyDestruction undoes each).
pub async fn schedule(
    cx: &mut Exec<'_, Changes>,
    copies: &[FamilyCopy],
    window: Duration,
    at_ms: i64,
) -> Result<(), GatewayError> {
    let mut scheduled = Vec::new();
    for copy in copies {
        let outcome = cx
            .schedule_copy_destruction(&copy.record, window, at_ms, copy.checklist.clone())
            .await;
        if let Err(e) = outcome {
            cx.detail("copies_scheduled", scheduled);
            cx.detail("copy_failed", copy.record.name.clone());
            return Err(e);
        }
        scheduled.push(copy.record.name.clone());
    }
    if !copies.is_empty() {
        cx.detail("copies_scheduled", scheduled);
    }
    Ok(())
}
