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
pub const KINDS: &[&str] = &[
    "local",
    "aws-kms",
    "vault",
    "pkcs11",
    "gcp-kms",
    // Azure Key Vault / Managed HSM.
    "azure-keyvault",
];

/// The factory of each kind in [`KINDS`], in the same order.
fn factories() -> [&'static dyn ProviderFactory; 6] {
    [
        keygate_provider_local::factory(),
        keygate_provider_aws::factory(),
        keygate_provider_vault::factory(),
        keygate_provider_pkcs11::factory(),
        keygate_provider_gcp::factory(),
        // Azure Key Vault / Managed HSM.
        keygate_provider_azure::factory(),
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
        let mut context = BuildContext {
            data_dir: config.storage.data_dir.clone(),
            dev,
            built: BTreeMap::new(),
        };
        let mut registry = Self::with_guard(&default, guard);
        let mut pending = BTreeMap::new();
        for (name, section) in sections {
            let Some(factory) = factory(&section.kind) else {
                return Err(ProviderSetupError::UnknownKind {
                    name,
                    kind: section.kind,
                });
            };
            let settings: serde_json::Map<String, serde_json::Value> =
                section.settings.into_iter().collect();
            let needs = factory.depends_on(&settings);
            pending.insert(name, (factory, settings, needs));
        }
        let needs: BTreeMap<String, Vec<String>> = pending
            .iter()
            .map(|(name, (_, _, needs))| (name.clone(), needs.clone()))
            .collect();
        for name in build_order(&needs)? {
            let Some((factory, settings, _)) = pending.remove(&name) else {
                continue;
            };
            context.built = registry.providers.clone();
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

/// The instances in an order where each comes after those it uses (`needs`: instance → the
/// instances it uses); an instance that uses an unknown one, or a cycle, is refused by name.
fn build_order(needs: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>, ProviderSetupError> {
    fn visit(
        name: &str,
        needs: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), ProviderSetupError> {
        if order.iter().any(|done| done == name) {
            return Ok(());
        }
        if let Some(start) = path.iter().position(|p| p == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Err(ProviderSetupError::Invalid {
                name: name.to_string(),
                reason: format!(
                    "the providers use each other in a circle: {}",
                    cycle.join(" -> ")
                ),
            });
        }
        path.push(name.to_string());
        for used in needs.get(name).into_iter().flatten() {
            if !needs.contains_key(used) {
                return Err(ProviderSetupError::Invalid {
                    name: name.to_string(),
                    reason: format!(
                        "uses provider '{used}', which is not configured (configured: {})",
                        needs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            visit(used, needs, path, order)?;
        }
        path.pop();
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for name in needs.keys() {
        visit(name, needs, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(n, used)| (n.to_string(), used.iter().map(|u| u.to_string()).collect()))
            .collect()
    }

    #[test]
    fn instances_are_built_after_those_they_use() {
        let order = build_order(&needs(&[
            ("a-local", &["z-hsm"]),
            ("b", &[]),
            ("z-hsm", &[]),
        ]))
        .unwrap();
        assert_eq!(order, ["z-hsm", "a-local", "b"]);
    }

    #[test]
    fn an_unknown_or_circular_use_is_refused_by_name() {
        let unknown = build_order(&needs(&[("local", &["hsm"])])).unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("providers.local: uses provider 'hsm', which is not configured"),
            "{unknown}"
        );
        let circle = build_order(&needs(&[("a", &["b"]), ("b", &["a"])])).unwrap_err();
        assert!(circle.to_string().contains("a -> b -> a"), "{circle}");
        let itself = build_order(&needs(&[("a", &["a"])])).unwrap_err();
        assert!(itself.to_string().contains("a -> a"), "{itself}");
    }

    #[test]
    fn every_kind_has_its_factory() {
        let kinds: Vec<&str> = factories().iter().map(|f| f.kind()).collect();
        assert_eq!(kinds, KINDS);
    }
}
