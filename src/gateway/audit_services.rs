//! The audit feed's background work, wired to the gateway: checkpoints signed through the
//! runner with the audit signing key, ingesters that know which keys keygate manages, the
//! flood aggregates' flush and retention. Started after the gateway, stopped after its drain.

use super::ops::{AuditSigningKeys, CreateKey, DurationInput, SignAuditCheckpoint};
use super::{Call, Gateway, GatewayError, SystemTask};
use crate::audit::anchor::{Anchor, AnchorSettings, CheckpointSigner};
use crate::audit::ingest::{IngestSettings, Ingester, KeyDirectory, ManagedKey};
use crate::audit::store::Checkpoint;
use crate::audit::{AuditLog, retention};
use crate::catalog::CatalogError;
use crate::db::leader::{Leadership, while_leader};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The audit signing key and when to checkpoint.
#[derive(Debug, Clone)]
pub struct SigningKeySettings {
    pub name: String,
    /// Where it is created when missing.
    pub provider: String,
    pub algorithm: String,
    pub owner: String,
    pub crypto_period: Duration,
    pub anchor: AnchorSettings,
}

/// What the services do.
pub struct ServiceSettings {
    pub checkpoints: Option<SigningKeySettings>,
    pub ingest: Vec<IngestSettings>,
    /// (retention, how often it runs).
    pub retention: Option<(Duration, Duration)>,
    /// Checkpoints, ingesters and retention run only on the leader replica.
    pub leadership: Leadership,
}

/// Signs through the runner, as the system's `AuditCheckpoint` task.
struct GatewaySigner {
    gateway: Weak<Gateway>,
    key: String,
}

impl GatewaySigner {
    fn gateway(&self) -> Result<Arc<Gateway>, String> {
        self.gateway
            .upgrade()
            .ok_or_else(|| "the gateway has stopped".to_string())
    }
}

#[async_trait::async_trait]
impl CheckpointSigner for GatewaySigner {
    async fn sign(&self, draft: Checkpoint) -> Result<Checkpoint, String> {
        self.gateway()?
            .run(
                Call::system(SystemTask::AuditCheckpoint),
                SignAuditCheckpoint {
                    key: self.key.clone(),
                    draft,
                },
            )
            .await
            .map_err(|e| format!("signing with '{}': {e}", self.key))
    }

    async fn public_keys(&self) -> Result<Vec<Vec<u8>>, String> {
        self.gateway()?
            .run(
                Call::system(SystemTask::AuditCheckpoint),
                AuditSigningKeys {
                    key: self.key.clone(),
                },
            )
            .await
            .map_err(|e| format!("reading the public keys of '{}': {e}", self.key))
    }
}

/// The catalog as ingestion sees it.
struct CatalogKeys(Weak<Gateway>);

impl KeyDirectory for CatalogKeys {
    fn managed(&self) -> HashMap<String, ManagedKey> {
        let Some(gateway) = self.0.upgrade() else {
            return HashMap::new();
        };
        let mut out = HashMap::new();
        for k in gateway.keys_snapshot() {
            let key = ManagedKey {
                id: k.id.clone(),
                name: k.name.clone(),
                versions: k
                    .versions
                    .iter()
                    .map(|v| (v.version, v.provider_version.clone()))
                    .collect(),
            };
            let uri = k.provider_uri.to_string();
            let lower = uri.to_ascii_lowercase();
            if lower != uri {
                out.insert(lower, key.clone());
            }
            out.insert(uri, key);
        }
        out
    }
}

impl Gateway {
    /// Creates the audit signing key through the runner if the catalog has none by that name,
    /// and checks that the one it has can sign checkpoints.
    pub async fn ensure_audit_signing_key(
        self: &Arc<Self>,
        s: &SigningKeySettings,
    ) -> Result<(), GatewayError> {
        match self.ensure_audit_signing_key_once(s).await {
            // Another replica made it first: take that one.
            Err(GatewayError::KeyExists(_))
            | Err(GatewayError::Catalog(CatalogError::NameTaken(_))) => {
                self.shared_catalog().resync().await?;
                self.ensure_audit_signing_key_once(s).await
            }
            other => other,
        }
    }

    async fn ensure_audit_signing_key_once(
        self: &Arc<Self>,
        s: &SigningKeySettings,
    ) -> Result<(), GatewayError> {
        if let Some(key) = self.keys_snapshot().into_iter().find(|k| k.name == s.name) {
            let algorithm = key.algorithm.as_str();
            if !crate::audit::anchor::statement::SIGNING_ALGORITHMS.contains(&algorithm) {
                return Err(GatewayError::invalid(
                    "audit.checkpoints.signing_key",
                    format!(
                        "key '{}' is {algorithm}, which cannot sign checkpoints",
                        s.name
                    ),
                ));
            }
            return Ok(());
        }
        let created = self
            .run(
                Call::system(SystemTask::AuditKeySetup),
                CreateKey {
                    name: s.name.clone(),
                    purpose: String::new(),
                    algorithm: s.algorithm.clone(),
                    owner: s.owner.clone(),
                    environment: "audit".into(),
                    crypto_period: Some(DurationInput {
                        seconds: s.crypto_period.as_secs() as i64,
                        nanos: 0,
                    }),
                    provider: s.provider.clone(),
                    labels: [("purpose".to_string(), "audit-checkpoints".to_string())]
                        .into_iter()
                        .collect(),
                    ttl: None,
                    draft: None,
                },
            )
            .await?;
        tracing::info!(key = %created.name, provider = %created.provider, uri = %created.provider_uri, "created the audit signing key");
        Ok(())
    }
}

