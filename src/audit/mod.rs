//! The audit log: every call, allowed, denied or failed, as one event chained to the one
//! before by SHA-256, written durably before the call's reply leaves; providers' own audit
//! records brought in beside them; signed checkpoints anchoring the chain.
//!
//! Appends go through a channel to one writer task, which commits whatever has queued as one
//! multi-row INSERT (group commit) and only then acknowledges each producer. Durability is
//! per batch, not per row; throughput comes from the batching.
//!
//! - `store`: the narrow interface to the database (SQLite today);
//! - `writer`: the single writer;
//! - `anchor`: signed checkpoints and their witnesses; `verify` and `jobs`: verification;
//! - `ingest`: providers' audit records (OpenBao/Vault, CloudTrail, GCP, Azure), normalised,
//!   linked to gateway events by request id, bypasses found;
//! - `flood`: aggregation of denied floods; `retention`: pruning behind checkpoints;
//! - `hmac`: sensitive provider values kept as HMACs; `ocsf`: export as OCSF API Activity.

pub mod anchor;
mod event;
mod export;
pub mod filter;
pub mod flood;
mod follow;
pub mod hmac;
pub mod ingest;
mod jobs;
pub mod ocsf;
pub mod retention;
pub mod store;
pub mod verify;
mod writer;

pub use event::{AuditEvent, AuditRecord, FORMAT, GENESIS_HASH, Link, Outcome, chain_hash};
pub use export::json as event_json;
pub use filter::AuditFilter;
pub use jobs::JobStatus;
pub use verify::{Mode as VerifyMode, VerifyReport};
pub use writer::Batch;

use anchor::AnchorState;
use anchor::witness::Witness;
use flood::{FloodGate, FloodSettings};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use store::{After, AuditStore, Checkpoint, CursorRow, SideRows};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use writer::Job;

/// The action of the event each checkpoint's signature is (the runner records it).
pub const SIGN_CHECKPOINT_ACTION: &str = "SignAuditCheckpoint";

/// The action of the event that records a gap found at start-up (the database holds fewer
/// events than its checkpoints or witnesses say were written).
pub const LOG_GAP_ACTION: &str = "AuditLogGap";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "the audit log cannot be written ({0}); the call was refused so that nothing goes unaudited"
    )]
    Write(String),
    #[error(
        "the audit log writer has stopped; the call was refused so that nothing goes unaudited"
    )]
    Stopped,
    #[error(
        "the audit log cannot be written at the moment; keygate refuses calls until it can (gRPC health reports NOT_SERVING meanwhile)"
    )]
    Unwritable,
    #[error("the audit log cannot be read: {0}")]
    Read(#[from] sqlx::Error),
    #[error("the audit log cannot be opened for writing: {0}")]
    Open(#[from] store::WriteError),
}

/// What the log is started with beside its store.
pub struct AuditOptions {
    /// Denied floods aggregated past a threshold; `None`: every call recorded alone.
    pub flood: Option<FloodSettings>,
    /// Where checkpoints are copied outside the database.
    pub witnesses: Vec<Arc<dyn Witness>>,
    /// HMACs sensitive values of providers' records.
    pub hasher: hmac::Hasher,
    /// The writer's batch sizes, commit times and queue depth.
    pub metrics: crate::telemetry::AuditWriterMetrics,
}

/// Handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    tx: mpsc::Sender<Job>,
    live: broadcast::Sender<Arc<AuditEvent>>,
    writable: watch::Receiver<bool>,
    /// Calls refused while the store could not be written.
    refused: Arc<AtomicU64>,
    anchor: Arc<AnchorState>,
    flood: Option<Arc<FloodGate>>,
    jobs: jobs::Jobs,
    hasher: hmac::Hasher,
    /// The configured ingesters: (name, format, input).
    feeds: Arc<std::sync::RwLock<Vec<(String, String, String)>>>,
}

impl Default for AuditOptions {
    /// No flood aggregation, no witness, a random HMAC key (for tools and tests).
    fn default() -> Self {
        let mut key = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut key);
        Self {
            flood: None,
            witnesses: Vec::new(),
            hasher: hmac::Hasher::new(&key),
            metrics: Default::default(),
        }
    }
}

