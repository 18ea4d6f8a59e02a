//! `[posture]`: inventory scans and their findings.

use crate::posture::PostureSettings;
use crate::posture::network::Network;
use serde::Deserialize;
use std::collections::BTreeMap;

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
    /// How far back a scan reads the audit log for `bypass-use` and `two-environments`; a
    /// finding of theirs closes once its condition has not recurred for this long.
    #[serde(default = "default_audit_window")]
    pub audit_window: String,
    /// Networks by environment, for `two-environments`: `prod = ["10.1.0.0/16"]`. A call
    /// from an address in one was made from that environment (the most specific block wins).
    #[serde(default)]
    pub networks: BTreeMap<String, Vec<String>>,
}

impl Default for PostureConfig {
    fn default() -> Self {
        Self {
            scan_interval: default_scan_interval(),
            destruction_grace: default_destruction_grace(),
            audit_window: default_audit_window(),
            networks: BTreeMap::new(),
        }
    }
}

fn default_audit_window() -> String {
    "24h".into()
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
            audit_window: self.duration("posture.audit_window", &self.posture.audit_window)?,
            networks: self.posture_networks()?,
        })
    }

    fn posture_networks(&self) -> Result<Vec<Network>, super::ConfigError> {
        let mut out = Vec::new();
        for (environment, blocks) in &self.posture.networks {
            crate::gateway::validate::environment(environment)
                .map_err(|e| Self::invalid("posture.networks", e.to_string()))?;
            for block in blocks {
                out.push(Network::parse(environment, block).map_err(|e| {
                    Self::invalid(format!("posture.networks.{environment}"), e.to_string())
                })?);
            }
        }
        Ok(out)
    }
}
