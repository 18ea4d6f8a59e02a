//! Configuration: a TOML file (`--config FILE`) with `KEYGATE_…` environment overrides
//! (`KEYGATE_LISTEN__ADDRESS=0.0.0.0:50051`). `--dev` needs no file at all.
//!
//! Secrets appear only as references ([`SecretRef`]); an inline secret is refused.

mod audit;
mod console;
mod jwks;
mod kms_plugin;
mod posture;
mod server;
mod storage;
mod telemetry;

pub use audit::{
    AuditConfig, CheckpointConfig, FloodConfig, IngestConfig, ObjectLocation, SYSTEM_OWNER,
    WitnessConfig,
};
pub use console::ConsoleConfig;
pub use jwks::JwksConfig;
pub use keygate_provider::{SecretRef, SecretRefError};
pub use kms_plugin::KmsPluginConfig;
pub use server::{ServerConfig, ServerSettings};
pub use storage::{PgTlsMode, StorageConfig, StorageKind};
pub use telemetry::TelemetryConfig;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Marks a file written for `serve --dev` only: `--dev` refuses any other file (it adds a
    /// root principal and lowers the destruction floor, which a production configuration must
    /// never get), and a file marked so is refused without `--dev`. Read from the file only,
    /// never from the environment.
    #[serde(default)]
    pub dev_only: bool,
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    /// Connection keepalive and age, shutdown grace (`server.rs`).
    #[serde(default)]
    pub server: ServerConfig,
    /// The Prometheus endpoint (`telemetry.rs`).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Bearer tokens and the principals they stand for.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Provider instances by name: `[providers.NAME] kind = "local"`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The provider CreateKey uses when the request names none.
    pub default_provider: Option<String>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// The audit feed: checkpoints, witnesses, ingesters, floods, retention (`audit.rs`).
    #[serde(default)]
    pub audit: AuditConfig,
    /// Inventory scans and findings (`posture.rs`).
    #[serde(default)]
    pub posture: posture::PostureConfig,
    /// The Kubernetes KMS v2 plugin on a UNIX socket (`kms_plugin.rs`); unset: none.
    #[serde(default)]
    pub kms_plugin: Option<KmsPluginConfig>,
    /// The JWKS endpoint for signing keys' public keys (`jwks.rs`); unset: none.
    #[serde(default)]
    pub jwks: Option<JwksConfig>,
    /// The web console for security teams (`console.rs`); unset: none.
    #[serde(default)]
    pub console: Option<ConsoleConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Default `127.0.0.1:50051`.
    #[serde(default = "default_listen")]
    pub address: String,
    pub tls: Option<TlsConfig>,
    /// Serve without TLS on an address other than loopback. Off by default: tokens and key
    /// material would cross the network in the clear. Set it only behind something that
    /// encrypts the traffic itself (a TLS-terminating proxy on the same host, a mesh sidecar).
    #[serde(default)]
    pub allow_plaintext: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            address: default_listen(),
            tls: None,
            allow_plaintext: false,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:50051".into()
}

/// Server TLS (rustls). With `client_ca_file`, clients must present a certificate it signed
/// (mTLS); with `crl_file` too, certificates those CRLs revoke are refused at the handshake.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    /// PEM, one or more certificate revocation lists of the client CAs (needs
    /// `client_ca_file`).
    pub crl_file: Option<PathBuf>,
    /// How often the four files are checked for changes (modification time and size); a
    /// change is loaded for new connections, a file that does not load keeps the old
    /// configuration. `0s`: never.
    #[serde(default = "default_tls_reload")]
    pub reload_interval: String,
}

fn default_tls_reload() -> String {
    "10s".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    User,
    ServiceAccount,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A person (`alice`) or service account (`svc-payments`); never a team.
    pub principal: String,
    pub kind: PrincipalKind,
    /// Roles from the policies: `key-admin`, `key-user`, `auditor`, `approver`,
    /// `policy-admin`, or your own.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The team the principal belongs to (a team never owns a key).
    #[serde(default)]
    pub team: Option<String>,
    /// The environments the principal may act in (`["prod"]`); none unless listed.
    #[serde(default)]
    pub environments: Vec<String>,
    /// The bearer token; may be left out only with `certificate_alone = true`.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// The client certificate identity (mTLS) the principal's token is valid with: a token
    /// presented over a connection with another certificate is refused (UNAUTHENTICATED).
    #[serde(default)]
    pub certificate: Option<CertificateIdentityConfig>,
    /// The principal authenticates by its client certificate alone, without a token.
    #[serde(default)]
    pub certificate_alone: bool,
}