impl AuditLog {
    /// The log in a SQLite database with [`AuditOptions::default`].
    pub async fn start_sqlite(db: sqlx::SqlitePool) -> Result<Self, AuditError> {
        Self::start(
            Arc::new(store::sql::SqlAuditStore::new(db)),
            AuditOptions::default(),
        )
        .await
    }

    /// Starts the writer task, continuing the chain from the last stored event. If the
    /// database holds fewer events than its checkpoints or the witnesses say were written (its
    /// tail was deleted, or an older copy replaced it), the chain continues after the last
    /// witnessed sequence, so the missing events stay a visible gap, and the first event
    /// records it.
    pub async fn start(
        store: Arc<dyn AuditStore>,
        options: AuditOptions,
    ) -> Result<Self, AuditError> {
        let head = store.head().await?;
        let mut known = store.checkpoints().await?.last().map_or(0, |c| c.sequence);
        let mut witnessed_by = String::from("the database's own checkpoints");
        for w in &options.witnesses {
            match w.read().await {
                Ok(held) => {
                    if let Some(c) = held.checkpoints.last()
                        && c.sequence > known
                    {
                        known = c.sequence;
                        witnessed_by = w.describe();
                    }
                }
                Err(e) => {
                    tracing::warn!(witness = %w.describe(), error = %e, "cannot read an audit witness at start-up")
                }
            }
        }
        let stored = head.as_ref().map_or(0, |(s, _)| *s);
        let gap = (known > stored).then_some((stored, known));
        let start = match (&head, gap) {
            (_, Some((_, known))) => Some((
                known,
                head.as_ref()
                    .map_or_else(|| GENESIS_HASH.to_string(), |(_, h)| h.clone()),
            )),
            (h, None) => h.clone(),
        };
        let (tx, rx) = mpsc::channel(65_536);
        let (live, _) = broadcast::channel(4096);
        let (health, writable) = watch::channel(true);
        let refused = Arc::new(AtomicU64::new(0));
        let conn = store.writer().await?;
        let feed = if store.shared() {
            let wake = Arc::new(tokio::sync::Notify::new());
            tokio::spawn(follow::run(
                store.clone(),
                start.as_ref().map_or(0, |(s, _)| *s),
                wake.clone(),
                live.clone(),
            ));
            writer::Live::Wake(wake)
        } else {
            writer::Live::Direct(live.clone())
        };
        writer::spawn(
            conn,
            start,
            rx,
            feed,
            writer::Health {
                writable: health,
                refused: refused.clone(),
            },
            options.metrics,
        )?;
        let anchor = Arc::new(AnchorState::default());
        anchor.set_witnesses(options.witnesses);
        let log = Self {
            store,
            tx,
            live,
            writable,
            refused,
            anchor,
            flood: options.flood.map(|s| Arc::new(FloodGate::new(s))),
            jobs: jobs::Jobs::default(),
            hasher: options.hasher,
            feeds: Arc::default(),
        };
        if let Some((stored, known)) = gap {
            tracing::error!(
                stored,
                known,
                "the audit database ends at event {stored} but {witnessed_by} holds a checkpoint at {known}: events {}..{known} are missing; continuing after {known}",
                stored + 1
            );
            log.append(AuditRecord {
                time_ms: crate::time::now_ms(),
                source: "gateway".into(),
                actor: "keygate:audit-writer".into(),
                actor_kind: "system".into(),
                action: LOG_GAP_ACTION.into(),
                outcome: Outcome::Error.as_str().into(),
                reason: format!(
                    "at start-up the audit database ended at event {stored}, but {witnessed_by} holds a checkpoint at {known}: events {}..{known} are missing",
                    stored + 1
                ),
                error_reason: "AUDIT_EVENTS_MISSING".into(),
                policy: "system: audit log start-up".into(),
                details: serde_json::json!({
                    "stored_head": stored,
                    "checkpoint": known,
                    "missing_from": stored + 1,
                    "missing_to": known,
                    "witness": witnessed_by,
                })
                .to_string(),
                ..Default::default()
            })
            .await?;
        }
        Ok(log)
    }

