//! Where the audit log lives, behind one narrow interface: [`AuditStore`] for everything that
//! reads (and the background work that writes through the writer), [`StoreWriter`] for the
//! writer's commits. [`sql`] implements both on SQLite (one process, one writer) and on
//! PostgreSQL (one writer per replica, all appending to one chain).
//!
//! Nothing outside this module writes SQL for the audit tables.

mod postgres;
pub mod sql;
mod sqlite;

use super::event::{AuditEvent, AuditRecord};
use super::filter::AuditFilter;
use std::collections::{HashMap, HashSet};

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// What a writer can fail with: a query's error, or that of the SQLite writer's own
/// connection (`sqlite`).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Query(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the audit writer's thread: {0}")]
    Thread(#[from] std::io::Error),
}

pub type WriteResult<T> = Result<T, WriteError>;

/// A signed checkpoint: the chain up to `sequence` ends in `head_hash`, as of `time_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub sequence: u64,
    pub head_hash: String,
    pub time_ms: i64,
    /// Digest of the previous checkpoint's signed statement (zeros for the first): deleting a
    /// checkpoint breaks the line of those after it.
    pub previous_digest: String,
    pub key_id: String,
    pub key_name: String,
    pub key_version: u32,
    pub algorithm: String,
    /// DER SubjectPublicKeyInfo of the key version that signed.
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

/// What an ingester knows of a provider record it appends, beside the event itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestedRow {
    pub source: String,
    /// The record's own id at its source (`request.id` and type, `eventID`, `insertId`, …).
    pub record_id: String,
    pub feed: String,
    pub provider_request_id: String,
    pub gateway_sequence: Option<u64>,
    pub bypass: bool,
}

/// Counters an ingester keeps with its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedCounters {
    pub ingested: u64,
    pub linked: u64,
    pub bypass: u64,
    /// Records that are not key operations (logins, health checks, …).
    pub ignored: u64,
    /// Records already in the log (the same input read again).
    pub duplicates: u64,
    pub malformed: u64,
}

/// Where an ingester is in its input, committed with the events read up to there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CursorRow {
    pub feed: String,
    /// The feed's own position (JSON).
    pub position: String,
    pub counters: FeedCounters,
    /// Where and why the last malformed record was skipped.
    pub last_malformed: String,
    pub updated_ms: i64,
}

/// Rows committed in the same transaction as a batch of events, beside the chain.
#[derive(Debug, Default)]
pub struct SideRows {
    /// (backend request id, gateway event's sequence).
    pub provider_request_ids: Vec<(String, u64)>,
    /// (sequence of the ingested event, what the ingester knows of it).
    pub ingested: Vec<(u64, IngestedRow)>,
    pub cursors: Vec<CursorRow>,
    pub checkpoints: Vec<Checkpoint>,
    /// Checkpoints now held by every witness.
    pub witnessed: Vec<u64>,
    pub state: Vec<(String, String)>,
    /// Retention: delete at most `limit` of the oldest events at or below `through`, with
    /// their rows beside the chain.
    pub prune: Option<Prune>,
}

impl SideRows {
    /// Whether the calls' backend request ids are all there is (if anything): the rows a
    /// batch of calls' events brings, as against an ingester's, a checkpoint's or retention's.
    pub fn only_request_ids(&self) -> bool {
        self.ingested.is_empty()
            && self.cursors.is_empty()
            && self.checkpoints.is_empty()
            && self.witnessed.is_empty()
            && self.state.is_empty()
            && self.prune.is_none()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Prune {
    pub through: u64,
    pub limit: u32,
}

/// Where a page of a query starts: after this (time, sequence), in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub time_ms: i64,
    pub sequence: u64,
}

/// The gateway event a provider request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRef {
    pub sequence: u64,
    pub request_id: String,
}

/// Reading the log, for queries, verification, ingestion and retention. Writes go through
/// the writer ([`StoreWriter`]), so nothing contends with it for the database.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// A connection for the single writer, with whatever upkeep the database needs between
    /// batches started beside it.
    async fn writer(&self) -> WriteResult<Box<dyn StoreWriter>>;

    /// The last event's sequence and hash.
    async fn head(&self) -> StoreResult<Option<(u64, String)>>;

    /// Events matching `filter`, in (time, sequence) order after `after` (both reversed when
    /// `filter.newest_first`), at most `limit`.
    async fn query(
        &self,
        filter: &AuditFilter,
        after: Option<After>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;

    /// The provider records linked to these gateway events, and those linked to any gateway
    /// event whose backend request had one of these ids (a request several calls shared).
    async fn linked_to(
        &self,
        gateway_sequences: &[u64],
        provider_request_ids: &[String],
    ) -> StoreResult<Vec<AuditEvent>>;

    /// Events in sequence order after `after`, at most `limit`, with their links (the chain
    /// walk, and the live feed of a shared log, whose filters look at links).
    async fn page(&self, after: u64, limit: u32) -> StoreResult<Vec<AuditEvent>>;

    /// The stored hashes of these events (missing ones are absent).
    async fn hashes_at(&self, sequences: &[u64]) -> StoreResult<HashMap<u64, String>>;

    /// Every checkpoint, oldest first.
    async fn checkpoints(&self) -> StoreResult<Vec<Checkpoint>>;

    /// Checkpoints some witness does not hold yet.
    async fn unwitnessed(&self) -> StoreResult<Vec<Checkpoint>>;

    async fn state(&self, name: &str) -> StoreResult<Option<String>>;

    async fn cursor(&self, feed: &str) -> StoreResult<Option<CursorRow>>;

    async fn cursors(&self) -> StoreResult<Vec<CursorRow>>;

    /// Which of `record_ids` of `source` are already in the log.
    async fn known_records(
        &self,
        source: &str,
        record_ids: &[String],
    ) -> StoreResult<HashSet<String>>;

    /// The gateway events whose calls got these backend request ids.
    async fn gateway_by_provider_request_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, GatewayRef>>;

    /// The gateway events of these keygate request ids (the outcome event when a change
    /// also has an intent).
    async fn gateway_by_request_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<HashMap<String, GatewayRef>>;

    /// The oldest stored event's sequence.
    async fn first_sequence(&self) -> StoreResult<Option<u64>>;

    /// Whether other processes append to this log too (replicas sharing a database).
    fn shared(&self) -> bool {
        false
    }
}

