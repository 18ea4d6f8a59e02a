//! `[audit]`: checkpoints and their witnesses, providers' audit records to ingest, flood
//! aggregation, retention.
//!
//! ```toml
//! [audit]
//! retention = "400d"                     # default: keep everything
//! hmac_key = { file = "/run/secrets/keygate-audit-hmac" }   # default: generated in data_dir
//! bypass_grace = "30s"                   # default: limits.request_timeout + 5s
//!
//! [audit.checkpoints]
//! every_events = 10000                   # and/or
//! every = "60s"                          # (and always at shutdown)
//! signing_key = "keygate/audit-checkpoints"   # created on `provider` at first start
//! provider = "hsm"                       # default: the default provider
//! algorithm = "ecdsa-p256"
//! owner = "svc-keygate-audit"
//!
//! [audit.witness]
//! dir = "/mnt/witness/keygate"           # default: data_dir/audit-witness
//! objects = { provider = "aws", bucket = "audit-witness", prefix = "keygate/" }
//!
//! [audit.flood]
//! threshold = 100                        # denied calls per client address per window
//! window = "60s"
//!
//! [[audit.ingest]]
//! name = "openbao"
//! format = "vault"                       # vault | cloudtrail | gcp | azure
//! file = "/var/log/openbao/audit.log"    # followed as it grows and rotates
//!
//! [[audit.ingest]]
//! name = "cloudtrail"
//! format = "cloudtrail"
//! objects = { provider = "aws", bucket = "org-trail", prefix = "AWSLogs/123456789012/CloudTrail/" }
//! ```

use super::{Config, ConfigError, SecretRef};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Events older than this are pruned, only up to a witnessed checkpoint. Default: none.
    pub retention: Option<String>,
    /// How often retention runs.
    #[serde(default = "default_retention_check")]
    pub retention_check: String,
    /// The server key HMACs of sensitive provider values are made with (at least 32 bytes).
    /// Default: generated once into `data_dir/audit-hmac.key`.
    pub hmac_key: Option<SecretRef>,
    /// How old a provider record about a managed key with no gateway call must be to be a
    /// bypass finding. Default: `limits.request_timeout` + 5s.
    pub bypass_grace: Option<String>,
    #[serde(default)]
    pub checkpoints: CheckpointConfig,
    #[serde(default)]
    pub witness: WitnessConfig,
    #[serde(default)]
    pub flood: FloodConfig,
    #[serde(default)]
    pub ingest: Vec<IngestConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention: None,
            retention_check: default_retention_check(),
            hmac_key: None,
            bypass_grace: None,
            checkpoints: CheckpointConfig::default(),
            witness: WitnessConfig::default(),
            flood: FloodConfig::default(),
            ingest: Vec::new(),
        }
    }
}

fn default_retention_check() -> String {
    "1h".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_every_events")]
    pub every_events: u64,
    #[serde(default = "default_every")]
    pub every: String,
    /// The catalog name of the audit signing key; created at first start if missing.
    #[serde(default = "default_signing_key")]
    pub signing_key: String,
    /// The provider that holds it (an HSM or cloud key in production). Default: the default
    /// provider.
    pub provider: Option<String>,
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// Its owner (a person or service account). The default, `keygate-audit`, names keygate
    /// itself: no principal needs that name, and key posture does not report it as unknown.
    #[serde(default = "default_owner")]
    pub owner: String,
    #[serde(default = "default_period")]
    pub crypto_period: String,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            every_events: default_every_events(),
            every: default_every(),
            signing_key: default_signing_key(),
            provider: None,
            algorithm: default_algorithm(),
            owner: default_owner(),
            crypto_period: default_period(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_every_events() -> u64 {
    10_000
}
fn default_every() -> String {
    "60s".into()
}
fn default_signing_key() -> String {
    "keygate/audit-checkpoints".into()
}
fn default_algorithm() -> String {
    "ecdsa-p256".into()
}
/// The owner keygate gives the audit signing key it creates: keygate itself, not a principal.
/// Key posture recognises it on that key alone (see `crate::posture::Posture::system_keys`).
pub const SYSTEM_OWNER: &str = "keygate-audit";

fn default_owner() -> String {
    SYSTEM_OWNER.into()
}
fn default_period() -> String {
    "365d".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// An append-only directory outside the database (best on another disk or host).
    /// Default: `data_dir/audit-witness`.
    pub dir: Option<PathBuf>,
    /// A bucket reached with a provider's credentials.
    pub objects: Option<ObjectLocation>,
}

/// Objects in a bucket, reached with the credentials of a configured provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLocation {
    /// A `[providers.NAME]` whose cloud has object storage (`aws-kms`: S3).
    pub provider: String,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Denied calls per client address per window recorded one by one.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    #[serde(default = "default_window")]
    pub window: String,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: default_threshold(),
            window: default_window(),
        }
    }
}

