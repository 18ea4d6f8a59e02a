//! Key posture: what every provider instance holds, joined with the catalog (inventory
//! scans, kept as snapshots), and the rules those keys break (findings).
//!
//! A scan runs as the `ScanPosture` operation (on demand, or from [`job`] where background
//! jobs run); [`rules`] decides what is wrong from the scan and the catalog alone, and
//! [`store`] keeps scans and findings, opening, refreshing and closing findings in the same
//! transaction that records the scan.

pub mod families;
pub mod job;
pub mod network;
pub mod report;
pub mod rules;
pub mod settings;
pub mod store;
pub mod usage;

pub use rules::Violation;
pub use store::{PostureError, PostureStore};

use std::time::Duration;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }
}

/// The rules a finding can break. The names are stable: clients filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A provider holds a key the catalog does not know.
    UnmanagedKey,
    /// A catalog key its provider no longer lists.
    MissingFromProvider,
    /// A key's newest version has outlived its crypto-period (rotation is overdue, or the key
    /// was never rotated).
    CryptoPeriodExceeded,
    /// A key's owner is no configured principal or team.
    OwnerUnknown,
    /// A destruction (or a short-lived key's end) is past its date and has not happened.
    DestructionOverdue,
    /// A provider's own audit records show a managed key used around keygate (no gateway
    /// call made the request) within the audit window.
    BypassUse,
    /// A BYOK family has a copy that is missing (its import failed) or going away (scheduled
    /// for destruction, destroyed, gone from the catalog) while the original is in use.
    ByokFamilyIncomplete,
    /// A key was used from two or more environments within the audit window.
    TwoEnvironments,
    /// A key's settings in its backend contradict keygate's (deletion protection or
    /// automatic rotation off, material exportable).
    ProviderSettingsContradict,
}

impl Rule {
    pub const ALL: &'static [Rule] = &[
        Rule::UnmanagedKey,
        Rule::MissingFromProvider,
        Rule::CryptoPeriodExceeded,
        Rule::OwnerUnknown,
        Rule::DestructionOverdue,
        Rule::BypassUse,
        Rule::ByokFamilyIncomplete,
        Rule::TwoEnvironments,
        Rule::ProviderSettingsContradict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::UnmanagedKey => "unmanaged-key",
            Rule::MissingFromProvider => "missing-from-provider",
            Rule::CryptoPeriodExceeded => "crypto-period-exceeded",
            Rule::OwnerUnknown => "owner-unknown",
            Rule::DestructionOverdue => "destruction-overdue",
            Rule::BypassUse => "bypass-use",
            Rule::ByokFamilyIncomplete => "byok-family-incomplete",
            Rule::TwoEnvironments => "two-environments",
            Rule::ProviderSettingsContradict => "provider-settings-contradict",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Rule::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

/// One finding, open or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: i64,
    pub rule: String,
    pub severity: String,
    pub provider: String,
    pub provider_uri: String,
    /// Empty for a key keygate does not manage.
    pub key_id: String,
    pub key_name: String,
    pub evidence: String,
    pub opened_at_ms: i64,
    pub last_seen_ms: i64,
    pub closed_at_ms: Option<i64>,
    pub closed_because: String,
    pub acknowledgement: Option<Acknowledgement>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acknowledgement {
    pub by: String,
    pub at_ms: i64,
    pub reason: String,
}

/// One key a provider listed in a scan, joined with the catalog (a `posture_inventory` row).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScannedKey {
    pub provider: String,
    pub provider_uri: String,
    /// keygate's algorithm name; empty when the backend's algorithm has none.
    pub algorithm: String,
    /// enabled | disabled | pending-destruction | destroyed
    pub state: String,
    /// The catalog's key id; empty when keygate does not manage the key.
    pub key_id: String,
    /// `appeared` (not in the provider's previous listing), `vanished` (in the previous
    /// listing, not in this one), or empty.
    pub change: String,
}

/// One provider instance's listing in a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderListing {
    pub provider: String,
    pub keys: u64,
    pub elapsed_ms: u64,
    /// Why the listing failed; empty when it succeeded.
    pub error: String,
}

/// What a scan saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub scan_id: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub keys: u64,
    pub unmanaged: u64,
    pub appeared: u64,
    pub vanished: u64,
    pub opened: u64,
    pub closed: u64,
    pub listings: Vec<ProviderListing>,
}

/// `[posture]` settings.
#[derive(Debug, Clone)]
pub struct PostureSettings {
    /// How often the background scan runs; zero: never (on-demand scans still run).
    pub scan_interval: Duration,
    /// How long past its date a destruction may still be pending before it is a finding
    /// (the scheduler needs a scan interval to get to it).
    pub destruction_grace: Duration,
    /// How far back a scan reads the audit log for the rules that come from it
    /// (`bypass-use`, `two-environments`): a finding of theirs closes once its condition
    /// has not recurred for this long.
    pub audit_window: Duration,
    /// Networks by environment (`[posture.networks]`): a call from an address in one was
    /// made from that environment.
    pub networks: Vec<network::Network>,
}

impl Default for PostureSettings {
    fn default() -> Self {
        Self {
            scan_interval: Duration::from_secs(3600),
            destruction_grace: Duration::from_secs(3600),
            audit_window: Duration::from_secs(24 * 3600),
            networks: Vec::new(),
        }
    }
}

/// The posture store and its settings, as the gateway holds them.
pub struct Posture {
    pub store: PostureStore,
    pub settings: PostureSettings,
    /// Catalog names of the keys keygate creates for itself (the audit signing key). Such a
    /// key still owned by [`crate::config::SYSTEM_OWNER`] is owned by keygate, which
    /// is no configured principal by design, so `owner-unknown` does not report it. Matching
    /// name and owner both keeps the exemption narrow: any other key owned by that name, or
    /// the signing key given to a person who has since left, is still reported.
    pub system_keys: Vec<String>,
}

/// A catalog key for the rules' tests.
#[cfg(test)]
pub(crate) fn test_key(id: &str) -> crate::catalog::KeyRecord {
    use crate::catalog::{KeyRecord, KeyState, VersionRecord};
    use keygate_provider::{Algorithm, KeyPurpose, KeyUri};
    KeyRecord {
        id: id.into(),
        name: format!("app/{id}"),
        owner: "alice".into(),
        purpose: KeyPurpose::Encrypt,
        environment: "dev".into(),
        algorithm: Algorithm::Aes256Gcm,
        provider: "local".into(),
        provider_uri: KeyUri::new(format!("local://{id}")),
        state: KeyState::Enabled,
        crypto_period: Duration::from_secs(86_400),
        created_at_ms: 0,
        rotation_due_at_ms: 86_400_000,
        destruction_at_ms: None,
        labels: Default::default(),
        versions: vec![VersionRecord {
            version: 1,
            provider_version: "1".into(),
            created_at_ms: 0,
        }],
        retired_below: 0,
        expires_at_ms: None,
        primary_version: None,
    }
}
