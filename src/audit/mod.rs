//! The audit log: every call, allowed, denied or failed, as one event chained to the one
//! before by SHA-256, written durably before the call's reply leaves.
//!
//! Appends go through a channel to one writer task, which commits whatever has queued as one
//! multi-row INSERT (group commit) and only then acknowledges each producer. Durability is
//! per batch, not per row; throughput comes from the batching.

mod checkpoint;
mod event;
mod store;
mod verify;
mod writer;

pub use event::{AuditEvent, AuditRecord, FORMAT, GENESIS_HASH, Outcome, chain_hash};
pub use verify::VerifyReport;

use sqlx::SqlitePool;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Query filters; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Key id or name.
    pub key: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub request_id: Option<String>,
    pub source: Option<String>,
}

impl AuditFilter {
    /// Whether a live event matches (for Tail; time bounds do not apply there).
    pub fn matches(&self, e: &AuditEvent) -> bool {
        let r = &e.record;
        self.key
            .as_ref()
            .is_none_or(|k| &r.key_id == k || &r.key_name == k)
            && self.actor.as_ref().is_none_or(|a| &r.actor == a)
            && self.action.as_ref().is_none_or(|a| &r.action == a)
            && self.outcome.as_ref().is_none_or(|o| &r.outcome == o)
            && self.request_id.as_ref().is_none_or(|i| &r.request_id == i)
            && self.source.as_ref().is_none_or(|s| &r.source == s)
    }
}

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
}

type Ack = oneshot::Sender<Result<u64, String>>;

/// Handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    db: SqlitePool,
    tx: mpsc::Sender<(AuditRecord, Ack)>,
    live: broadcast::Sender<Arc<AuditEvent>>,
    writable: watch::Receiver<bool>,
    /// Calls refused while the store could not be written.
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl AuditLog {
    /// Starts the writer task, continuing the chain from the last stored event.
    pub async fn start(db: SqlitePool) -> Result<Self, AuditError> {
        let head = store::head(&db).await?;
        let (tx, rx) = mpsc::channel(65_536);
        let (live, _) = broadcast::channel(4096);
        // Both on connections of their own, so neither waits for a query's connection.
        let mut conn = db.acquire().await?.detach();
        // A commit blocked this long by another process's lock fails, so a call never waits
        // past its request timeout on the audit log; the gateway then refuses calls until
        // the store is writable again.
        sqlx::query("PRAGMA busy_timeout = 5000")
            .execute(&mut conn)
            .await?;
        let checkpoint_conn = db.acquire().await?.detach();
        let catch_up = checkpoint::CatchUp::default();
        let (health, writable) = watch::channel(true);
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(writer::run(
            conn,
            head,
            rx,
            live.clone(),
            catch_up.clone(),
            writer::Health {
                writable: health,
                refused: refused.clone(),
            },
        ));
        tokio::spawn(checkpoint::run(checkpoint_conn, catch_up));
        Ok(Self {
            db,
            tx,
            live,
            writable,
            refused,
        })
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
            .send((record, ack))
            .await
            .map_err(|_| AuditError::Stopped)?;
        match done.await {
            Ok(Ok(sequence)) => Ok(sequence),
            Ok(Err(e)) => Err(AuditError::Write(e)),
            Err(_) => Err(AuditError::Stopped),
        }
    }

    /// A view that reads and cannot append.
    pub fn reader(&self) -> AuditReader<'_> {
        AuditReader(self)
    }

    /// Live events as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditEvent>> {
        self.live.subscribe()
    }

    /// Events matching `filter` after sequence `after`, at most `limit`.
    pub async fn query(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        Ok(store::query(&self.db, filter, after, limit).await?)
    }

    /// Recomputes the whole chain.
    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        verify::verify(&self.db).await
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

    pub async fn query(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        self.0.query(filter, after, limit).await
    }

    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        self.0.verify().await
    }
}
