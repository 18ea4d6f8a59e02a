//! Anchoring the chain: signed checkpoints, kept in the database and by witnesses outside it.
//!
//! Every `every_events` events or `every` (and at shutdown), the [`Anchor`] signs (sequence,
//! head hash, time, previous checkpoint) with the audit signing key, which a provider holds
//! (an HSM or cloud key in production; the local provider in dev). The signature is made
//! through the gateway's runner ([`CheckpointSigner`]), so each checkpoint is also an event
//! (`SignAuditCheckpoint`) recorded right after the sequence it covers. The checkpoint is then
//! stored with the log and copied to each [`witness::Witness`].
//!
//! Verification (`audit::verify`) trusts only public keys it gets from outside the database:
//! from the provider (online) or given by the verifier (offline).

pub mod statement;
pub mod witness;

use super::store::{AuditStore, Checkpoint, SideRows};
use super::{AuditError, AuditLog};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use witness::Witness;

/// When checkpoints are made.
#[derive(Debug, Clone, Copy)]
pub struct AnchorSettings {
    pub every_events: u64,
    pub every: Duration,
}

/// Signs a checkpoint with the audit signing key.
#[async_trait::async_trait]
pub trait CheckpointSigner: Send + Sync {
    /// Fills in the key (id, name, primary version, algorithm, public key as the provider
    /// gives it) and the signature over [`statement::statement`].
    async fn sign(&self, draft: Checkpoint) -> Result<Checkpoint, String>;

    /// The public keys of every version of the signing key, as its provider gives them.
    async fn public_keys(&self) -> Result<Vec<Vec<u8>>, String>;
}

/// What verification trusts, shared between the anchor and the log's readers.
#[derive(Default)]
pub struct AnchorState {
    trusted: RwLock<Vec<Vec<u8>>>,
    witnesses: RwLock<Vec<Arc<dyn Witness>>>,
    /// Whether checkpoints are made at all.
    enabled: std::sync::atomic::AtomicBool,
    verified: Arc<statement::Verified>,
}

impl AnchorState {
    pub fn verified(&self) -> Arc<statement::Verified> {
        self.verified.clone()
    }

