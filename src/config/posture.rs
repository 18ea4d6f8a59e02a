//! `[posture]`: inventory scans and their findings.

use crate::posture::PostureSettings;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostureConfig {
    /// How often every provider instance is listed and findings brought up to date, where
    /// background jobs run (`keygate serve`); `0s` turns the background scan off (scans on
    /// demand still run).
    #[serde(default = "default_scan_interval")]
    pub scan_interval: String,
    /// How long past its date a destruction may stay pending before it is a finding.
    #[serde(default = "default_destruction_grace")]
    pub destruction_grace: String,
}

impl Default for PostureConfig {
    fn default() -> Self {
        Self {
            scan_interval: default_scan_interval(),
            destruction_grace: default_destruction_grace(),
        }
    }
}

fn default_scan_interval() -> String {
    "1h".into()
}

fn default_destruction_grace() -> String {
    "1h".into()
}

impl super::Config {
    pub fn posture_settings(&self) -> Result<PostureSettings, super::ConfigError> {
        Ok(PostureSettings {
            scan_interval: self.duration("posture.scan_interval", &self.posture.scan_interval)?,
            destruction_grace: self
                .duration("posture.destruction_grace", &self.posture.destruction_grace)?,
        })
    }
}
