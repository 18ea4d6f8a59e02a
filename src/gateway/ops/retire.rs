//! RetireKeyVersions: the versions below a floor stop decrypting and verifying, on the
//! provider (where it has the notion) and in keygate, once nothing has used them for the
//! quiet period, as keygate's own audit log shows. The Kubernetes KMS plugin's key retires
//! only with force: its audit log does not show what etcd still needs (see
//! [`GatewayError::KmsPluginKeyRetirement`]).

use super::usage::version_usage;
use crate::approvals::PendingChange;
use crate::catalog::KeyRecord;
use crate::gateway::GatewayError;
use crate::gateway::runner::{Changes, Exec, NeededChange, Operation, Settings, Target};
use crate::policy::{Action, OperationFacts};
use std::sync::Arc;

/// Whether `key` is the one the Kubernetes KMS plugin serves (`[kms_plugin] key`, a name or
/// an id).
fn is_kms_plugin_key(settings: &Settings<'_>, key: &KeyRecord) -> bool {
    settings
        .lifecycle
        .kms_plugin_key
        .as_deref()
        .is_some_and(|k| k == key.id || k == key.name)
}

pub struct RetireKeyVersions {
    pub key: String,
    /// Versions below this retire.
    pub below: u32,
    /// Retire although a version was used within the quiet period (policy: approvals).
    pub force: bool,
}

impl Operation for RetireKeyVersions {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::RetireKeyVersions
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        if self.below < 2 {
            return Err(GatewayError::invalid(
                "below",
                format!(
                    "below is {}: versions start at 1, so retiring below {} retires nothing; name the first version that stays (e.g. --below 2)",
                    self.below, self.below
                ),
            ));
        }
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    fn policy_context(&self, facts: &mut OperationFacts) {
        if self.force {
            facts.forced = Some(true);
        }
    }

    fn pending_change(&self) -> Option<PendingChange> {
        self.force
            .then_some(PendingChange::RetireVersions { below: self.below })
    }

    fn ready(&self, cx: &Exec<'_, Changes>) -> Result<(), GatewayError> {
        let key = cx.key()?;
        let primary = key.primary().version;
        if self.below > primary {
            return Err(GatewayError::invalid(
                "below",
                format!(
                    "key '{}' has versions 1 to {primary}: the primary version cannot retire; rotate first, then retire below the new primary",
                    key.name
                ),
            ));
        }
        if !self.force && is_kms_plugin_key(&cx.settings(), key) {
            return Err(GatewayError::KmsPluginKeyRetirement {
                key: key.name.clone(),
            });
        }
        if self.below <= key.retired_below {
            return Err(GatewayError::invalid(
                "below",
                format!(
                    "key '{}' already has its versions below {} retired; retirement only moves forward",
                    key.name, key.retired_below
                ),
            ));
        }
        Ok(())
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        let key = cx.key()?.clone();
        // Forced or not: a version that seals a provider's root key stays.
        cx.refuse_if_needed(&key, NeededChange::RetireBelow(self.below))?;
        let quiet = cx.settings().lifecycle.retirement_quiet_period;
        let since = crate::time::now_ms() - i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX);
        let usage = version_usage(cx, &key, since).await?;
        let in_use: Vec<(u32, u64)> = usage
            .range(key.retired_below.max(1)..self.below)
            .filter(|(_, u)| u.uses > 0)
            .map(|(v, u)| (*v, u.uses))
            .collect();
        cx.detail("below", self.below);
        cx.detail("quiet_period_seconds", quiet.as_secs());
        if is_kms_plugin_key(&cx.settings(), &key) {
            // Only forced (see ready).
            cx.detail("kms_plugin_key", true);
            cx.detail("forced", true);
        }
        if !in_use.is_empty() {
            let used: serde_json::Map<String, serde_json::Value> = in_use
                .iter()
                .map(|(v, n)| (v.to_string(), (*n).into()))
                .collect();
            cx.detail("used_in_quiet_period", serde_json::Value::Object(used));
            if !self.force {
                let (version, uses) = in_use[0];
                return Err(GatewayError::VersionInUse {
                    key: key.name.clone(),
                    version,
                    uses,
                    quiet_period: quiet,
                });
            }
            cx.detail("forced", true);
        }
        // The provider first: keygate records the floor only once the backend enforces it.
        cx.retire_versions_in_backend(self.below).await?;
        cx.detail("enforced_by", "provider and gateway");
        cx.set_retired_below(key.retired_below, self.below).await
    }
}
