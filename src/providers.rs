//! Provider instances from configuration, by name: `[providers.NAME] kind = "…"`.
//!
//! Each provider crate exports a factory for its kind; the registry hands it the section's
//! settings without knowing them (the crate's typed configuration refuses unknown or
//! misspelt settings, and the error names the section). Every instance runs inside the kit's
//! guard (deadline, retries, circuit breaker, rate limit, metrics), configured by the
//! section's `guard` table, so no provider escapes it.

use crate::config::{Config, ProviderConfig};
use keygate_provider::KeyProvider;
use keygate_provider::kit::{
    AuditFeed, BuildContext, GuardDefaults, GuardSettings, Guarded, Metrics, NoMetrics,
    ProviderFactory, build_instance,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The provider kinds this build knows.
pub const KINDS: &[&str] = &["local", "aws-kms", "vault", "pkcs11", "gcp-kms"];

/// The factory of each kind in [`KINDS`], in the same order.
fn factories() -> [&'static dyn ProviderFactory; 5] {
    [
        keygate_provider_local::factory(),
        keygate_provider_aws::factory(),
        keygate_provider_vault::factory(),
        keygate_provider_pkcs11::factory(),
        keygate_provider_gcp::factory(),
    ]
}

fn factory(kind: &str) -> Option<&'static dyn ProviderFactory> {
    factories().into_iter().find(|f| f.kind() == kind)
}

pub struct ProviderRegistry {
    providers: BTreeMap<String, Arc<dyn KeyProvider>>,
    default: String,
    guard: GuardDefaults,
    /// Providers' own audit streams, for the ingestion that will read them (none yet).
    audit_feeds: BTreeMap<String, Box<dyn AuditFeed>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("providers.{name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("providers.{name}: unknown kind '{kind}' (this build knows: {})", KINDS.join(", "))]
    UnknownKind { name: String, kind: String },
}

impl ProviderRegistry {
    pub fn new(default: &str) -> Self {
        Self::with_guard(
            default,
            GuardDefaults {
                deadline: keygate_provider::kit::DEFAULT_DEADLINE,
                metrics: Arc::new(NoMetrics),
            },
        )
    }

    fn with_guard(default: &str, guard: GuardDefaults) -> Self {
        Self {
            providers: BTreeMap::new(),
            default: default.to_string(),
            guard,
            audit_feeds: BTreeMap::new(),
        }
    }

    /// Adds a provider inside a guard with the registry's defaults.
    pub fn insert(&mut self, provider: Arc<dyn KeyProvider>) {
        let guarded = Guarded::new(
            provider,
            &GuardSettings::default(),
            self.guard.deadline,
            self.guard.metrics.clone(),
        );
        self.add(Arc::new(guarded));
    }

    fn add(&mut self, provider: Arc<Guarded>) {
        self.providers.insert(provider.name().to_string(), provider);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn KeyProvider>> {
        self.providers.get(name).cloned()
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    pub fn names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    /// The audit feed provider `name` offers, if any.
    pub fn audit_feed(&self, name: &str) -> Option<&dyn AuditFeed> {
        self.audit_feeds.get(name).map(|f| f.as_ref())
    }

    /// Builds every configured provider, each inside its guard; `deadline` bounds each
    /// provider call whose section sets no `guard.deadline`. In dev mode a `local` provider
    /// with a generated master key is added when the configuration has none.
    pub async fn from_config(
        config: &Config,
        dev: bool,
        deadline: Duration,
    ) -> Result<Self, ProviderSetupError> {
        Self::from_config_with_metrics(config, dev, deadline, Arc::new(NoMetrics)).await
    }

    /// [`ProviderRegistry::from_config`], reporting every provider call to `metrics`.
    pub async fn from_config_with_metrics(
        config: &Config,
        dev: bool,
        deadline: Duration,
        metrics: Arc<dyn Metrics>,
    ) -> Result<Self, ProviderSetupError> {
        let mut sections = config.providers.clone();
        if dev && !sections.contains_key("local") {
            sections.insert(
                "local".into(),
                ProviderConfig {
                    kind: "local".into(),
                    settings: BTreeMap::new(),
                },
            );
        }
        let default = config
            .default_provider
            .clone()
            .or_else(|| sections.contains_key("local").then(|| "local".to_string()))
            .or_else(|| sections.keys().next().cloned())
            .unwrap_or_default();
        let guard = GuardDefaults { deadline, metrics };
        let context = BuildContext {
            data_dir: config.storage.data_dir.clone(),
            dev,
        };
        let mut registry = Self::with_guard(&default, guard);
        for (name, section) in sections {
            let Some(factory) = factory(&section.kind) else {
                return Err(ProviderSetupError::UnknownKind {
                    name,
                    kind: section.kind,
                });
            };
            let settings = section.settings.into_iter().collect();
            let instance = build_instance(factory, &name, settings, &context, &registry.guard)
                .await
                .map_err(|e| ProviderSetupError::Invalid {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            registry.add(instance.provider);
            if let Some(feed) = instance.audit_feed {
                registry.audit_feeds.insert(name, feed);
            }
        }
        Ok(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_factory() {
        let kinds: Vec<&str> = factories().iter().map(|f| f.kind()).collect();
        assert_eq!(kinds, KINDS);
    }
}
