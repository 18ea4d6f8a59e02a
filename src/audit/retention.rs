//! Retention: events older than the configured period are pruned, but only up to a signed
//! checkpoint every witness holds, so what remains still verifies from that checkpoint (its
//! signed head is where the remaining chain starts). Pruning is recorded as an event.

use super::event::{AuditRecord, Outcome};
use super::store::{Prune, SideRows};
use super::{AuditError, AuditLog};
use std::time::Duration;

/// Events deleted per transaction, so the writer is never held long.
const CHUNK: u32 = 20_000;

/// The audit action recording a prune.
pub const PRUNE_ACTION: &str = "AuditPruned";

/// Prunes what `retention` allows as of `now_ms`; returns how many events went.
pub async fn prune(log: &AuditLog, retention: Duration, now_ms: i64) -> Result<u64, AuditError> {
    let store = log.store();
    let cutoff = now_ms - retention.as_millis() as i64;
    let unwitnessed: Vec<u64> = store
        .unwitnessed()
        .await?
        .into_iter()
        .map(|c| c.sequence)
        .collect();
    // The newest witnessed checkpoint signed before the cutoff: every event it covers was
    // sealed before it was signed.
    let Some(anchor) = store
        .checkpoints()
        .await?
        .into_iter()
        .rfind(|c| c.time_ms <= cutoff && !unwitnessed.contains(&c.sequence))
    else {
        return Ok(0);
    };
    let already: u64 = store
        .state("pruned_through")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let first = store.first_sequence().await?.unwrap_or(u64::MAX);
    if anchor.sequence <= already && first > anchor.sequence {
        return Ok(0);
    }
    // First say where the chain now starts, then delete: a verifier in between starts there.
    log.commit_side(SideRows {
        state: vec![("pruned_through".into(), anchor.sequence.to_string())],
        ..Default::default()
    })
    .await?;
    let mut deleted = 0u64;
    loop {
        let before = store.first_sequence().await?;
        match before {
            Some(s) if s <= anchor.sequence => {}
            _ => break,
        }
        log.commit_side(SideRows {
            prune: Some(Prune {
                through: anchor.sequence,
                limit: CHUNK,
            }),
            ..Default::default()
        })
        .await?;
        let after = store.first_sequence().await?;
        deleted += match (before, after) {
            (Some(b), Some(a)) => a.min(anchor.sequence + 1) - b,
            (Some(b), None) => anchor.sequence + 1 - b,
            _ => 0,
        };
    }
    log.append(AuditRecord {
        time_ms: crate::time::now_ms(),
        source: "gateway".into(),
        actor: "keygate:retention".into(),
        actor_kind: "system".into(),
        action: PRUNE_ACTION.into(),
        outcome: Outcome::Ok.as_str().into(),
        reason: format!(
            "events up to {} (older than {}) were pruned; checkpoint {} anchors what remains",
            anchor.sequence,
            humantime::format_duration(retention),
            anchor.sequence
        ),
        policy: "system: audit.retention".into(),
        details: serde_json::json!({
            "pruned_through": anchor.sequence,
            "events_deleted": deleted,
            "cutoff": crate::time::rfc3339(cutoff),
            "checkpoint_head": anchor.head_hash,
        })
        .to_string(),
        ..Default::default()
    })
    .await?;
    Ok(deleted)
}
