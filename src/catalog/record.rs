use keygate_provider::{Algorithm, KeyPurpose, KeyUri, VersionRef};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A key's lifecycle state as keygate tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDestruction,
    Destroyed,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
            KeyState::PendingDestruction => "pending-destruction",
            KeyState::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enabled" => Ok(KeyState::Enabled),
            "disabled" => Ok(KeyState::Disabled),
            "pending-destruction" => Ok(KeyState::PendingDestruction),
            "destroyed" => Ok(KeyState::Destroyed),
            other => Err(format!("unknown key state '{other}'")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub version: u32,
    pub provider_version: String,
    pub created_at_ms: i64,
}

/// Everything keygate knows about one key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub purpose: KeyPurpose,
    pub environment: String,
    pub algorithm: Algorithm,
    /// Provider instance name from configuration.
    pub provider: String,
    pub provider_uri: KeyUri,
    pub state: KeyState,
    pub crypto_period: Duration,
    pub created_at_ms: i64,
    /// When the primary version's crypto-period ends.
    pub rotation_due_at_ms: i64,
    pub destruction_at_ms: Option<i64>,
    pub labels: BTreeMap<String, String>,
    /// Oldest first; never empty.
    pub versions: Vec<VersionRecord>,
    /// Versions below this no longer decrypt or verify (`keygate key retire`); 0: none.
    pub retired_below: u32,
    /// A short-lived key: when the scheduler destroys it.
    pub expires_at_ms: Option<i64>,
    /// While a newer version is staged (a signing key's staged rotation): the version that
    /// still signs. `None`: the newest version is the primary.
    pub primary_version: Option<u32>,
}

impl KeyRecord {
    /// The version new signatures, encryptions and MACs use.
    pub fn primary(&self) -> &VersionRecord {
        self.primary_version
            .and_then(|n| self.version(n))
            .unwrap_or_else(|| self.newest())
    }

    /// The newest version, primary or staged.
    pub fn newest(&self) -> &VersionRecord {
        // A record always has at least one version (created with one; versions only grow).
        &self.versions[self.versions.len() - 1]
    }

    /// The version published ahead of its use, if a staged rotation is under way.
    pub fn staged(&self) -> Option<&VersionRecord> {
        let newest = self.newest();
        (newest.version != self.primary().version).then_some(newest)
    }

    pub fn version(&self, number: u32) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.version == number)
    }

    /// The reference a provider call needs for `version`.
    pub fn version_ref(&self, version: &VersionRecord) -> VersionRef {
        VersionRef {
            uri: self.provider_uri.clone(),
            algorithm: self.algorithm,
            version: version.version,
            provider_version: version.provider_version.clone(),
        }
    }
}