    pub fn trusted_keys(&self) -> Vec<Vec<u8>> {
        self.trusted.read().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn trust(&self, keys: impl IntoIterator<Item = Vec<u8>>) {
        if let Ok(mut t) = self.trusted.write() {
            for k in keys {
                if !t.contains(&k) {
                    t.push(k);
                }
            }
        }
    }

    pub fn witnesses(&self) -> Vec<Arc<dyn Witness>> {
        self.witnesses.read().map(|w| w.clone()).unwrap_or_default()
    }

    pub fn set_witnesses(&self, witnesses: Vec<Arc<dyn Witness>>) {
        if let Ok(mut w) = self.witnesses.write() {
            *w = witnesses;
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Makes checkpoints.
pub struct Anchor {
    log: AuditLog,
    store: Arc<dyn AuditStore>,
    signer: Arc<dyn CheckpointSigner>,
    settings: AnchorSettings,
    /// One checkpoint at a time, and what the last one was.
    last: tokio::sync::Mutex<Last>,
}

#[derive(Default)]
struct Last {
    checkpoint: Option<Checkpoint>,
    /// The log's head right after the last checkpoint's own event: events up to here need no
    /// new checkpoint of their own (they are that event, or raced it).
    covered_through: u64,
    /// After a failure, the next try waits until then.
    retry_at: Option<tokio::time::Instant>,
}

impl Anchor {
    pub async fn new(
        log: AuditLog,
        signer: Arc<dyn CheckpointSigner>,
        settings: AnchorSettings,
    ) -> Result<Arc<Self>, AuditError> {
        let store = log.store();
        let checkpoint = store.checkpoints().await?.pop();
        let covered_through = checkpoint.as_ref().map_or(0, |c| c.sequence);
        log.anchor_state().set_enabled(true);
        Ok(Arc::new(Self {
            log,
            store,
            signer,
            settings,
            last: tokio::sync::Mutex::new(Last {
                checkpoint,
                covered_through,
                retry_at: None,
            }),
        }))
    }

    /// Takes the newest checkpoint in the store as the one to link to.
    async fn refresh_last(&self) -> Result<(), AuditError> {
        let newest = self.store.checkpoints().await?.pop();
        let mut last = self.last.lock().await;
        if newest.as_ref().map(|c| c.sequence) != last.checkpoint.as_ref().map(|c| c.sequence) {
            last.covered_through = last
                .covered_through
                .max(newest.as_ref().map_or(0, |c| c.sequence));
            last.checkpoint = newest;
        }
        Ok(())
    }

    /// Loads the signing key's public keys from its provider, for verification.
    pub async fn load_trusted_keys(&self) -> Result<usize, String> {
        let keys = self.signer.public_keys().await?;
        let n = keys.len();
        self.log.anchor_state().trust(keys);
        Ok(n)
    }

    /// Makes a checkpoint if one is due (`force`: whenever the head moved). Returns the new
    /// checkpoint's sequence.
    pub async fn checkpoint(&self, force: bool) -> Result<Option<u64>, String> {
        let mut last = self.last.lock().await;
        if !force
            && last
                .retry_at
                .is_some_and(|at| tokio::time::Instant::now() < at)
        {
            return Ok(None);
        }
        let Some((head, head_hash)) = self.store.head().await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let (last_sequence, last_time) = last
            .checkpoint
            .as_ref()
            .map_or((0, 0), |c| (c.sequence, c.time_ms));
        let now = crate::time::now_ms();
        let fresh = head > last.covered_through;
        let due = head > last_sequence
            && (force
                || (fresh
                    && (head - last_sequence >= self.settings.every_events
                        || now - last_time >= self.settings.every.as_millis() as i64)));
        if !due {
            return Ok(None);
        }
        let draft = Checkpoint {
            sequence: head,
            head_hash,
            time_ms: now,
            previous_digest: last
                .checkpoint
                .as_ref()
                .map_or_else(|| statement::NO_PREVIOUS.to_string(), statement::digest_of),
            key_id: String::new(),
            key_name: String::new(),
            key_version: 0,
            algorithm: String::new(),
            public_key: Vec::new(),
            signature: Vec::new(),
        };
        let signed = match self.signer.sign(draft).await {
            Ok(s) => s,
            Err(e) => {
                last.retry_at = Some(tokio::time::Instant::now() + self.settings.every);
                return Err(e);
            }
        };
        // The provider gave this public key for the version that signed: trust it. A version
        // not seen before (a rotation) is a moment to read every version's key again.
        let new_version = !self
            .log
            .anchor_state()
            .trusted_keys()
            .contains(&signed.public_key);
        self.log.anchor_state().trust([signed.public_key.clone()]);
        if new_version && let Err(e) = self.load_trusted_keys().await {
            tracing::warn!(error = %e, "cannot read the audit signing key's public keys");
        }
        self.log
            .commit_side(SideRows {
                checkpoints: vec![signed.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        last.covered_through = self
            .store
            .head()
            .await
            .map_err(|e| e.to_string())?
            .map_or(head, |(s, _)| s);
        last.checkpoint = Some(signed);
        last.retry_at = None;
        drop(last);
        self.witness_pending().await;
        Ok(Some(head))
    }

    /// Copies checkpoints not yet witnessed to every witness; marks those all witnesses hold.
    pub async fn witness_pending(&self) {
        let pending = match self.store.unwitnessed().await {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read checkpoints to witness");
                return;
            }
        };
        let mut all = true;
        for w in self.log.anchor_state().witnesses() {
            if let Err(e) = w.append(&pending).await {
                all = false;
                tracing::error!(witness = %w.describe(), error = %e, "cannot write audit checkpoints to a witness; retrying");
            }
        }
        if all {
            let witnessed = pending.iter().map(|c| c.sequence).collect();
            if let Err(e) = self
                .log
                .commit_side(SideRows {
                    witnessed,
                    ..Default::default()
                })
                .await
            {
                tracing::warn!(error = %e, "cannot mark checkpoints witnessed");
            }
        }
    }

    /// Checkpoints as they fall due, until `stop`. While the signing key's public keys could
    /// not be read (its provider was down at start-up), it tries again every minute.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        // Leadership may have been elsewhere since this replica last signed: the next
        // checkpoint links to the newest one in the store, whoever signed it.
        if let Err(e) = self.refresh_last().await {
            tracing::warn!(error = %e, "cannot read the newest audit checkpoint; the next one may not link to it");
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1).min(self.settings.every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_key_read = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            if self.log.anchor_state().trusted_keys().is_empty()
                && tokio::time::Instant::now() >= next_key_read
            {
                next_key_read = tokio::time::Instant::now() + Duration::from_secs(60);
                if let Err(e) = self.load_trusted_keys().await {
                    tracing::warn!(error = %e, "cannot read the audit signing key's public keys; retrying in a minute");
                }
            }
            // A checkpoint under way when this replica stops leading (it may wait long on a
            // database that is down) is dropped, not finished: the next leader links its own
            // to the newest stored, and a late one from here would fork the line.
            let signed = tokio::select! {
                signed = self.checkpoint(false) => signed,
                _ = stop.cancelled() => return,
            };
            match signed {
                Ok(Some(sequence)) => tracing::debug!(sequence, "audit checkpoint signed"),
                Ok(None) => self.witness_pending().await,
                Err(e) => tracing::error!(error = %e, "audit checkpoint failed; retrying"),
            }
        }
    }
}
