//! From configuration to a running gateway: storage, catalog, audit log, policies, tokens,
//! providers.

use crate::approvals::ApprovalStore;
use crate::audit::anchor::AnchorSettings;
use crate::audit::anchor::witness::{DirWitness, ObjectWitness, Witness};
use crate::audit::flood::FloodSettings;
use crate::audit::ingest::{IngestSettings, file::FileFeed, objects::ObjectFeed, sources};
use crate::audit::store::sql::SqlAuditStore;
use crate::audit::{AuditLog, AuditOptions};
use crate::auth::{DEV_ROOT_ROLE, Principal, TokenTable};
use crate::catalog::Catalog;
use crate::config::{Config, PrincipalKind, StorageKind};
use crate::db::Db;
use crate::db::leader::Leadership;
use crate::gateway::audit_services::{AuditServices, ServiceSettings, SigningKeySettings};
use crate::gateway::runner::GatewayParts;
use crate::gateway::{Gateway, Limits};
use crate::lifecycle::LifecycleSettings;
use crate::lifecycle::destruction::DestructionRecords;
use crate::policy::{PolicySource, PolicyStore};
use crate::providers::ProviderRegistry;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The principal dev mode's root token stands for (role `dev-root`: see
/// policies/00-grants.cedar).
pub const DEV_ROOT: &str = "root";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("storage: {0}")]
    Postgres(#[from] crate::db::postgres::PgStoreError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Approvals(#[from] crate::approvals::ApprovalError),
    #[error(transparent)]
    Tokens(#[from] crate::auth::TokenError),
    #[error(transparent)]
    Providers(#[from] crate::providers::ProviderSetupError),
    #[error("{0}")]
    Invalid(String),
}

/// A gateway and the audit feed's background work, started.
pub struct Started {
    pub gateway: Arc<Gateway>,
    /// Whether this replica runs the background jobs (the rotation scheduler too).
    pub leadership: Leadership,
    /// Cancelled at shutdown, after the last checkpoint: ends the campaign for the leader lock
    /// and releases it (then [`Leadership::released`] returns), so another replica leads at
    /// once.
    pub resign: CancellationToken,
    /// Stopped after the gateway drained ([`AuditServices::shutdown`]).
    pub audit: AuditServices,
}

/// Builds the gateway and starts the audit feed's services. `dev_token` adds the dev root
/// principal.
pub async fn build(config: &Config, dev_token: Option<&str>) -> Result<Started, StartupError> {
    let dev = dev_token.is_some();
    config.lifecycle.check_floor(dev)?;
    let approval_settings = config.approvals.settings()?;
    let mut tokens = TokenTable::from_config(config)?;
    if let Some(token) = dev_token {
        tokens.insert(
            token.as_bytes(),
            Principal {
                name: DEV_ROOT.into(),
                kind: PrincipalKind::User,
                roles: vec![DEV_ROOT_ROLE.into()],
                team: String::new(),
                environments: vec!["*".into()],
                certificate: None,
            },
        );
    }
    if tokens.is_empty() {
        return Err(StartupError::Invalid(
            "no tokens are configured: add [[tokens]] sections, or run with --dev".into(),
        ));
    }
    let policy = PolicyStore::load(match &config.policy.dir {
        Some(dir) => PolicySource::Dir(dir.clone()),
        None => PolicySource::Builtin,
    })?;
    warn_on_unreachable_quorum(&tokens, &approval_settings);
    let telemetry = Arc::new(crate::telemetry::Telemetry::new());
    let providers = ProviderRegistry::from_config_with_metrics(
        config,
        dev,
        // Each provider call's deadline, shorter than a client's wait (validated at load).
        config.duration("limits.provider_timeout", &config.limits.provider_timeout)?,
        telemetry.clone(),
    )
    .await?;
    if providers.names().is_empty() {
        return Err(StartupError::Invalid(
            "no providers are configured: add a [providers.NAME] section (e.g. kind = \"local\")"
                .into(),
        ));
    }
    let db = open_storage(config, dev).await?;
    if db.is_postgres() && !dev {
        shared_witness(config)?;
    }
    let catalog = Catalog::load(db.clone()).await?;
    let approvals = ApprovalStore::new(db.clone());
    // On PostgreSQL another replica may be carrying out an approved change right now: closing
    // requests "under way" is only right for a single process that just restarted. There the
    // leader closes them once stale (`lifecycle::scheduler`).
    if !db.is_postgres() {
        let interrupted = approvals.close_interrupted(crate::time::now_ms()).await?;
        if interrupted > 0 {
            tracing::warn!(
                requests = interrupted,
                "approved changes were under way when the gateway stopped; their requests are closed as failed (see their execution calls' audit events)"
            );
        }
    }
    let destructions = DestructionRecords::new(db.clone());
    let posture = crate::posture::Posture {
        store: crate::posture::PostureStore::new(db.clone()),
        settings: config.posture_settings()?,
        system_keys: vec![config.audit.checkpoints.signing_key.clone()],
    };
    let (hasher, made) = crate::audit::hmac::load_or_create(
        config.audit.hmac_key.as_ref(),
        &config.storage.data_dir,
    )
    .map_err(StartupError::Invalid)?;
    if made && !dev {
        tracing::warn!(
            "audit.hmac_key is not set: a key for HMACs of sensitive provider values was generated in the data directory (audit-hmac.key); set audit.hmac_key = {{ file = \"…\" }} to keep it elsewhere"
        );
    }
    let audit = AuditLog::start(
        Arc::new(SqlAuditStore::new(db.clone())),
        AuditOptions {
            flood: audit_flood(config)?,
            witnesses: witnesses(config, &providers)?,
            hasher,
            metrics: telemetry.audit_writer(),
        },
    )
    .await?;
    let limits = Limits {
        max_plaintext_bytes: config.limits.max_plaintext_bytes,
        max_associated_data_bytes: config.limits.max_associated_data_bytes,
        // No admitted call works longer than a client may wait for it.
        call_timeout: config.duration("limits.request_timeout", &config.limits.request_timeout)?,
        max_calls_in_flight: config.limits.max_calls_in_flight,
        max_tail_streams_per_principal: config.limits.max_tail_streams_per_principal,
    };
    let defaults = LifecycleSettings::default();
    let lifecycle = LifecycleSettings {
        min_crypto_period: config.duration(
            "lifecycle.min_crypto_period",
            &config.lifecycle.min_crypto_period,
        )?,
        min_destruction_window: config.duration(
            "lifecycle.min_destruction_window",
            &config.lifecycle.min_destruction_window,
        )?,
        scan_interval: config
            .duration("lifecycle.scan_interval", &config.lifecycle.scan_interval)?,
        usage_window: config.duration("lifecycle.usage_window", &config.lifecycle.usage_window)?,
        retirement_quiet_period: config.duration(
            "lifecycle.retirement_quiet_period",
            &config.lifecycle.retirement_quiet_period,
        )?,
        destruction_quiet_period: config.duration(
            "lifecycle.destruction_quiet_period",
            &config.lifecycle.destruction_quiet_period,
        )?,
        signing_propagation_delay: config.duration(
            "lifecycle.signing_propagation_delay",
            &config.lifecycle.signing_propagation_delay,
        )?,
        min_ttl: config.duration("lifecycle.min_ttl", &config.lifecycle.min_ttl)?,
        provider_rotation_grace: config.duration(
            "lifecycle.provider_rotation_grace",
            &config.lifecycle.provider_rotation_grace,
        )?,
        kms_plugin_key: config.kms_plugin.as_ref().map(|p| p.key.clone()),
        ..defaults
    };
    let lifecycle = LifecycleSettings {
        // A request without a window gets the default, which must be allowed.
        default_destruction_window: lifecycle
            .default_destruction_window
            .max(lifecycle.min_destruction_window),
        ..lifecycle
    };
    let mut services = service_settings(config, &providers, limits.call_timeout)?;
    let resign = CancellationToken::new();
    if db.is_postgres() {
        shared_signing_key(&services, &providers, dev)?;
        services.leadership = Leadership::campaign(
            crate::db::postgres::connect_options(&config.storage)?
                .application_name(&format!("keygate-{}", std::process::id())),
            LEADER_CHECK,
            resign.clone(),
        );
    }
    let gateway = Arc::new(Gateway::new(GatewayParts {
        catalog,
        providers,
        policy: Arc::new(policy),
        audit: audit.clone(),
        tokens,
        limits,
        lifecycle,
        approvals,
        approval_settings,
        destructions,
        posture,
        telemetry,
    }));
    if let Db::Postgres(pool) = &db {
        tokio::spawn(crate::catalog::sync::run(
            gateway.shared_catalog(),
            pool.clone(),
            config.storage.catalog_resync()?,
            CancellationToken::new(),
        ));
    }
    let leadership = services.leadership.clone();
    let audit = AuditServices::start(&gateway, audit, services)
        .await
        .map_err(StartupError::Invalid)?;
    Ok(Started {
        gateway,
        leadership,
        resign,
        audit,
    })
}

/// How often a replica on PostgreSQL tries for the leader lock, and the leader checks it still
/// holds it: a dead leader's jobs resume elsewhere within about this long.
const LEADER_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The database `[storage]` names: SQLite in the data directory (migrated here), or
/// PostgreSQL, whose schema only `keygate migrate` changes and which must be one this keygate
/// knows. `dev`: one process by definition, so what only replicas need is not required.
async fn open_storage(config: &Config, dev: bool) -> Result<Db, StartupError> {
    match config.storage.kind {
        StorageKind::Sqlite => Ok(crate::db::open(&config.storage.data_dir).await?.into()),
        StorageKind::Postgres => {
            let pool = crate::db::postgres::connect(&config.storage).await?;
            crate::db::postgres::check_schema(&pool).await?;
            if config.audit.hmac_key.is_none() && !dev {
                return Err(StartupError::Invalid(
                    "storage.kind = \"postgres\": set audit.hmac_key = { file = \"…\" } (the same key on every replica), so sensitive values are hashed alike whichever replica logs them".into(),
                ));
            }
            Ok(pool.into())
        }
    }
}

/// Replicas sign checkpoints in turn (whichever leads) and each verifies all of them, so the
/// signing key must be one every replica reaches: not the local provider's, whose keys live in
/// one replica's data directory.
/// Dev mode runs one process, so it only warns.
fn shared_signing_key(
    services: &ServiceSettings,
    providers: &ProviderRegistry,
    dev: bool,
) -> Result<(), StartupError> {
    let Some(s) = &services.checkpoints else {
        return Ok(());
    };
    if providers
        .get(&s.provider)
        .is_some_and(|p| p.kind() == "local")
    {
        let message = format!(
            "storage.kind = \"postgres\": audit.checkpoints.provider is '{}', a local provider, whose keys only one replica holds; name a provider every replica reaches (vault, aws-kms, gcp-kms, azure-keyvault, pkcs11)",
            s.provider
        );
        if !dev {
            return Err(StartupError::Invalid(message));
        }
        tracing::warn!("{message} (allowed in dev mode: one process)");
    }
    Ok(())
}

/// Replicas take turns checkpointing (whichever leads), so a witness in each replica's data
/// directory (the default) holds only the checkpoints made while that replica led, and no
/// witness holds them all. Dev mode lets a throwaway cluster start as it is.
fn shared_witness(config: &Config) -> Result<(), StartupError> {
    let w = &config.audit.witness;
    if config.audit.checkpoints.enabled && w.dir.is_none() && w.objects.is_none() {
        return Err(StartupError::Invalid(format!(
            "storage.kind = \"postgres\": audit checkpoints would be witnessed in each replica's own data directory ({}), so no witness would hold them all; set audit.witness.dir to a directory every replica reaches (the same path on each), or audit.witness.objects to a bucket",
            config.storage.data_dir.join("audit-witness").display()
        )));
    }
    Ok(())
}

/// Says so at start-up when fewer principals hold the approver role than a quorum needs:
/// critical actions would then wait for approvals that can never come.
fn warn_on_unreachable_quorum(tokens: &TokenTable, settings: &crate::approvals::ApprovalSettings) {
    let approvers = tokens.count_with_role("approver");
    if !settings.critical.is_empty() && approvers < settings.quorum as usize {
        tracing::warn!(
            approvers,
            quorum = settings.quorum,
            "fewer principals hold the approver role than [approvals] quorum: critical actions cannot be approved"
        );
    }
}

fn audit_flood(config: &Config) -> Result<Option<FloodSettings>, StartupError> {
    let f = &config.audit.flood;
    if !f.enabled {
        return Ok(None);
    }
    Ok(Some(FloodSettings {
        threshold: f.threshold,
        window: config.duration("audit.flood.window", &f.window)?,
    }))
}

/// Object storage of a configured provider.
fn objects(
    providers: &ProviderRegistry,
    setting: &str,
    provider: &str,
) -> Result<Arc<dyn keygate_provider::kit::ObjectStore>, StartupError> {
    providers
        .audit_feed(provider)
        .and_then(|f| f.objects())
        .ok_or_else(|| {
            StartupError::Invalid(format!(
                "{setting}: provider '{provider}' has no object storage keygate can read (an aws-kms provider's is S3)"
            ))
        })
}

fn witnesses(
    config: &Config,
    providers: &ProviderRegistry,
) -> Result<Vec<Arc<dyn Witness>>, StartupError> {
    let data_dir = &config.storage.data_dir;
    let dir = config
        .audit
        .witness
        .dir
        .clone()
        .unwrap_or_else(|| data_dir.join("audit-witness"));
    if config.audit.witness.dir.is_none() && config.audit.witness.objects.is_none() {
        tracing::info!(
            witness = %dir.display(),
            "audit checkpoints are witnessed in the data directory; set audit.witness.dir (another disk or host) or audit.witness.objects (a bucket) to keep them out of reach of whoever can change the database"
        );
    }
    let mut out: Vec<Arc<dyn Witness>> = vec![Arc::new(DirWitness::new(&dir))];
    if let Some(o) = &config.audit.witness.objects {
        let prefix = if o.prefix.is_empty() || o.prefix.ends_with('/') {
            o.prefix.clone()
        } else {
            format!("{}/", o.prefix)
        };
        out.push(Arc::new(ObjectWitness::new(
            objects(providers, "audit.witness.objects", &o.provider)?,
            &o.provider,
            &o.bucket,
            &prefix,
        )));
    }
    Ok(out)
}

fn service_settings(
    config: &Config,
    providers: &ProviderRegistry,
    call_timeout: std::time::Duration,
) -> Result<ServiceSettings, StartupError> {
    let a = &config.audit;
    let c = &a.checkpoints;
    let checkpoints = if c.enabled {
        Some(SigningKeySettings {
            name: c.signing_key.clone(),
            provider: c
                .provider
                .clone()
                .unwrap_or_else(|| providers.default_name().to_string()),
            algorithm: c.algorithm.clone(),
            owner: c.owner.clone(),
            crypto_period: config.duration("audit.checkpoints.crypto_period", &c.crypto_period)?,
            anchor: AnchorSettings {
                every_events: c.every_events,
                every: config.duration("audit.checkpoints.every", &c.every)?,
            },
        })
    } else {
        tracing::warn!(
            "audit.checkpoints.enabled = false: the audit chain is not anchored; a deleted tail or a rehashed chain cannot be detected"
        );
        None
    };
    let grace = match &a.bypass_grace {
        Some(g) => config.duration("audit.bypass_grace", g)?,
        None => call_timeout + std::time::Duration::from_secs(5),
    };
    let mut ingest = Vec::new();
    for (i, f) in a.ingest.iter().enumerate() {
        let normaliser = sources::normaliser(&f.format).ok_or_else(|| {
            StartupError::Invalid(format!(
                "audit.ingest[{i}].format: '{}' is unknown",
                f.format
            ))
        })?;
        let feed: Arc<dyn crate::audit::ingest::feed::Feed> = match (&f.file, &f.objects) {
            (Some(path), _) => Arc::new(FileFeed::new(path)),
            (None, Some(o)) => Arc::new(ObjectFeed::new(
                objects(
                    providers,
                    &format!("audit.ingest[{i}].objects"),
                    &o.provider,
                )?,
                &o.bucket,
                &o.prefix,
            )),
            (None, None) => {
                return Err(StartupError::Invalid(format!(
                    "audit.ingest[{i}]: set `file` or `objects`"
                )));
            }
        };
        ingest.push(IngestSettings {
            name: f.name.clone(),
            normaliser,
            feed,
            poll: config.duration(&format!("audit.ingest[{i}].poll"), &f.poll)?,
            grace,
            batch: f.batch,
        });
    }
    let retention = match &a.retention {
        Some(r) => Some((
            config.duration("audit.retention", r)?,
            config.duration("audit.retention_check", &a.retention_check)?,
        )),
        None => None,
    };
    Ok(ServiceSettings {
        checkpoints,
        ingest,
        retention,
        // One process on SQLite: always the leader.
        leadership: Leadership::always(),
    })
}