    /// Counts a call refused because the store could not be written.
    pub fn note_refused(&self) {
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the last commit succeeded and the writer is running. While false the gateway
    /// admits no new call.
    pub fn is_writable(&self) -> bool {
        *self.writable.borrow() && !self.tx.is_closed()
    }

    /// Changes of [`AuditLog::is_writable`], for the health service. The sender goes with
    /// the writer: a writer that stopped (or panicked) closes it, which means not writable.
    pub fn watch_writable(&self) -> watch::Receiver<bool> {
        self.writable.clone()
    }

    /// Appends `record`; returns its sequence once it is durable.
    pub async fn append(&self, record: AuditRecord) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Job::Event(record, ack))
            .await
            .map_err(|_| AuditError::Stopped)?;
        match done.await {
            Ok(Ok(sequence)) => Ok(sequence),
            Ok(Err(e)) => Err(AuditError::Write(e)),
            Err(_) => Err(AuditError::Stopped),
        }
    }

    /// A call's outcome event: appended like any other, except that a denied call past the
    /// flood threshold of its client address is only counted ([`flood`]); `None` then.
    pub async fn append_call(&self, record: AuditRecord) -> Result<Option<u64>, AuditError> {
        if let Some(gate) = &self.flood
            && !gate.admit(&record, crate::time::now_ms())
        {
            return Ok(None);
        }
        self.append(record).await.map(Some)
    }

    /// Appends a batch of records with rows beside the chain, all or nothing.
    pub async fn append_batch(&self, batch: Batch) -> Result<Vec<u64>, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Job::Batch(batch, ack))
            .await
            .map_err(|_| AuditError::Stopped)?;
        match done.await {
            Ok(Ok(sequences)) => Ok(sequences),
            Ok(Err(e)) => Err(AuditError::Write(e)),
            Err(_) => Err(AuditError::Stopped),
        }
    }

    /// Commits rows beside the chain through the writer.
    pub async fn commit_side(&self, side: SideRows) -> Result<(), AuditError> {
        self.append_batch(Batch {
            records: Vec::new(),
            side,
        })
        .await
        .map(|_| ())
    }

    /// Appends the aggregates of flood windows that ended (all of them with `all`, at
    /// shutdown).
    pub async fn flush_floods(&self, all: bool) -> Result<usize, AuditError> {
        let Some(gate) = &self.flood else {
            return Ok(0);
        };
        let due = gate.due(crate::time::now_ms(), all);
        let n = due.len();
        for record in due {
            self.append(record).await?;
        }
        Ok(n)
    }

    /// A view that reads and cannot append.
    pub fn reader(&self) -> AuditReader<'_> {
        AuditReader(self)
    }

    pub fn store(&self) -> Arc<dyn AuditStore> {
        self.store.clone()
    }

    pub fn anchor_state(&self) -> &Arc<AnchorState> {
        &self.anchor
    }

    pub fn hasher(&self) -> &hmac::Hasher {
        &self.hasher
    }

    /// Live events as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditEvent>> {
        self.live.subscribe()
    }

    /// Notes a configured ingester, for `keygate audit ingesters`.
    pub fn register_feed(&self, name: &str, format: &str, input: &str) {
        if let Ok(mut feeds) = self.feeds.write() {
            feeds.push((name.into(), format.into(), input.into()));
        }
    }

    /// What verification trusts now: the signing key's public keys as the provider gave them,
    /// and what each witness holds.
    pub async fn trust(&self) -> verify::Trust {
        let mut witnessed = Vec::new();
        for w in self.anchor.witnesses() {
            match w.read().await {
                Ok(held) => witnessed.push((w.describe(), held)),
                Err(e) => witnessed.push((
                    w.describe(),
                    anchor::witness::Witnessed {
                        checkpoints: Vec::new(),
                        malformed: vec![format!("cannot be read: {e}")],
                    },
                )),
            }
        }
        verify::Trust {
            keys: self.anchor.trusted_keys(),
            witnessed,
            anchored: self.anchor.enabled(),
            verified: Some(self.anchor.verified()),
        }
    }
}

