//! Verification: the chain, its signed checkpoints, and the witnesses outside the database.
//!
//! - **Incremental** (the default): every checkpoint's signature and its line to the one
//!   before, every witnessed checkpoint against the database, each checkpoint's signed head
//!   against the stored event at its sequence, then the chain recomputed from the last good
//!   checkpoint to the head. Its cost is the number of checkpoints plus the events since the
//!   last one. It finds a deleted tail, a database rolled back to an older copy, a rewritten
//!   and rehashed chain, removed or forged checkpoints, and any edit after the last
//!   checkpoint.
//! - **Full**: the same, with the chain recomputed from its start, so an edit anywhere is found.
//!   It runs as a background job reporting progress (`jobs`).
//!
//! Either names the first bad sequence. An edit that was not rehashed is named exactly; a chain
//! rewritten with recomputed hashes is named from the first event after the last checkpoint
//! that still matches (the original hashes are gone, so no verifier can say more).

use super::anchor::statement::{self, NO_PREVIOUS};
use super::anchor::witness::Witnessed;
use super::event::{AuditEvent, FORMAT, GENESIS_HASH, chain_hash};
use super::store::{AuditStore, Checkpoint};
use super::{AuditError, SIGN_CHECKPOINT_ACTION};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Incremental,
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Incremental => "incremental",
            Mode::Full => "full",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    pub ok: bool,
    pub mode: Mode,
    /// Events whose hash was recomputed.
    pub events_checked: u64,
    /// 0 when everything holds.
    pub first_broken_sequence: u64,
    /// Why (empty when ok).
    pub reason: String,
    /// The stored head.
    pub head_sequence: u64,
    pub head_hash: String,
    pub checkpoints_checked: u64,
    /// The newest checkpoint the chain was found to match (0: none).
    pub last_good_checkpoint: u64,
    /// The newest checkpoint a witness holds (0: none).
    pub witness_sequence: u64,
    /// Where the recomputation started (0: the beginning).
    pub verified_from: u64,
    /// Every problem found, first bad sequence first.
    pub problems: Vec<String>,
    /// Facts that are not failures (no checkpoints yet, a witness behind, events pruned).
    pub notes: Vec<String>,
}

/// What verification trusts beside the database.
#[derive(Default)]
pub struct Trust {
    /// DER SubjectPublicKeyInfos of the audit signing key's versions.
    pub keys: Vec<Vec<u8>>,
    /// What each witness holds, by description.
    pub witnessed: Vec<(String, Witnessed)>,
    /// Whether the gateway makes checkpoints at all.
    pub anchored: bool,
    /// Signatures this process already verified (none for an offline verification).
    pub verified: Option<std::sync::Arc<statement::Verified>>,
}

impl Trust {
    fn check(&self, cp: &Checkpoint) -> Result<(), String> {
        match &self.verified {
            Some(v) => v.check(cp, &self.keys),
            None => statement::check(cp, &self.keys),
        }
    }
}