fn default_threshold() -> u32 {
    100
}
fn default_window() -> String {
    "60s".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Names the ingester's cursor: renaming it starts over (records already ingested are
    /// still skipped).
    pub name: String,
    /// vault | cloudtrail | gcp | azure
    pub format: String,
    /// A JSON Lines file followed as it grows and rotates.
    pub file: Option<PathBuf>,
    /// Log files in a bucket, read in key order.
    pub objects: Option<ObjectLocation>,
    #[serde(default = "default_poll")]
    pub poll: String,
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_poll() -> String {
    "1s".into()
}
fn default_batch() -> usize {
    500
}

impl AuditConfig {
    pub(super) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let duration = |setting: &str, value: &str| {
            crate::time::parse_duration(value).map_err(|e| Config::invalid(setting, e))
        };
        if let Some(r) = &self.retention
            && duration("audit.retention", r)?.is_zero()
        {
            return Err(Config::invalid("audit.retention", "must be more than 0s"));
        }
        duration("audit.retention_check", &self.retention_check)?;
        if let Some(g) = &self.bypass_grace {
            duration("audit.bypass_grace", g)?;
        }
        let c = &self.checkpoints;
        if duration("audit.checkpoints.every", &c.every)? < std::time::Duration::from_millis(100) {
            return Err(Config::invalid(
                "audit.checkpoints.every",
                "must be at least 100ms",
            ));
        }
        if c.every_events == 0 {
            return Err(Config::invalid(
                "audit.checkpoints.every_events",
                "must be at least 1",
            ));
        }
        duration("audit.checkpoints.crypto_period", &c.crypto_period)?;
        if !crate::audit::anchor::statement::SIGNING_ALGORITHMS.contains(&c.algorithm.as_str()) {
            return Err(Config::invalid(
                "audit.checkpoints.algorithm",
                format!(
                    "'{}' is not one checkpoints are signed with ({})",
                    c.algorithm,
                    crate::audit::anchor::statement::SIGNING_ALGORITHMS.join(", ")
                ),
            ));
        }
        if let Some(p) = &c.provider
            && !config.providers.contains_key(p)
            && p != "local"
        {
            return Err(Config::invalid(
                "audit.checkpoints.provider",
                format!("names '{p}', which is not a [providers.{p}] section"),
            ));
        }
        let window = duration("audit.flood.window", &self.flood.window)?;
        if self.flood.enabled && (self.flood.threshold == 0 || window.is_zero()) {
            return Err(Config::invalid(
                "audit.flood",
                "threshold and window must be more than 0 (or set enabled = false)",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, f) in self.ingest.iter().enumerate() {
            let at = |field: &str| format!("audit.ingest[{i}].{field}");
            if f.name.trim().is_empty() || f.name.len() > 64 {
                return Err(Config::invalid(at("name"), "must be 1 to 64 characters"));
            }
            if !names.insert(f.name.clone()) {
                return Err(Config::invalid(
                    at("name"),
                    format!("'{}' is used twice", f.name),
                ));
            }
            if crate::audit::ingest::sources::normaliser(&f.format).is_none() {
                return Err(Config::invalid(
                    at("format"),
                    format!(
                        "'{}' is not one of {}",
                        f.format,
                        crate::audit::ingest::sources::FORMATS.join(", ")
                    ),
                ));
            }
            match (&f.file, &f.objects) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(Config::invalid(
                        format!("audit.ingest[{i}]"),
                        "set exactly one of `file` or `objects`",
                    ));
                }
            }
            duration(&at("poll"), &f.poll)?;
            if f.batch == 0 || f.batch > 10_000 {
                return Err(Config::invalid(at("batch"), "must be between 1 and 10000"));
            }
        }
        for (setting, location) in self
            .ingest
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.objects
                    .as_ref()
                    .map(|o| (format!("audit.ingest[{i}].objects"), o))
            })
            .chain(
                self.witness
                    .objects
                    .iter()
                    .map(|o| ("audit.witness.objects".to_string(), o)),
            )
        {
            if !config.providers.contains_key(&location.provider) {
                return Err(Config::invalid(
                    format!("{setting}.provider"),
                    format!(
                        "names '{}', which is not a [providers.{}] section",
                        location.provider, location.provider
                    ),
                ));
            }
            if location.bucket.is_empty() {
                return Err(Config::invalid(format!("{setting}.bucket"), "is empty"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_audit_section_is_checked() {
        let ok = parse(
            "[audit]\nretention = \"400d\"\n[audit.flood]\nthreshold = 5\n\
             [[audit.ingest]]\nname = \"bao\"\nformat = \"vault\"\nfile = \"/var/log/bao.log\"\n",
        )
        .unwrap();
        assert_eq!(ok.audit.flood.threshold, 5);
        assert_eq!(ok.audit.checkpoints.every_events, 10_000);
        for (text, says) in [
            (
                "[[audit.ingest]]\nname = \"x\"\nformat = \"syslog\"\nfile = \"f\"\n",
                "format",
            ),
            (
                "[[audit.ingest]]\nname = \"x\"\nformat = \"vault\"\n",
                "exactly one",
            ),
            (
                "[[audit.ingest]]\nname = \"x\"\nformat = \"cloudtrail\"\nobjects = { provider = \"aws\", bucket = \"b\" }\n",
                "not a [providers.aws]",
            ),
            (
                "[audit.checkpoints]\nalgorithm = \"aes-256-gcm\"\n",
                "algorithm",
            ),
            ("[audit]\nretention = \"soon\"\n", "audit.retention"),
            ("[audit.checkpoints]\nevery = \"1ms\"\n", "100ms"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