/// The audit log as operations see it: queries, the live feed and verification; appending
/// is the runner's alone.
#[derive(Clone, Copy)]
pub struct AuditReader<'a>(&'a AuditLog);

impl AuditReader<'_> {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditEvent>> {
        self.0.subscribe()
    }

    /// Events matching `filter` after `after` in (time, sequence) order, at most `limit`.
    pub async fn query(
        &self,
        filter: &AuditFilter,
        after: Option<After>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        Ok(self.0.store.query(filter, after, limit).await?)
    }

    /// The provider records linked to these gateway events, and those of the backend
    /// requests with these ids (see [`store::AuditStore::linked_to`]).
    pub async fn linked_to(
        &self,
        gateway: &[u64],
        provider_request_ids: &[String],
    ) -> Result<Vec<AuditEvent>, AuditError> {
        Ok(self
            .0
            .store
            .linked_to(gateway, provider_request_ids)
            .await?)
    }

    /// Incremental verification (see [`verify`]).
    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        let trust = self.0.trust().await;
        verify::verify(
            self.0.store.as_ref(),
            &trust,
            verify::Mode::Incremental,
            None,
        )
        .await
    }

    /// Starts a full verification in the background; returns its job id.
    pub fn start_full_verification(&self) -> String {
        self.0.jobs.start(self.0.clone())
    }

    pub fn verification(&self, id: &str) -> Option<JobStatus> {
        self.0.jobs.status(id)
    }

    pub fn hash(&self, value: &str) -> String {
        self.0.hasher.hash(value)
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, AuditError> {
        Ok(self.0.store.checkpoints().await?)
    }

    pub async fn cursors(&self) -> Result<Vec<CursorRow>, AuditError> {
        Ok(self.0.store.cursors().await?)
    }

    /// Where checkpoints are witnessed.
    pub fn witnesses(&self) -> Vec<String> {
        self.0
            .anchor
            .witnesses()
            .iter()
            .map(|w| w.describe())
            .collect()
    }

    /// Every configured ingester with its cursor, and cursors of ingesters no longer
    /// configured.
    pub async fn feeds(&self) -> Result<Vec<ingest::FeedStatus>, AuditError> {
        let cursors = self.0.store.cursors().await?;
        let configured = self.0.feeds.read().map(|f| f.clone()).unwrap_or_default();
        let mut out: Vec<ingest::FeedStatus> = configured
            .iter()
            .map(|(name, format, input)| {
                let c = cursors.iter().find(|c| &c.feed == name);
                ingest::FeedStatus {
                    name: name.clone(),
                    format: format.clone(),
                    input: input.clone(),
                    counters: c.map(|c| c.counters).unwrap_or_default(),
                    position: c.map(|c| c.position.clone()).unwrap_or_default(),
                    last_malformed: c.map(|c| c.last_malformed.clone()).unwrap_or_default(),
                    updated_ms: c.map_or(0, |c| c.updated_ms),
                }
            })
            .collect();
        for c in cursors {
            if !configured.iter().any(|(name, _, _)| name == &c.feed) {
                out.push(ingest::FeedStatus {
                    name: c.feed.clone(),
                    format: String::new(),
                    input: "(no longer configured)".into(),
                    counters: c.counters,
                    position: c.position,
                    last_malformed: c.last_malformed,
                    updated_ms: c.updated_ms,
                });
            }
        }
        Ok(out)
    }

    /// A read-only handle that outlives the call (an export streams after its event).
    pub fn export_handle(&self) -> ExportHandle {
        ExportHandle(self.0.store.clone())
    }
}

/// Reads pages of the log for an export stream.
#[derive(Clone)]
pub struct ExportHandle(Arc<dyn AuditStore>);

impl ExportHandle {
    pub async fn page(
        &self,
        filter: &AuditFilter,
        after: Option<After>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        Ok(self.0.query(filter, after, limit).await?)
    }
}
