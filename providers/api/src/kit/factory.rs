//! Provider factories: each provider crate turns its own configuration section into a
//! provider, so the gateway registers kinds without knowing their settings.

use super::guard::Guarded;
use super::metrics::Metrics;
use super::settings::{GuardSettings, GuardSettingsError};
use crate::{KeyProvider, ProviderError, SecretRefError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The sub-table of every provider section that belongs to the guard, not the provider.
pub const GUARD_TABLE: &str = "guard";

/// What a factory may know about the gateway it builds for.
#[derive(Clone)]
pub struct BuildContext {
    /// The gateway's data directory (the local provider keeps its keys below it).
    pub data_dir: PathBuf,
    /// `keygate serve --dev`: generated secrets and test-only settings are allowed.
    pub dev: bool,
    /// The instances built so far, each inside its guard. The registry builds every instance
    /// a section names in [`ProviderFactory::depends_on`] before that section, so those are
    /// here when its factory runs.
    pub built: BTreeMap<String, Arc<dyn KeyProvider>>,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("data_dir", &self.data_dir)
            .field("dev", &self.dev)
            .field("built", &self.built.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a provider instance offers keygate's audit feed beside its keys: object storage
/// reached with the instance's own credentials, where its cloud delivers audit log files
/// (CloudTrail to S3, …) and where keygate can witness its checkpoints. The gateway reads and
/// normalises the files itself (`keygate::audit::ingest`); a provider only moves bytes.
pub trait AuditFeed: Send + Sync {
    /// The event source the provider's records carry (`vault`, `aws-kms`, …).
    fn source(&self) -> &'static str;

    /// The instance's object storage, if its cloud has one.
    fn objects(&self) -> Option<Arc<dyn super::objects::ObjectStore>>;
}

/// What a factory builds.
pub struct Built {
    pub provider: Arc<dyn KeyProvider>,
    /// What the instance offers the audit feed, if anything (see [`AuditFeed`]).
    pub audit_feed: Option<Box<dyn AuditFeed>>,
}

impl Built {
    /// A provider without an audit feed.
    pub fn provider(provider: impl KeyProvider + 'static) -> Self {
        Self {
            provider: Arc::new(provider),
            audit_feed: None,
        }
    }
}

/// Why a provider could not be built; the registry prefixes `providers.NAME: `.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The section does not deserialize into the provider's configuration.
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Guard(#[from] GuardSettingsError),
    #[error(transparent)]
    Secret(#[from] SecretRefError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{0}")]
    Invalid(String),
}

/// Builds the providers of one kind.
#[async_trait::async_trait]
pub trait ProviderFactory: Send + Sync {
    /// The `kind = "…"` this factory serves.
    fn kind(&self) -> &'static str;

    /// The other instances (by name) that an instance with `settings` uses, so the registry
    /// builds them first and hands them over in [`BuildContext::built`]. None by default.
    fn depends_on(&self, _settings: &Map<String, Value>) -> Vec<String> {
        Vec::new()
    }

    /// Builds instance `name` from `settings`: its section without `kind` and without the
    /// [`GUARD_TABLE`].
    async fn build(
        &self,
        name: &str,
        settings: Value,
        context: &BuildContext,
    ) -> Result<Built, BuildError>;
}

/// `settings` as a provider's typed configuration; unknown fields are the type's to refuse.
pub fn typed_settings<T: DeserializeOwned>(settings: Value) -> Result<T, BuildError> {
    serde_json::from_value(settings).map_err(|e| BuildError::Settings(e.to_string()))
}

/// What the registry applies to every instance.
#[derive(Clone)]
pub struct GuardDefaults {
    /// The deadline of instances whose guard table sets none.
    pub deadline: Duration,
    pub metrics: Arc<dyn Metrics>,
}

/// A built instance, inside its guard.
pub struct Instance {
    pub provider: Arc<Guarded>,
    pub audit_feed: Option<Box<dyn AuditFeed>>,
}

/// Builds instance `name` of `factory` from its whole section (`kind` already taken out)
/// and wraps it in its guard. The guard table is checked first, so a mistake there is
/// reported before any backend is contacted.
pub async fn build_instance(
    factory: &dyn ProviderFactory,
    name: &str,
    mut section: Map<String, Value>,
    context: &BuildContext,
    defaults: &GuardDefaults,
) -> Result<Instance, BuildError> {
    let guard = GuardSettings::from_value(section.remove(GUARD_TABLE), context.dev)?;
    let built = factory.build(name, Value::Object(section), context).await?;
    let provider = Arc::new(Guarded::new(
        built.provider,
        &guard,
        defaults.deadline,
        defaults.metrics.clone(),
    ));
    Ok(Instance {
        provider,
        audit_feed: built.audit_feed,
    })
}
