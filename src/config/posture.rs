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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn settings(text: &str) -> Result<crate::posture::PostureSettings, String> {
        let config = Config::from_toml(text).map_err(|e| e.to_string())?;
        config.posture_settings().map_err(|e| e.to_string())
    }

    #[test]
    fn networks_and_the_audit_window_are_read_and_checked() {
        let s = settings("").unwrap();
        assert_eq!(s.audit_window, std::time::Duration::from_secs(86_400));
        assert!(s.networks.is_empty());
        let s = settings(
            "[posture]\naudit_window = \"2h\"\n[posture.networks]\nprod = [\"10.1.0.0/16\", \"fd00::/8\"]\n",
        )
        .unwrap();
        assert_eq!(s.audit_window, std::time::Duration::from_secs(7200));
        assert_eq!(s.networks.len(), 2);
        assert!(s.networks.iter().all(|n| n.environment == "prod"));
        for bad in [
            "[posture.networks]\nprod = [\"10.1.0.0/40\"]\n",
            "[posture.networks]\nprod = [\"not-an-address\"]\n",
            "[posture.networks]\nProd = [\"10.1.0.0/16\"]\n",
        ] {
            let err = settings(bad).unwrap_err();
            assert!(err.contains("posture.networks"), "{bad}: {err}");
        }
    }
}