/// A client certificate identity: exactly one of a subjectAltName URI (a SPIFFE id, say) or
/// the subject's common name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateIdentityConfig {
    pub uri: Option<String>,
    pub common_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A folder with `*.cedar` policies and `keygate.cedarschema`; the built-in defaults
    /// (the repository's `policies/`) when unset.
    pub dir: Option<PathBuf>,
    /// How often the folder is checked for changes, which are then reloaded (`0s`: never;
    /// `keygate policy reload` still works).
    #[serde(default = "default_watch")]
    pub watch_interval: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            dir: None,
            watch_interval: default_watch(),
        }
    }
}

fn default_watch() -> String {
    "2s".into()
}

/// Critical actions and their approvals (issue 13).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Actions that wait for approvals: `ScheduleKeyDestruction`, `SetKeyOwner`,
    /// `DisableKey`, each optionally for one environment (`DisableKey@prod`). Added to
    /// `ScheduleKeyDestruction` and `SetKeyOwner`, which are always critical.
    #[serde(default = "default_critical")]
    pub critical: Vec<String>,
    /// Distinct approvers a critical action needs, none of them its requester.
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// How long a request waits for its quorum, e.g. `24h`.
    #[serde(default = "default_expiry")]
    pub expiry: String,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            critical: default_critical(),
            quorum: default_quorum(),
            expiry: default_expiry(),
        }
    }
}

fn default_critical() -> Vec<String> {
    crate::approvals::DEFAULT_CRITICAL
        .iter()
        .map(|c| c.to_string())
        .collect()
}
fn default_quorum() -> u32 {
    2
}
fn default_expiry() -> String {
    "24h".into()
}

impl ApprovalsConfig {
    pub fn settings(&self) -> Result<crate::approvals::ApprovalSettings, ConfigError> {
        let mut critical = Vec::new();
        for (i, c) in self.critical.iter().enumerate() {
            critical.push(
                c.parse()
                    .map_err(|e| Config::invalid(format!("approvals.critical[{i}]"), e))?,
            );
        }
        if self.quorum == 0 || self.quorum > 16 {
            return Err(Config::invalid(
                "approvals.quorum",
                "must be between 1 and 16 distinct approvers",
            ));
        }
        let expiry = crate::time::parse_duration(&self.expiry)
            .map_err(|e| Config::invalid("approvals.expiry", e))?;
        if expiry < std::time::Duration::from_secs(1)
            || expiry > std::time::Duration::from_secs(90 * 86_400)
        {
            return Err(Config::invalid(
                "approvals.expiry",
                format!("is {}; it must be between 1s and 90d", self.expiry),
            ));
        }
        Ok(crate::approvals::ApprovalSettings {
            critical,
            quorum: self.quorum,
            expiry,
        })
    }
}

/// One provider instance. `kind` picks the implementation; the other fields are that kind's.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderConfig {
    pub kind: String,
    #[serde(flatten)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "default_max_plaintext")]
    pub max_plaintext_bytes: usize,
    #[serde(default = "default_max_aad")]
    pub max_associated_data_bytes: usize,
    /// How long a client waits for a reply at most, e.g. `10s`. A call still running then
    /// goes on to its end and is audited; the client gets DEADLINE_EXCEEDED.
    #[serde(default = "default_timeout")]
    pub request_timeout: String,
    /// Deadline for one provider call, retries included, e.g. `8s`; must be shorter than
    /// `request_timeout`, so a slow backend answers UNAVAILABLE before the client gives up.
    #[serde(default = "default_provider_timeout")]
    pub provider_timeout: String,
    /// Calls running at once, those whose clients gave up included; more are refused with
    /// RESOURCE_EXHAUSTED until some finish.
    #[serde(default = "default_max_in_flight")]
    pub max_calls_in_flight: usize,
    /// Audit Tail streams one principal may keep open at once; more are refused with
    /// RESOURCE_EXHAUSTED (TAIL_LIMIT).
    #[serde(default = "default_max_tails")]
    pub max_tail_streams_per_principal: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_plaintext_bytes: default_max_plaintext(),
            max_associated_data_bytes: default_max_aad(),
            request_timeout: default_timeout(),
            provider_timeout: default_provider_timeout(),
            max_calls_in_flight: default_max_in_flight(),
            max_tail_streams_per_principal: default_max_tails(),
        }
    }
}

