//! From configuration to a running gateway: storage, catalog, audit log, policies, tokens,
//! providers.

use crate::approvals::ApprovalStore;
use crate::audit::AuditLog;
use crate::auth::{DEV_ROOT_ROLE, Principal, TokenTable};
use crate::catalog::Catalog;
use crate::config::{Config, PrincipalKind};
use crate::gateway::runner::GatewayParts;
use crate::gateway::{Gateway, Limits};
use crate::lifecycle::LifecycleSettings;
use crate::lifecycle::destruction::DestructionRecords;
use crate::policy::{PolicySource, PolicyStore};
use crate::providers::ProviderRegistry;
use std::sync::Arc;

/// The principal dev mode's root token stands for (role `dev-root`: see
/// policies/00-grants.cedar).
pub const DEV_ROOT: &str = "root";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
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

/// Builds the gateway. `dev_token` adds the dev root principal.
pub async fn build(config: &Config, dev_token: Option<&str>) -> Result<Arc<Gateway>, StartupError> {
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
    let providers = ProviderRegistry::from_config(
        config,
        dev,
        // Each provider call's deadline, shorter than a client's wait (validated at load).
        config.duration("limits.provider_timeout", &config.limits.provider_timeout)?,
    )
    .await?;
    if providers.names().is_empty() {
        return Err(StartupError::Invalid(
            "no providers are configured: add a [providers.NAME] section (e.g. kind = \"local\")"
                .into(),
        ));
    }
    let db = crate::db::open(&config.storage.data_dir).await?;
    let catalog = Catalog::load(db.clone()).await?;
    let approvals = ApprovalStore::new(db.clone());
    let interrupted = approvals.close_interrupted(crate::time::now_ms()).await?;
    if interrupted > 0 {
        tracing::warn!(
            requests = interrupted,
            "approved changes were under way when the gateway stopped; their requests are closed as failed (see their execution calls' audit events)"
        );
    }
    let destructions = DestructionRecords::new(db.clone());
    let audit = AuditLog::start(db).await?;
    let limits = Limits {
        max_plaintext_bytes: config.limits.max_plaintext_bytes,
        max_associated_data_bytes: config.limits.max_associated_data_bytes,
        // No admitted call works longer than a client may wait for it.
        call_timeout: config.duration("limits.request_timeout", &config.limits.request_timeout)?,
        max_calls_in_flight: config.limits.max_calls_in_flight,
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
        ..defaults
    };
    let lifecycle = LifecycleSettings {
        // A request without a window gets the default, which must be allowed.
        default_destruction_window: lifecycle
            .default_destruction_window
            .max(lifecycle.min_destruction_window),
        ..lifecycle
    };
    Ok(Arc::new(Gateway::new(GatewayParts {
        catalog,
        providers,
        policy: Arc::new(policy),
        audit,
        tokens,
        limits,
        lifecycle,
        approvals,
        approval_settings,
        destructions,
    })))
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
