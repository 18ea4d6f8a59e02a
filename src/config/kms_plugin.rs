//! `[kms_plugin]`: the Kubernetes KMS v2 plugin `serve` runs beside its gRPC listener, on a
//! UNIX socket (src/server/kms_plugin).

use super::{Config, ConfigError};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsPluginConfig {
    /// The socket the kube-apiserver connects to (`endpoint: unix:///PATH` in its
    /// EncryptionConfiguration); created with mode 0600, so only its owner (the user keygate
    /// runs as, or root) can connect. Its directory must be owned by that user or root and
    /// writable by nobody else (or have the sticky bit), or `serve` refuses to start.
    pub socket: PathBuf,
    /// The keygate key (name or id) that seals the apiserver's data encryption keys. Its
    /// versions retire only with force (see `RetireKeyVersions`).
    pub key: String,
    /// The service account the plugin's calls run as: policy decides for it and the audit log
    /// names it. It has no token: it authenticates only by the socket, and is a principal of
    /// its own, never also one of `[[tokens]]`.
    pub principal: String,
    /// Its roles, as for `[[tokens]]` (policies may also name the principal itself).
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub team: Option<String>,
    /// The environments it may act in; the key's must be among them (rule 5).
    #[serde(default)]
    pub environments: Vec<String>,
}

impl KmsPluginConfig {
    pub(super) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let invalid = |setting: &str, reason: String| {
            Config::invalid(format!("kms_plugin.{setting}"), reason)
        };
        if self.socket.as_os_str().is_empty() {
            return Err(invalid("socket", "is empty".into()));
        }
        if self.key.trim().is_empty() {
            return Err(invalid("key", "is empty".into()));
        }
        let name = self.principal.trim();
        if name.is_empty() {
            return Err(invalid("principal", "is empty".into()));
        }
        if name == crate::server::startup::DEV_ROOT {
            return Err(invalid(
                "principal",
                format!("'{name}' is reserved for the root principal of `serve --dev`"),
            ));
        }
        if config.tokens.iter().any(|t| t.principal == name) {
            return Err(invalid(
                "principal",
                format!(
                    "'{name}' is also a [[tokens]] principal; the plugin's principal authenticates only by its socket, so give it a name of its own"
                ),
            ));
        }
        if self.roles.iter().any(|r| r == crate::auth::DEV_ROOT_ROLE) {
            return Err(invalid(
                "roles",
                "the dev-root role exists only in `serve --dev` and cannot be configured".into(),
            ));
        }
        if let Some(team) = &self.team
            && (team == name || config.tokens.iter().any(|t| &t.principal == team))
        {
            return Err(invalid(
                "team",
                format!("'{team}' is also a principal's name; a team and a principal must differ"),
            ));
        }
        for env in &self.environments {
            if env != "*" {
                crate::gateway::validate::environment(env)
                    .map_err(|e| invalid("environments", e.to_string()))?;
            }
        }
        Ok(())
    }
}