fn default_max_plaintext() -> usize {
    64 * 1024
}
fn default_max_aad() -> usize {
    8 * 1024
}
fn default_timeout() -> String {
    "10s".into()
}
fn default_provider_timeout() -> String {
    "8s".into()
}
fn default_max_tails() -> usize {
    4
}
fn default_max_in_flight() -> usize {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Shortest crypto-period a key may have, e.g. `1d`.
    #[serde(default = "default_min_period")]
    pub min_crypto_period: String,
    /// Shortest destruction pending window, e.g. `7d`; at least
    /// [`MIN_DESTRUCTION_WINDOW_FLOOR`] (in dev mode [`DEV_MIN_DESTRUCTION_WINDOW_FLOOR`]).
    #[serde(default = "default_min_window")]
    pub min_destruction_window: String,
    /// How often the scheduler looks for keys due for rotation or destruction.
    #[serde(default = "default_scan")]
    pub scan_interval: String,
    /// The window `key show` counts each version's uses over, e.g. `30d`.
    #[serde(default = "default_usage_window")]
    pub usage_window: String,
    /// A version used within this is not retired unless forced, e.g. `30d`.
    #[serde(default = "default_usage_window")]
    pub retirement_quiet_period: String,
    /// A key with a version used to decrypt or verify within this is not scheduled for
    /// destruction (the destruction checklist), e.g. `30d`; `0s` turns the check off.
    #[serde(default = "default_usage_window")]
    pub destruction_quiet_period: String,
    /// How long a signing key's staged version is published before the scheduler makes it
    /// the primary, e.g. `24h`.
    #[serde(default = "default_propagation_delay")]
    pub signing_propagation_delay: String,
    /// Shortest time to live of a short-lived key, e.g. `1m`.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: String,
    /// How long past a key's rotation date keygate waits for a backend that rotates the key
    /// by itself (AWS, Cloud KMS, Vault automatic rotation) before rotating it itself, e.g. `1d`.
    #[serde(default = "default_provider_rotation_grace")]
    pub provider_rotation_grace: String,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            min_crypto_period: default_min_period(),
            min_destruction_window: default_min_window(),
            scan_interval: default_scan(),
            usage_window: default_usage_window(),
            retirement_quiet_period: default_usage_window(),
            destruction_quiet_period: default_usage_window(),
            signing_propagation_delay: default_propagation_delay(),
            min_ttl: default_min_ttl(),
            provider_rotation_grace: default_provider_rotation_grace(),
        }
    }
}

fn default_usage_window() -> String {
    "30d".into()
}
fn default_propagation_delay() -> String {
    "24h".into()
}
fn default_provider_rotation_grace() -> String {
    "1d".into()
}
fn default_min_ttl() -> String {
    "1m".into()
}

fn default_min_period() -> String {
    "1d".into()
}
fn default_min_window() -> String {
    "7d".into()
}
fn default_scan() -> String {
    "60s".into()
}

/// No deployment may let a destruction happen sooner than this after it is scheduled: the
/// pending window is the last chance to notice a mistake (rule 5).
pub const MIN_DESTRUCTION_WINDOW_FLOOR: std::time::Duration =
    std::time::Duration::from_secs(86_400);
/// Dev mode's floor, so the scheduler's destruction can be tried (and tested) in seconds.
pub const DEV_MIN_DESTRUCTION_WINDOW_FLOOR: std::time::Duration = std::time::Duration::from_secs(1);