/// A writer's connection.
#[async_trait::async_trait]
pub trait StoreWriter: Send {
    /// Appends `events` (sealed in sequence order after the head this writer last saw) and
    /// `side`, all or nothing, and durably: when it returns Ok the batch survives a crash or
    /// power loss. A store that other writers append to as well (replicas sharing PostgreSQL)
    /// reseals the batch after the head it finds under its lock ([`reseal`]), so on Ok the
    /// events and `side` hold the sequences they were stored at.
    async fn commit(&mut self, events: &mut [AuditEvent], side: &mut SideRows) -> WriteResult<()>;

    /// Upkeep between two batches, after their replies went out.
    async fn between_batches(&mut self);

    /// Whether the store can still be written, asked while the writer is idle. A store in a
    /// local file has nothing to check; a database server may have gone away.
    async fn check(&mut self) -> WriteResult<()> {
        Ok(())
    }

    /// Whether `commit` blocks its thread (SQLite's own connection, fsync included) rather
    /// than awaiting a database: the writer then runs on a thread of its own.
    fn blocking(&self) -> bool {
        false
    }
}

/// Seals `events` again after `head` (sequence, hash): another writer appended since they were
/// sealed. The rows beside them that name their sequences move with them.
pub fn reseal(events: &mut [AuditEvent], side: &mut SideRows, head: (u64, &str)) {
    let Some(first) = events.first() else {
        return;
    };
    let old_first = first.sequence;
    let new_first = head.0 + 1;
    if old_first == new_first && first.previous_hash == head.1 {
        return;
    }
    let moved = |sequence: u64| sequence.wrapping_sub(old_first).wrapping_add(new_first);
    let mut previous = head.1.to_string();
    for (i, event) in events.iter_mut().enumerate() {
        let link = event.link.take();
        let record = std::mem::take(&mut event.record);
        *event = AuditEvent::seal(new_first + i as u64, previous, record);
        event.link = link;
        previous = event.hash.clone();
    }
    let last_old = old_first + events.len() as u64 - 1;
    let in_batch = |s: u64| (old_first..=last_old).contains(&s);
    for (_, sequence) in &mut side.provider_request_ids {
        if in_batch(*sequence) {
            *sequence = moved(*sequence);
        }
    }
    for (sequence, _) in &mut side.ingested {
        if in_batch(*sequence) {
            *sequence = moved(*sequence);
        }
    }
}

/// The rows a batch's gateway events add to the request id index.
pub fn provider_request_id_rows(events: &[AuditEvent], rows: &mut Vec<(String, u64)>) {
    for e in events {
        let r: &AuditRecord = &e.record;
        if r.source != "gateway" || r.provider_request_id.is_empty() {
            continue;
        }
        rows.push((r.provider_request_id.clone(), e.sequence));
        for id in &r.more_provider_request_ids {
            if id != &r.provider_request_id {
                rows.push((id.clone(), e.sequence));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::GENESIS_HASH;
    use crate::audit::event::chain_hash;

    fn sealed(from: u64, n: usize) -> Vec<AuditEvent> {
        let mut previous = GENESIS_HASH.to_string();
        (0..n)
            .map(|i| {
                let record = AuditRecord {
                    request_id: format!("r{i}"),
                    ..Default::default()
                };
                let e = AuditEvent::seal(from + i as u64, previous.clone(), record);
                previous = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn a_resealed_batch_follows_the_head_and_its_side_rows_move_with_it() {
        let mut events = sealed(5, 3);
        let mut side = SideRows {
            provider_request_ids: vec![("p".into(), 6)],
            ingested: vec![(7, IngestedRow::default())],
            ..Default::default()
        };
        reseal(&mut events, &mut side, (41, "head-hash"));
        assert_eq!(
            events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [42, 43, 44]
        );
        assert_eq!(events[0].previous_hash, "head-hash");
        for pair in events.windows(2) {
            assert_eq!(pair[1].previous_hash, pair[0].hash);
        }
        for e in &events {
            assert_eq!(
                e.hash,
                chain_hash(e.format, e.sequence, &e.previous_hash, &e.record)
            );
        }
        assert_eq!(events[1].record.request_id, "r1");
        assert_eq!(side.provider_request_ids, [("p".to_string(), 43)]);
        assert_eq!(side.ingested[0].0, 44);
    }

    #[test]
    fn a_batch_already_after_the_head_is_left_as_sealed() {
        let mut events = sealed(1, 2);
        let before: Vec<String> = events.iter().map(|e| e.hash.clone()).collect();
        reseal(&mut events, &mut SideRows::default(), (0, GENESIS_HASH));
        let after: Vec<String> = events.iter().map(|e| e.hash.clone()).collect();
        assert_eq!(before, after);
    }
}