/// Progress of a long verification: (events checked, events to check).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Why an event's format does not fit: unknown, older than the event before it, or fields set
/// that its format does not cover (so they could be edited unseen).
fn format_fault(event: &AuditEvent, previous_format: u8) -> Option<String> {
    let n = event.sequence;
    if !(1..=FORMAT).contains(&event.format) {
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
    let uncovered = match event.format {
        1 => !r.actor_kind.is_empty() || !r.error_reason.is_empty() || r.caller_gone,
        2 => !r.key_uri.is_empty(),
        _ => false,
    } || (event.format < 3 && !r.key_uri.is_empty());
    uncovered
        .then(|| format!("event {n} was altered: it has fields set that its format does not cover"))
}

struct Problems(Vec<(u64, String)>);

impl Problems {
    fn add(&mut self, sequence: u64, reason: String) {
        self.0.push((sequence, reason));
    }
}

/// A checkpoint the chain must meet, and where it came from.
#[derive(Debug, Clone)]
struct Anchor {
    head_hash: String,
    time_ms: i64,
}

pub async fn verify(
    store: &dyn AuditStore,
    trust: &Trust,
    mode: Mode,
    progress: Option<Progress<'_>>,
) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport {
        mode,
        ..Default::default()
    };
    let mut problems = Problems(Vec::new());
    let pruned_through: u64 = store
        .state("pruned_through")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Checkpoints before the head: a checkpoint never covers more than the head it signed, so
    // read in this order (witnesses were read before both) none is ahead of the head read.
    let stored = store.checkpoints().await?;
    let (head, head_hash) = store.head().await?.unwrap_or((0, GENESIS_HASH.to_string()));
    report.head_sequence = head;
    report.head_hash = head_hash;

    // 1. The database's checkpoints: signed by a trusted key, each following the one before.
    let mut anchors: BTreeMap<u64, Anchor> = BTreeMap::new();
    let mut previous: Option<&Checkpoint> = None;
    for cp in &stored {
        report.checkpoints_checked += 1;
        let expected_previous =
            previous.map_or_else(|| NO_PREVIOUS.to_string(), statement::digest_of);
        match trust.check(cp) {
            Err(e) => problems.add(cp.sequence, e),
            Ok(()) if cp.previous_digest != expected_previous => {
                let p = previous.map_or(0, |p| p.sequence);
                problems.add(
                    p + 1,
                    format!(
                        "checkpoint {} does not follow checkpoint {p}: a checkpoint between them was removed from the database",
                        cp.sequence
                    ),
                );
            }
            Ok(()) => {
                anchors.insert(
                    cp.sequence,
                    Anchor {
                        head_hash: cp.head_hash.clone(),
                        time_ms: cp.time_ms,
                    },
                );
            }
        }
        previous = Some(cp);
    }

    // 2. The witnesses: each entry signed, and the same in the database.
    let by_sequence: BTreeMap<u64, &Checkpoint> = stored.iter().map(|c| (c.sequence, c)).collect();
    for (witness, held) in &trust.witnessed {
        for m in &held.malformed {
            problems.add(
                0,
                format!("the witness {witness} holds an unreadable entry: {m}"),
            );
        }
        for w in &held.checkpoints {
            report.witness_sequence = report.witness_sequence.max(w.sequence);
            if let Err(e) = trust.check(w) {
                problems.add(w.sequence, format!("in the witness {witness}: {e}"));
                continue;
            }
            match by_sequence.get(&w.sequence) {
                Some(db) if statement::digest_of(db) == statement::digest_of(w)
                    && db.signature == w.signature => {}
                Some(_) => problems.add(
                    w.sequence,
                    format!(
                        "checkpoint {} in the database differs from the one the witness {witness} holds: the database's checkpoints were rewritten",
                        w.sequence
                    ),
                ),
                // Past the head: the tail check below says what is missing.
                None if w.sequence > pruned_through && w.sequence <= head => problems.add(
                    w.sequence,
                    format!(
                        "checkpoint {} is held by the witness {witness} but missing from the database (the database was replaced by an older copy, or its checkpoints deleted)",
                        w.sequence
                    ),
                ),
                None => {}
            }
            // The witness's copy is the anchor: it is outside the attacker's reach.
            anchors.insert(
                w.sequence,
                Anchor {
                    head_hash: w.head_hash.clone(),
                    time_ms: w.time_ms,
                },
            );
        }
    }
    if stored.is_empty() && anchors.is_empty() {
        report.notes.push(if trust.anchored {
            "no checkpoint has been signed yet".into()
        } else {
            "the chain is not anchored (audit.checkpoints.enabled = false): a deleted tail or a rehashed chain cannot be detected".into()
        });
    }
    if let Some(newest) = stored.last()
        && report.witness_sequence < newest.sequence
        && !trust.witnessed.is_empty()
    {
        report.notes.push(format!(
            "the witnesses hold checkpoints up to {}; the database's newest is {} (not yet witnessed)",
            report.witness_sequence, newest.sequence
        ));
    }

    // 3. The tail: no checkpoint covers events the log no longer has.
    if let Some((&newest, a)) = anchors.iter().next_back()
        && newest > head
    {
        problems.add(
            head + 1,
            format!(
                "the log ends at event {head}, but checkpoint {newest} (signed {}) covers events up to {newest}: events {}..{newest} are missing (the tail was deleted, or the database replaced by an older copy)",
                crate::time::rfc3339(a.time_ms),
                head + 1
            ),
        );
    }

    // 4. Where to recompute from: the start (full), or the last checkpoint up to which every
    //    signed head matches the stored event (incremental).
    let start_anchor = if pruned_through > 0 {
        match anchors.get(&pruned_through) {
            Some(a) => Some((pruned_through, a.head_hash.clone())),
            None => {
                problems.add(
                    pruned_through + 1,
                    format!(
                        "events up to {pruned_through} were pruned, but no valid checkpoint at {pruned_through} anchors what remains"
                    ),
                );
                None
            }
        }
    } else {
        None
    };
    let mut from = start_anchor
        .clone()
        .unwrap_or((0, GENESIS_HASH.to_string()));
    if pruned_through > 0 {
        report.notes.push(format!(
            "events up to {pruned_through} were pruned by retention"
        ));
    }
    if mode == Mode::Incremental {
        let wanted: Vec<u64> = anchors
            .keys()
            .copied()
            .filter(|&s| s > from.0 && s <= head)
            .collect();
        let stored_hashes = store.hashes_at(&wanted).await?;
        for s in wanted {
            match stored_hashes.get(&s) {
                Some(h) if *h == anchors[&s].head_hash => {
                    from = (s, h.clone());
                    report.last_good_checkpoint = s;
                }
                _ => break,
            }
        }
    }
    report.verified_from = from.0;

    // 5. The walk.
    let total = head.saturating_sub(from.0);
    let newest_anchor = anchors.keys().next_back().copied();
    let mut recorded: Option<u64> = None;
    let mut last_matching = from.0;
    let mut previous_hash = from.1.clone();
    let mut expected = from.0 + 1;
    let mut previous_format = 1u8;
    let mut after = from.0;
    'walk: loop {
        let page = store.page(after, 2000).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            if event.sequence != expected {
                problems.add(
                    expected,
                    format!(
                        "event {expected} is missing (the next stored event is {})",
                        event.sequence
                    ),
                );
                break 'walk;
            }
            if event.previous_hash != previous_hash {
                problems.add(
                    event.sequence,
                    format!(
                        "event {} does not link to the event before it (its previous_hash differs)",
                        event.sequence
                    ),
                );
                break 'walk;
            }
            if let Some(reason) = format_fault(event, previous_format) {
                problems.add(event.sequence, reason);
                break 'walk;
            }
            previous_format = event.format;
            let recomputed = chain_hash(
                event.format,
                event.sequence,
                &event.previous_hash,
                &event.record,
            );
            if recomputed != event.hash {
                problems.add(
                    event.sequence,
                    format!(
                        "event {} was altered: its contents do not match its hash",
                        event.sequence
                    ),
                );
                break 'walk;
            }
            if let Some(a) = anchors.get(&event.sequence) {
                if a.head_hash != event.hash {
                    problems.add(
                        last_matching + 1,
                        format!(
                            "events {}..{} were rewritten and rehashed: event {}'s hash does not match checkpoint {}'s signed head (signed {})",
                            last_matching + 1,
                            event.sequence,
                            event.sequence,
                            event.sequence,
                            crate::time::rfc3339(a.time_ms)
                        ),
                    );
                    break 'walk;
                }
                last_matching = event.sequence;
                report.last_good_checkpoint = report.last_good_checkpoint.max(event.sequence);
            }
            if event.record.action == SIGN_CHECKPOINT_ACTION
                && let Some(c) = recorded_checkpoint(event)
                && Some(c) == newest_anchor
                && c < event.sequence
            {
                recorded = Some(c);
            }
            previous_hash = event.hash.clone();
            expected += 1;
            report.events_checked += 1;
            after = event.sequence;
        }
        if let Some(p) = progress {
            p(report.events_checked, total);
        }
    }

    // 6. The newest checkpoint's own event follows it: a log cut right after the checkpoint
    //    (only its record deleted) is found too.
    if let Some(newest) = newest_anchor
        && newest <= head
        && recorded.is_none()
        && problems.0.is_empty()
        && from.0 <= newest
        && newest > pruned_through
    {
        problems.add(
            newest + 1,
            format!(
                "checkpoint {newest} is signed but its own event (SignAuditCheckpoint) is missing after it: events after {newest} were deleted"
            ),
        );
    }

    problems.0.sort_by_key(|(s, _)| *s);
    // Problems not tied to an event (an unreadable witness entry) come after those that are.
    let (tied, untied): (Vec<_>, Vec<_>) = problems.0.into_iter().partition(|(s, _)| *s > 0);
    let ordered: Vec<(u64, String)> = tied.into_iter().chain(untied).collect();
    if let Some((s, reason)) = ordered.first() {
        report.ok = false;
        report.first_broken_sequence = *s;
        report.reason = reason.clone();
    } else {
        report.ok = true;
    }
    report.problems = ordered.into_iter().map(|(_, r)| r).collect();
    Ok(report)
}

/// The checkpoint a `SignAuditCheckpoint` event records.
fn recorded_checkpoint(event: &AuditEvent) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(&event.record.details)
        .ok()?
        .get("checkpoint_sequence")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditRecord;

    #[test]
    fn fields_a_format_does_not_cover_are_refused() {
        let mut e = AuditEvent::seal(1, GENESIS_HASH.into(), AuditRecord::default());
        assert_eq!(format_fault(&e, 1), None);
        e.format = 2;
        e.record.key_uri = "local://k".into();
        assert!(format_fault(&e, 1).is_some());
        e.format = 9;
        assert!(format_fault(&e, 1).unwrap().contains("format 9"));
        e.format = 2;
        e.record.key_uri.clear();
        assert!(
            format_fault(&e, 3)
                .unwrap()
                .contains("formats never go back")
        );
    }
}