impl LifecycleConfig {
    /// Refuses a `min_destruction_window` under the floor (`dev`: dev mode's floor).
    pub fn check_floor(&self, dev: bool) -> Result<(), ConfigError> {
        let floor = if dev {
            DEV_MIN_DESTRUCTION_WINDOW_FLOOR
        } else {
            MIN_DESTRUCTION_WINDOW_FLOOR
        };
        let window = crate::time::parse_duration(&self.min_destruction_window)
            .map_err(|e| Config::invalid("lifecycle.min_destruction_window", e))?;
        if window < floor {
            return Err(Config::invalid(
                "lifecycle.min_destruction_window",
                format!(
                    "is {}; a destruction's pending window is at least {}{} so a mistake can still be cancelled",
                    self.min_destruction_window,
                    crate::time::format_duration(floor),
                    if dev {
                        " in dev mode"
                    } else {
                        " (1s in dev mode)"
                    }
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {setting}: {reason}")]
    Invalid { setting: String, reason: String },
}

impl Config {
    /// Reads `file` (if any) and `KEYGATE_…` environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("KEYGATE")
                .prefix_separator("_")
                .separator("__")
                .ignore_empty(true)
                .source(Some(overrides(std::env::vars()))),
        );
        let config: Config = builder.build()?.try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    /// A configuration from TOML text alone (no environment overrides), checked as
    /// [`Config::load`] checks a file.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    pub(crate) fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    /// Checks what serde cannot: names, durations, references between sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server_settings()?;
        self.posture_settings()?;
        self.storage.validate()?;
        for (i, t) in self.tokens.iter().enumerate() {
            if t.principal.trim().is_empty() {
                return Err(Self::invalid(format!("tokens[{i}].principal"), "is empty"));
            }
            if t.principal == crate::server::startup::DEV_ROOT {
                return Err(Self::invalid(
                    format!("tokens[{i}].principal"),
                    format!(
                        "'{}' is reserved for the root principal of `serve --dev`; choose another name",
                        crate::server::startup::DEV_ROOT
                    ),
                ));
            }
            self.check_certificate(i, t)?;
            if t.roles.iter().any(|r| r == crate::auth::DEV_ROOT_ROLE) {
                return Err(Self::invalid(
                    format!("tokens[{i}].roles"),
                    "the dev-root role exists only in `serve --dev` and cannot be configured",
                ));
            }
            // A principal may hold several tokens (while one is rotated), but it is one
            // principal: the same roles, team, kind and environments in every entry.
            if let Some(first) = self.tokens[..i]
                .iter()
                .find(|other| other.principal == t.principal)
                && (first.kind != t.kind
                    || first.roles != t.roles
                    || first.team != t.team
                    || first.environments != t.environments)
            {
                return Err(Self::invalid(
                    format!("tokens[{i}]"),
                    format!(
                        "principal '{}' is configured again with other roles, team, kind or environments; give each token of one principal the same settings",
                        t.principal
                    ),
                ));
            }
            if let Some(team) = &t.team
                && self.tokens.iter().any(|other| &other.principal == team)
            {
                return Err(Self::invalid(
                    format!("tokens[{i}].team"),
                    format!(
                        "'{team}' is also a principal's name; a team and a principal must differ so a key's owner is never ambiguous"
                    ),
                ));
            }
        }
        for (setting, value) in [
            ("limits.request_timeout", &self.limits.request_timeout),
            ("limits.provider_timeout", &self.limits.provider_timeout),
            (
                "lifecycle.min_crypto_period",
                &self.lifecycle.min_crypto_period,
            ),
            (
                "lifecycle.min_destruction_window",
                &self.lifecycle.min_destruction_window,
            ),
            ("lifecycle.scan_interval", &self.lifecycle.scan_interval),
            ("lifecycle.usage_window", &self.lifecycle.usage_window),
            (
                "lifecycle.retirement_quiet_period",
                &self.lifecycle.retirement_quiet_period,
            ),
            (
                "lifecycle.destruction_quiet_period",
                &self.lifecycle.destruction_quiet_period,
            ),
            (
                "lifecycle.signing_propagation_delay",
                &self.lifecycle.signing_propagation_delay,
            ),
            ("lifecycle.min_ttl", &self.lifecycle.min_ttl),
            (
                "lifecycle.provider_rotation_grace",
                &self.lifecycle.provider_rotation_grace,
            ),
            ("policy.watch_interval", &self.policy.watch_interval),
        ] {
            crate::time::parse_duration(value).map_err(|e| Self::invalid(setting, e))?;
        }
        if let Some(tls) = &self.listen.tls {
            self.duration("listen.tls.reload_interval", &tls.reload_interval)?;
            if tls.crl_file.is_some() && tls.client_ca_file.is_none() {
                return Err(Self::invalid(
                    "listen.tls.crl_file",
                    "needs listen.tls.client_ca_file: revocation lists apply to client certificates (mTLS)",
                ));
            }
        }
        let request = self.duration("limits.request_timeout", &self.limits.request_timeout)?;
        let provider = self.duration("limits.provider_timeout", &self.limits.provider_timeout)?;
        if provider >= request {
            return Err(Self::invalid(
                "limits.provider_timeout",
                format!(
                    "is {}, not shorter than limits.request_timeout ({}): a slow backend must answer UNAVAILABLE before the client's deadline",
                    self.limits.provider_timeout, self.limits.request_timeout
                ),
            ));
        }
        if self.limits.max_tail_streams_per_principal == 0 {
            return Err(Self::invalid(
                "limits.max_tail_streams_per_principal",
                "must be at least 1",
            ));
        }
        if self.limits.max_calls_in_flight == 0 {
            return Err(Self::invalid(
                "limits.max_calls_in_flight",
                "must be at least 1",
            ));
        }
        if provider.is_zero() {
            return Err(Self::invalid(
                "limits.provider_timeout",
                "must be more than 0s",
            ));
        }
        if let Some(name) = &self.default_provider
            && !self.providers.contains_key(name)
        {
            return Err(Self::invalid(
                "default_provider",
                format!("names '{name}', which is not a [providers.{name}] section"),
            ));
        }
        // The dev-mode floor here; the server applies the full one outside dev mode.
        self.lifecycle.check_floor(true)?;
        self.approvals.settings()?;
        for (i, t) in self.tokens.iter().enumerate() {
            for env in &t.environments {
                if env != "*" {
                    crate::gateway::validate::environment(env).map_err(|e| {
                        Self::invalid(format!("tokens[{i}].environments"), e.to_string())
                    })?;
                }
            }
        }
        self.audit.validate(self)?;
        if let Some(plugin) = &self.kms_plugin {
            plugin.validate(self)?;
        }
        if let Some(jwks) = &self.jwks {
            jwks.validate(self)?;
        }
        if let Some(console) = &self.console {
            console.validate(self)?;
        }
        if self.limits.max_plaintext_bytes == 0 || self.limits.max_plaintext_bytes > 1024 * 1024 {
            return Err(Self::invalid(
                "limits.max_plaintext_bytes",
                "must be between 1 and 1048576",
            ));
        }
        Ok(())
    }

    /// A principal's certificate binding: one identity, mTLS configured, and a way to
    /// authenticate at all.
    fn check_certificate(&self, i: usize, t: &TokenConfig) -> Result<(), ConfigError> {
        if let Some(c) = &t.certificate {
            let setting = format!("tokens[{i}].certificate");
            match (&c.uri, &c.common_name) {
                (Some(v), None) | (None, Some(v)) if !v.is_empty() && v.len() <= 1024 => {}
                _ => {
                    return Err(Self::invalid(
                        setting,
                        "set exactly one of `uri` (a subjectAltName URI such as spiffe://…) or `common_name`, 1-1024 characters",
                    ));
                }
            }
            let mtls = self
                .listen
                .tls
                .as_ref()
                .is_some_and(|tls| tls.client_ca_file.is_some());
            if !mtls {
                return Err(Self::invalid(
                    setting,
                    "needs client certificates: set listen.tls.client_ca_file (mTLS), or the principal could never authenticate",
                ));
            }
        } else if t.certificate_alone {
            return Err(Self::invalid(
                format!("tokens[{i}].certificate_alone"),
                "needs `certificate` (the identity the principal authenticates by)",
            ));
        }
        if t.token.is_none() && !t.certificate_alone {
            return Err(Self::invalid(
                format!("tokens[{i}].token"),
                "is missing: give a token reference, or `certificate` with `certificate_alone = true`",
            ));
        }
        Ok(())
    }

    pub fn duration(&self, setting: &str, value: &str) -> Result<std::time::Duration, ConfigError> {
        crate::time::parse_duration(value).map_err(|e| Self::invalid(setting, e))
    }
}

/// The environment variables that override settings: `KEYGATE_SECTION__KEY` (a double
/// underscore between levels) and `KEYGATE_DEFAULT_PROVIDER`. Other `KEYGATE_…` variables
/// (`KEYGATE_TOKEN`, `KEYGATE_ENDPOINT` for the client, `KEYGATE_LOG`, …) are not settings and
/// must not be read as unknown ones.
fn overrides(
    vars: impl Iterator<Item = (String, String)>,
) -> std::collections::HashMap<String, String> {
    vars.filter(|(name, _)| {
        name.strip_prefix("KEYGATE_")
            .is_some_and(|rest| rest.contains("__") || rest == "DEFAULT_PROVIDER")
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_section_variables_override_settings() {
        let vars = [
            ("KEYGATE_LISTEN__ADDRESS", "0.0.0.0:1"),
            ("KEYGATE_DEFAULT_PROVIDER", "local"),
            ("KEYGATE_TOKEN", "client-side"),
            ("KEYGATE_BAO_BIN", "/x"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let mut kept: Vec<String> = overrides(vars.into_iter()).into_keys().collect();
        kept.sort();
        assert_eq!(
            kept,
            ["KEYGATE_DEFAULT_PROVIDER", "KEYGATE_LISTEN__ADDRESS"]
        );
    }

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_kms_plugin_principal_is_its_own() {
        let plugin = "[kms_plugin]\nsocket = \"/run/keygate/kms.sock\"\nkey = \"k8s/secrets\"\nprincipal = \"svc-kube\"\nenvironments = [\"prod\"]\n";
        let token = "[[tokens]]\nprincipal = \"svc-kube\"\nkind = \"service-account\"\ntoken = { env = \"T\" }\n";
        let config = parse(plugin).unwrap();
        assert_eq!(config.kms_plugin.unwrap().principal, "svc-kube");
        let err = parse(&format!("{plugin}\n{token}")).unwrap_err();
        assert!(err.contains("kms_plugin.principal"), "{err}");
        let err = parse(&plugin.replace("svc-kube", "root")).unwrap_err();
        assert!(err.contains("kms_plugin.principal"), "{err}");
        let err = parse(&plugin.replace("k8s/secrets", " ")).unwrap_err();
        assert!(err.contains("kms_plugin.key"), "{err}");
        let err = parse(&format!("{plugin}roles = [\"dev-root\"]\n")).unwrap_err();
        assert!(err.contains("kms_plugin.roles"), "{err}");
    }

    #[test]
    fn the_jwks_endpoint_publishes_only_what_it_lists() {
        let jwks = "[jwks]\nlisten = \"127.0.0.1:8443\"\n";
        assert!(parse("").unwrap().jwks.is_none());
        let err = parse(jwks).unwrap_err();
        assert!(err.contains("jwks.keys"), "{err}");
        let one = parse(&format!("{jwks}keys = [\"jwt/issuer\"]\n")).unwrap();
        let one = one.jwks.unwrap();
        assert_eq!(one.well_known(), Some("jwt/issuer"));
        assert_eq!(one.cache, "30s");
        let two = format!("{jwks}keys = [\"a/b\", \"c/d\"]\n");
        assert_eq!(parse(&two).unwrap().jwks.unwrap().well_known(), None);
        let chosen = parse(&format!("{two}default = \"c/d\"\n")).unwrap();
        assert_eq!(chosen.jwks.unwrap().well_known(), Some("c/d"));
        let err = parse(&format!("{two}default = \"e/f\"\n")).unwrap_err();
        assert!(err.contains("jwks.default"), "{err}");
        let err = parse(&format!("{jwks}keys = [\"a/b\", \"a/b\"]\n")).unwrap_err();
        assert!(err.contains("twice"), "{err}");
        let err = parse(&format!("{jwks}keys = [\" a/b\"]\n")).unwrap_err();
        assert!(err.contains("jwks.keys"), "{err}");
        let err = parse(&format!("{two}cache = \"1h\"\n")).unwrap_err();
        assert!(err.contains("jwks.cache"), "{err}");
        let err = parse(&format!("{two}cache = \"soon\"\n")).unwrap_err();
        assert!(err.contains("jwks.cache"), "{err}");
    }

    #[test]
    fn inline_token_is_refused_naming_the_setting() {
        let err =
            parse("[[tokens]]\nprincipal = \"alice\"\nkind = \"user\"\ntoken = \"s3cr3t-value\"\n")
                .unwrap_err();
        assert!(err.contains("inline secrets are refused"), "{err}");
        assert!(err.contains("token"), "{err}");
        assert!(!err.contains("s3cr3t-value"), "{err}");
    }

    #[test]
    fn bad_durations_and_dangling_default_provider_are_named() {
        let err = parse("[lifecycle]\nmin_crypto_period = \"soon\"\n").unwrap_err();
        assert!(err.contains("lifecycle.min_crypto_period"), "{err}");
        let err = parse("default_provider = \"aws\"\n").unwrap_err();
        assert!(
            err.contains("default_provider") && err.contains("aws"),
            "{err}"
        );
        let err = parse("[listen]\nadress = \"x\"\n").unwrap_err();
        assert!(err.contains("adress"), "{err}");
    }

    #[test]
    fn the_provider_deadline_must_be_shorter_than_the_request_timeout() {
        let err =
            parse("[limits]\nrequest_timeout = \"5s\"\nprovider_timeout = \"5s\"\n").unwrap_err();
        assert!(err.contains("limits.provider_timeout"), "{err}");
        assert!(err.contains("request_timeout"), "{err}");
        assert!(parse("[limits]\nrequest_timeout = \"5s\"\nprovider_timeout = \"4s\"\n").is_ok());
        // The defaults agree with each other.
        assert!(parse("").is_ok());
    }

    #[test]
    fn a_destruction_window_under_the_floor_is_refused() {
        let err = parse("[lifecycle]\nmin_destruction_window = \"0s\"\n").unwrap_err();
        assert!(err.contains("lifecycle.min_destruction_window"), "{err}");
        let config = parse("[lifecycle]\nmin_destruction_window = \"1h\"\n").unwrap();
        // Dev mode takes an hour; a real deployment needs a day.
        assert!(config.lifecycle.check_floor(true).is_ok());
        let err = config.lifecycle.check_floor(false).unwrap_err().to_string();
        assert!(err.contains("at least 1d"), "{err}");
        assert!(parse("").unwrap().lifecycle.check_floor(false).is_ok());
    }

    #[test]
    fn one_principal_has_one_set_of_roles() {
        let entry = |roles: &str| {
            format!(
                "[[tokens]]\nprincipal = \"alice\"\nkind = \"user\"\nroles = [{roles}]\ntoken = {{ env = \"T\" }}\n"
            )
        };
        let twice = format!("{}{}", entry("\"key-admin\""), entry("\"key-admin\""));
        assert!(parse(&twice).is_ok());
        let err = parse(&format!(
            "{}{}",
            entry("\"key-admin\""),
            entry("\"approver\"")
        ))
        .unwrap_err();
        assert!(
            err.contains("tokens[1]") && err.contains("'alice'"),
            "{err}"
        );
    }

    #[test]
    fn approvals_settings_are_checked() {
        assert!(
            parse("[approvals]\nquorum = 0\n")
                .unwrap_err()
                .contains("approvals.quorum")
        );
        let err = parse("[approvals]\ncritical = [\"Encrypt\"]\n").unwrap_err();
        assert!(
            err.contains("approvals.critical[0]") && err.contains("cannot wait"),
            "{err}"
        );
        assert!(
            parse("[approvals]\nexpiry = \"0s\"\n")
                .unwrap_err()
                .contains("approvals.expiry")
        );
        let settings = parse("[approvals]\ncritical = [\"DisableKey@prod\"]\nquorum = 3\n")
            .unwrap()
            .approvals
            .settings()
            .unwrap();
        assert_eq!(settings.quorum, 3);
        assert!(settings.is_critical(crate::policy::Action::DisableKey, "prod"));
        assert!(!settings.is_critical(crate::policy::Action::DisableKey, "dev"));
        // Destruction stays critical: rule 5 cannot be configured away.
        let settings = parse("[approvals]\ncritical = []\n")
            .unwrap()
            .approvals
            .settings()
            .unwrap();
        assert!(settings.is_critical(crate::policy::Action::ScheduleKeyDestruction, "prod"));
    }

    #[test]
    fn the_dev_root_name_is_reserved() {
        let err =
            parse("[[tokens]]\nprincipal = \"root\"\nkind = \"user\"\ntoken = { env = \"X\" }\n")
                .unwrap_err();
        assert!(
            err.contains("tokens[0].principal") && err.contains("reserved"),
            "{err}"
        );
    }

    #[test]
    fn an_overlong_shutdown_grace_is_refused_at_start_up() {
        let input = include_str!("../../fuzz/corpus/config/regression-shutdown-grace-overflow");
        let err = parse(input).unwrap_err();
        assert!(err.contains("server.shutdown_grace"), "{err}");
    }

    #[test]
    fn a_crl_needs_client_certificates_and_the_reload_interval_parses() {
        let tls = "[listen.tls]\ncert_file = \"s.pem\"\nkey_file = \"s.key\"\n";
        let err = parse(&format!("{tls}crl_file = \"crl.pem\"\n")).unwrap_err();
        assert!(
            err.contains("listen.tls.crl_file") && err.contains("client_ca_file"),
            "{err}"
        );
        let err = parse(&format!("{tls}reload_interval = \"soon\"\n")).unwrap_err();
        assert!(err.contains("listen.tls.reload_interval"), "{err}");
        let config = parse(&format!(
            "{tls}client_ca_file = \"ca.pem\"\ncrl_file = \"crl.pem\"\nreload_interval = \"200ms\"\n"
        ))
        .unwrap();
        let loaded = config.listen.tls.unwrap();
        assert_eq!(loaded.reload_interval, "200ms");
        assert_eq!(
            parse(tls).unwrap().listen.tls.unwrap().reload_interval,
            "10s"
        );
    }

    #[test]
    fn certificate_bindings_are_checked() {
        let mtls = "[listen.tls]\ncert_file = \"s.pem\"\nkey_file = \"s.key\"\nclient_ca_file = \"ca.pem\"\n";
        let principal = "[[tokens]]\nprincipal = \"svc\"\nkind = \"service-account\"\n";
        // Without client certificates a binding could never match.
        let err = parse(&format!(
            "{principal}token = {{ env = \"X\" }}\ncertificate = {{ uri = \"spiffe://t/svc\" }}\n"
        ))
        .unwrap_err();
        assert!(err.contains("client_ca_file"), "{err}");
        let err = parse(&format!(
            "{mtls}{principal}token = {{ env = \"X\" }}\ncertificate = {{ uri = \"spiffe://t/svc\", common_name = \"svc\" }}\n"
        ))
        .unwrap_err();
        assert!(err.contains("exactly one"), "{err}");
        let err = parse(&format!("{mtls}{principal}certificate_alone = true\n")).unwrap_err();
        assert!(err.contains("tokens[0].certificate_alone"), "{err}");
        let err = parse(&format!(
            "{mtls}{principal}certificate = {{ common_name = \"svc\" }}\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("tokens[0].token") && err.contains("is missing"),
            "{err}"
        );
        assert!(
            parse(&format!(
                "{mtls}{principal}certificate = {{ common_name = \"svc\" }}\ncertificate_alone = true\n"
            ))
            .is_ok()
        );
    }

    #[test]
    fn a_full_file_parses() {
        let config = parse(
            r#"
default_provider = "local"
[listen]
address = "0.0.0.0:50051"
[storage]
data_dir = "/var/lib/keygate"
[[tokens]]
principal = "alice"
kind = "user"
roles = ["key-admin"]
token = { env = "ALICE_TOKEN" }
[providers.local]
kind = "local"
passphrase = { env = "KEYGATE_MASTER_PASSPHRASE" }
"#,
        )
        .unwrap();
        assert_eq!(config.providers["local"].kind, "local");
        assert_eq!(
            config.tokens[0].token,
            Some(SecretRef::Env("ALICE_TOKEN".into()))
        );
    }
}