/// The running services; [`AuditServices::shutdown`] stops them.
pub struct AuditServices {
    log: AuditLog,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    anchor: Option<Arc<Anchor>>,
    leadership: Leadership,
}

impl AuditServices {
    pub async fn start(
        gateway: &Arc<Gateway>,
        log: AuditLog,
        settings: ServiceSettings,
    ) -> Result<Self, String> {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut anchor = None;
        if let Some(s) = &settings.checkpoints {
            gateway
                .ensure_audit_signing_key(s)
                .await
                .map_err(|e| format!("audit.checkpoints: the signing key '{}': {e}", s.name))?;
            let signer = Arc::new(GatewaySigner {
                gateway: Arc::downgrade(gateway),
                key: s.name.clone(),
            });
            let a = Anchor::new(log.clone(), signer, s.anchor)
                .await
                .map_err(|e| e.to_string())?;
            match a.load_trusted_keys().await {
                Ok(n) => tracing::debug!(versions = n, "audit signing public keys loaded"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the audit signing key's public keys; verification cannot check checkpoints until it can")
                }
            }
            tasks.push(tokio::spawn(follow_signing_key(
                Arc::downgrade(gateway),
                a.clone(),
                s.name.clone(),
                stop.clone(),
            )));
            let job = a.clone();
            tasks.push(tokio::spawn(while_leader(
                settings.leadership.clone(),
                stop.clone(),
                move |term| job.clone().run(term),
            )));
            anchor = Some(a);
        }
        let keys: Arc<dyn KeyDirectory> = Arc::new(CatalogKeys(Arc::downgrade(gateway)));
        for s in settings.ingest {
            log.register_feed(&s.name, s.normaliser.source(), &s.feed.describe());
            let ingester = Arc::new(Ingester::new(s, log.clone(), keys.clone()));
            tasks.push(tokio::spawn(while_leader(
                settings.leadership.clone(),
                stop.clone(),
                move |term| {
                    let ingester = ingester.clone();
                    async move { ingester.run(term).await }
                },
            )));
        }
        // Every replica records its own calls' flood counts; only the leader prunes.
        tasks.push(tokio::spawn(flush_floods(log.clone(), stop.clone())));
        if let Some(retention) = settings.retention {
            let prune_log = log.clone();
            tasks.push(tokio::spawn(while_leader(
                settings.leadership.clone(),
                stop.clone(),
                move |term| prune(prune_log.clone(), retention, term),
            )));
        }
        Ok(Self {
            log,
            stop,
            tasks,
            anchor,
            leadership: settings.leadership,
        })
    }

    /// After the gateway drained: ingesters finish their batch, the flood windows are
    /// recorded, and a last checkpoint covers everything.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(e) = self.log.flush_floods(true).await {
            tracing::error!(error = %e, "cannot record the flood aggregates at shutdown");
        }
        // Only the leader signs: a follower's checkpoint would race the leader's.
        if let Some(anchor) = self.anchor.filter(|_| self.leadership.is_leader()) {
            match anchor.checkpoint(true).await {
                Ok(Some(sequence)) => tracing::info!(sequence, "final audit checkpoint signed"),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "the final audit checkpoint failed"),
            }
        }
    }
}

/// Reloads the signing key's public keys when its catalog record gains a version, so this
/// replica verifies checkpoints signed after a rotation, whichever replica (the leader) signed
/// them. The record is in memory; the provider is asked only when it changed.
async fn follow_signing_key(
    gateway: Weak<Gateway>,
    anchor: Arc<Anchor>,
    key: String,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Some(versions) = gateway
            .upgrade()
            .map(|g| g.key_record(&key).map_or(0, |k| k.versions.len()))
        else {
            return;
        };
        if seen.is_some_and(|n| n != versions) {
            match anchor.load_trusted_keys().await {
                Ok(n) => tracing::debug!(versions = n, "audit signing public keys reloaded"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload the audit signing key's public keys; retrying");
                    continue;
                }
            }
        }
        seen = Some(versions);
    }
}

/// Flushes ended flood windows every second.
async fn flush_floods(log: AuditLog, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = log.flush_floods(false).await {
            tracing::warn!(error = %e, "cannot record flood aggregates; retrying");
        }
    }
}

/// Prunes events past the retention `period`, every `every`.
async fn prune(log: AuditLog, (period, every): (Duration, Duration), stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match retention::prune(&log, period, crate::time::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "audit retention pruned old events"),
            Err(e) => tracing::warn!(error = %e, "audit retention failed; retrying"),
        }
    }
}
