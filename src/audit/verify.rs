//! Walks the chain from the first event and reports the first one that does not fit.

use super::event::{AuditEvent, FORMAT, GENESIS_HASH, chain_hash};
use super::{AuditError, store};
use sqlx::SqlitePool;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    pub events_checked: u64,
    /// 0 when the chain is whole.
    pub first_broken_sequence: u64,
    pub reason: String,
    pub head_hash: String,
}

/// Why an event's format does not fit: unknown, older than the event before it, or a format-1
/// row with fields set that format-1 hashes do not cover (so they could be edited unseen).
fn format_fault(event: &AuditEvent, previous_format: u8) -> Option<String> {
    let n = event.sequence;
    if event.format != 1 && event.format != FORMAT {
        return Some(format!(
            "event {n} has format {}, which this gateway does not know",
            event.format
        ));
    }
    if event.format < previous_format {
        return Some(format!(
            "event {n} has format {} after an event of format {previous_format}; formats never go back",
            event.format
        ));
    }
    let r = &event.record;
    if event.format == 1
        && (!r.actor_kind.is_empty() || !r.error_reason.is_empty() || r.caller_gone)
    {
        return Some(format!(
            "event {n} was altered: it has fields set that its format does not cover"
        ));
    }
    None
}

pub async fn verify(db: &SqlitePool) -> Result<VerifyReport, AuditError> {
    let mut previous_format = 1u8;
    let mut previous = GENESIS_HASH.to_string();
    let mut expected_sequence = 1u64;
    let mut checked = 0u64;
    let mut after = 0u64;
    let broken = |sequence: u64, checked: u64, reason: String, head: &str| VerifyReport {
        ok: false,
        events_checked: checked,
        first_broken_sequence: sequence,
        reason,
        head_hash: head.to_string(),
    };
    loop {
        let page = store::page(db, after, 2000).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            if event.sequence != expected_sequence {
                return Ok(broken(
                    expected_sequence,
                    checked,
                    format!(
                        "event {expected_sequence} is missing (the next stored event is {})",
                        event.sequence
                    ),
                    &previous,
                ));
            }
            if event.previous_hash != previous {
                return Ok(broken(
                    event.sequence,
                    checked,
                    format!(
                        "event {} does not link to the event before it (its previous_hash differs)",
                        event.sequence
                    ),
                    &previous,
                ));
            }
            if let Some(reason) = format_fault(event, previous_format) {
                return Ok(broken(event.sequence, checked, reason, &previous));
            }
            previous_format = event.format;
            let recomputed = chain_hash(
                event.format,
                event.sequence,
                &event.previous_hash,
                &event.record,
            );
            if recomputed != event.hash {
                return Ok(broken(
                    event.sequence,
                    checked,
                    format!(
                        "event {} was altered: its contents do not match its hash",
                        event.sequence
                    ),
                    &previous,
                ));
            }
            previous = event.hash.clone();
            expected_sequence += 1;
            checked += 1;
            after = event.sequence;
        }
    }
    Ok(VerifyReport {
        ok: true,
        events_checked: checked,
        first_broken_sequence: 0,
        reason: String::new(),
        head_hash: previous,
    })
}
