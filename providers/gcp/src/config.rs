//! The typed, documented configuration of one Google Cloud KMS provider instance.
//!
//! Credentials are always named, never inlined: Application Default Credentials, or a
//! service-account key file (or environment variable) by reference.

use crate::GcpKmsProvider;
use keygate_provider::SecretRef;
use keygate_provider::kit::{BuildContext, BuildError, Built, ProviderFactory, typed_settings};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// One Cloud KMS instance: a project, a location and the key ring keygate creates its keys
/// in. Several may coexist (two projects, two locations).
///
/// ```toml
/// project = "payments-prod"
/// location = "europe-west1"
/// key_ring = "keygate"                      # created on first use if missing
/// credentials = { source = "service-account", key = { file = "/run/secrets/kms-sa.json" } }
/// # credentials = { source = "adc" }        # the default: Application Default Credentials
/// # endpoint = "http://127.0.0.1:8085"      # an emulator or a private endpoint
/// protection_level = "hsm"                  # or "software" (the default)
/// destroy_scheduled_duration = "30d"        # Cloud KMS's window for keys keygate creates
/// timeout = "10s"                           # one request to Cloud KMS
/// ```
///
/// Retries and rate limits are the guard's (`[providers.NAME.guard]`); the SDK does not retry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpKmsConfig {
    /// The Google Cloud project id; keys of other projects are refused.
    pub project: String,
    /// The Cloud KMS location (`global`, `europe-west1`, …).
    pub location: String,
    /// The key ring keygate creates keys in; created on first use when missing. Keys of other
    /// key rings in the same project and location are listed and usable too.
    pub key_ring: String,
    /// Overrides the service endpoint (an emulator, a private or regional endpoint).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub credentials: CredentialsConfig,
    /// Where keys keygate creates keep their material.
    #[serde(default)]
    pub protection_level: ProtectionLevelConfig,
    /// How long Cloud KMS keeps a version scheduled for destruction before destroying it,
    /// fixed when a key is created (Cloud KMS accepts 1 to 120 days). A keygate pending
    /// window must not outlast it.
    #[serde(
        default = "default_destroy_scheduled_duration",
        deserialize_with = "duration"
    )]
    pub destroy_scheduled_duration: Duration,
    /// Time allowed for one request: past it the attempt is `Unavailable` (and the guard may
    /// retry it within the call's deadline).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

/// Where the credentials come from. Never the values themselves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CredentialsConfig {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user
    /// credentials, or the metadata server of the VM or pod.
    #[default]
    Adc,
    /// A service-account key (the JSON file Google issues), by reference.
    ServiceAccount { key: SecretRef },
    /// No credentials at all: only for an emulator, so only with `endpoint` set.
    Anonymous,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtectionLevelConfig {
    #[default]
    Software,
    Hsm,
}

impl GcpKmsConfig {
    /// A config for `project`/`location`/`key_ring` with the defaults for everything else.
    pub fn new(
        project: impl Into<String>,
        location: impl Into<String>,
        key_ring: impl Into<String>,
    ) -> Self {
        Self {
            project: project.into(),
            location: location.into(),
            key_ring: key_ring.into(),
            endpoint: None,
            credentials: CredentialsConfig::default(),
            protection_level: ProtectionLevelConfig::default(),
            destroy_scheduled_duration: default_destroy_scheduled_duration(),
            timeout: default_timeout(),
        }
    }

    /// Checks what the SDK would only find out at the first request.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (setting, value) in [
            ("project", &self.project),
            ("location", &self.location),
            ("key_ring", &self.key_ring),
        ] {
            let ok = !value.is_empty()
                && value.len() <= 63
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!(
                    "{setting} '{value}' is not a Cloud KMS id (1 to 63 letters, digits, '-' or '_')"
                ));
            }
        }
        if matches!(self.credentials, CredentialsConfig::Anonymous) && self.endpoint.is_none() {
            return Err(
                "credentials { source = \"anonymous\" } is only for an emulator: set `endpoint` too"
                    .into(),
            );
        }
        let day = Duration::from_secs(86_400);
        if self.destroy_scheduled_duration < day || self.destroy_scheduled_duration > 120 * day {
            return Err(format!(
                "destroy_scheduled_duration {} is outside Cloud KMS's 1 to 120 days",
                humantime::format_duration(self.destroy_scheduled_duration)
            ));
        }
        if self.timeout.is_zero() {
            return Err("timeout must be more than zero".into());
        }
        Ok(())
    }
}

fn default_destroy_scheduled_duration() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("'{text}' is not a duration like 30d: {e}")))
}

/// Builds Cloud KMS providers.
pub struct GcpKmsFactory;

/// The factory the gateway registers for `kind = "gcp-kms"`.
pub fn factory() -> &'static dyn ProviderFactory {
    &GcpKmsFactory
}

#[async_trait::async_trait]
impl ProviderFactory for GcpKmsFactory {
    fn kind(&self) -> &'static str {
        crate::KIND
    }

    async fn build(
        &self,
        name: &str,
        settings: serde_json::Value,
        _context: &BuildContext,
    ) -> Result<Built, BuildError> {
        let config: GcpKmsConfig = typed_settings(settings)?;
        config.check().map_err(BuildError::Invalid)?;
        Ok(Built::provider(GcpKmsProvider::new(name, config).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<GcpKmsConfig, String> {
        let c: GcpKmsConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        c.check()?;
        Ok(c)
    }

    #[test]
    fn defaults_and_references_parse() {
        let c = parse(
            r#"{"project":"p","location":"global","key_ring":"kg",
                "credentials":{"source":"service-account","key":{"file":"/run/sa.json"}}}"#,
        )
        .expect("valid");
        assert!(matches!(
            c.credentials,
            CredentialsConfig::ServiceAccount { .. }
        ));
        assert_eq!(
            c.destroy_scheduled_duration,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(c.protection_level, ProtectionLevelConfig::Software);
    }

    #[test]
    fn inline_keys_unknown_settings_and_bad_ids_are_refused() {
        let inline = parse(
            r#"{"project":"p","location":"global","key_ring":"kg",
                "credentials":{"source":"service-account","key":"{\"private_key\":\"x\"}"}}"#,
        )
        .unwrap_err();
        assert!(inline.contains("inline secrets are refused"), "{inline}");
        assert!(!inline.contains("private_key"), "{inline}");
        let typo = parse(r#"{"project":"p","location":"global","keyring":"kg"}"#).unwrap_err();
        assert!(typo.contains("keyring"), "{typo}");
        let bad = parse(r#"{"project":"p/x","location":"global","key_ring":"kg"}"#).unwrap_err();
        assert!(bad.contains("project 'p/x'"), "{bad}");
    }

    #[test]
    fn anonymous_needs_an_endpoint_and_windows_are_bounded() {
        let anon = parse(
            r#"{"project":"p","location":"global","key_ring":"kg","credentials":{"source":"anonymous"}}"#,
        )
        .unwrap_err();
        assert!(anon.contains("endpoint"), "{anon}");
        let long = parse(
            r#"{"project":"p","location":"global","key_ring":"kg","destroy_scheduled_duration":"200d"}"#,
        )
        .unwrap_err();
        assert!(long.contains("120 days"), "{long}");
    }
}
