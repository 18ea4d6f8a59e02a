//! What is wrong, decided from one scan and the catalog alone (no I/O), so every rule is
//! tested without a backend.

use super::{Rule, ScannedKey, Severity};
use crate::catalog::{KeyRecord, KeyState};
use crate::config::SYSTEM_OWNER;
use crate::time::{format_duration, rfc3339};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// One rule broken by one key, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub severity: Severity,
    pub provider: String,
    pub provider_uri: String,
    /// Empty for a key keygate does not manage.
    pub key_id: String,
    pub key_name: String,
    pub evidence: String,
}

impl Violation {
    /// What the finding is about: the catalog key, or the provider URI of an unmanaged key.
    pub fn subject(&self) -> String {
        if self.key_id.is_empty() {
            format!("{}|{}", self.provider, self.provider_uri)
        } else {
            self.key_id.clone()
        }
    }
}

/// What the rules read besides the scan.
pub struct Inputs<'a> {
    pub keys: &'a [Arc<KeyRecord>],
    /// Providers whose listing succeeded: a key missing from a failed listing is not missing.
    pub listed_providers: &'a HashSet<String>,
    /// Whether an owner is a configured principal or team.
    pub owner_known: &'a dyn Fn(&str) -> bool,
    /// Names of the keys keygate creates for itself ([`super::Posture::system_keys`]).
    pub system_keys: &'a [String],
    /// When the listings began: a catalog key created since may be missing from its
    /// provider's listing only because it did not exist yet.
    pub listed_from_ms: i64,
    pub now_ms: i64,
    pub destruction_grace: Duration,
}

pub fn evaluate(scanned: &[ScannedKey], inputs: &Inputs<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for key in scanned {
        if key.key_id.is_empty() && key.change != "vanished" && key.state != "destroyed" {
            out.push(Violation {
                rule: Rule::UnmanagedKey,
                severity: Severity::High,
                provider: key.provider.clone(),
                provider_uri: key.provider_uri.clone(),
                key_id: String::new(),
                key_name: String::new(),
                evidence: format!(
                    "provider '{}' lists {} ({}, {}); the catalog has no key for it",
                    key.provider,
                    key.provider_uri,
                    if key.algorithm.is_empty() {
                        "algorithm unknown to keygate"
                    } else {
                        &key.algorithm
                    },
                    key.state
                ),
            });
        }
    }
    let listed: HashMap<(&str, &str), &ScannedKey> = scanned
        .iter()
        .filter(|k| k.change != "vanished")
        .map(|k| ((k.provider.as_str(), k.provider_uri.as_str()), k))
        .collect();
    for key in inputs.keys {
        out.extend(key_violations(key, &listed, inputs));
    }
    out
}

fn key_violations(
    key: &KeyRecord,
    listed: &HashMap<(&str, &str), &ScannedKey>,
    inputs: &Inputs<'_>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    if key.state == KeyState::Destroyed {
        return out;
    }
    let mut found = |rule: Rule, severity: Severity, evidence: String| {
        out.push(Violation {
            rule,
            severity,
            provider: key.provider.clone(),
            provider_uri: key.provider_uri.to_string(),
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            evidence,
        })
    };
    let uri = key.provider_uri.as_str();
    if inputs.listed_providers.contains(&key.provider)
        && key.created_at_ms < inputs.listed_from_ms
        && !listed.contains_key(&(key.provider.as_str(), uri))
    {
        found(
            Rule::MissingFromProvider,
            Severity::High,
            format!(
                "key '{}' is {} in the catalog, but provider '{}' does not list {uri}",
                key.name, key.state, key.provider
            ),
        );
    }
    if key.state == KeyState::Enabled && key.rotation_due_at_ms <= inputs.now_ms {
        let newest = key.newest();
        let history = if key.versions.len() == 1 {
            "never rotated".to_string()
        } else {
            format!("{} versions", key.versions.len())
        };
        found(
            Rule::CryptoPeriodExceeded,
            Severity::High,
            format!(
                "version {} was created {}; the crypto-period of {} ended {} ({history})",
                newest.version,
                rfc3339(newest.created_at_ms),
                format_duration(key.crypto_period),
                rfc3339(key.rotation_due_at_ms)
            ),
        );
    }
    let owned_by_keygate = key.owner == SYSTEM_OWNER && inputs.system_keys.contains(&key.name);
    if !owned_by_keygate && !(inputs.owner_known)(&key.owner) {
        found(
            Rule::OwnerUnknown,
            Severity::Medium,
            format!("owner '{}' is no configured principal or team", key.owner),
        );
    }
    let due = match key.state {
        KeyState::PendingDestruction => key.destruction_at_ms.map(|at| ("destruction", at)),
        _ => key.expires_at_ms.map(|at| ("time to live", at)),
    };
    if let Some((what, at)) = due
        && crate::time::after(at, inputs.destruction_grace) <= inputs.now_ms
    {
        found(
            Rule::DestructionOverdue,
            Severity::High,
            format!(
                "the key's {what} ended {} and it is still {} (grace {})",
                rfc3339(at),
                key.state,
                format_duration(inputs.destruction_grace)
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::VersionRecord;
    use keygate_provider::{Algorithm, KeyPurpose, KeyUri};

    const DAY: i64 = 86_400_000;

    fn key(id: &str, uri: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            name: format!("app/{id}"),
            owner: "alice".into(),
            purpose: KeyPurpose::Encrypt,
            environment: "dev".into(),
            algorithm: Algorithm::Aes256Gcm,
            provider: "local".into(),
            provider_uri: KeyUri::new(uri.to_string()),
            state: KeyState::Enabled,
            crypto_period: Duration::from_secs(86_400),
            created_at_ms: 0,
            rotation_due_at_ms: 10 * DAY,
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

    fn listed(uri: &str, key_id: &str) -> ScannedKey {
        ScannedKey {
            provider: "local".into(),
            provider_uri: uri.into(),
            algorithm: "aes-256-gcm".into(),
            state: "enabled".into(),
            key_id: key_id.into(),
            change: String::new(),
        }
    }

    fn rules(scanned: &[ScannedKey], keys: Vec<KeyRecord>, now_ms: i64) -> Vec<(Rule, String)> {
        let keys: Vec<_> = keys.into_iter().map(Arc::new).collect();
        let providers = HashSet::from(["local".to_string()]);
        let known = |owner: &str| owner == "alice";
        let inputs = Inputs {
            keys: &keys,
            listed_providers: &providers,
            owner_known: &known,
            system_keys: &["keygate/audit-checkpoints".to_string()],
            listed_from_ms: 1,
            now_ms,
            destruction_grace: Duration::from_secs(60),
        };
        evaluate(scanned, &inputs)
            .into_iter()
            .map(|v| (v.rule, v.subject()))
            .collect()
    }

    #[test]
    fn a_healthy_key_breaks_no_rule() {
        assert!(
            rules(
                &[listed("local://a", "a")],
                vec![key("a", "local://a")],
                DAY
            )
            .is_empty()
        );
    }

    #[test]
    fn each_rule_fires_on_its_condition() {
        let unmanaged = rules(&[listed("local://x", "")], vec![], DAY);
        assert_eq!(unmanaged, [(Rule::UnmanagedKey, "local|local://x".into())]);

        let missing = rules(&[], vec![key("a", "local://a")], DAY);
        assert_eq!(missing, [(Rule::MissingFromProvider, "a".into())]);
        // Created after the listings began: not yet in them, and not missing.
        let mut new = key("a", "local://a");
        new.created_at_ms = 1;
        assert!(rules(&[], vec![new], DAY).is_empty());

        let overdue = rules(
            &[listed("local://a", "a")],
            vec![key("a", "local://a")],
            11 * DAY,
        );
        assert_eq!(overdue, [(Rule::CryptoPeriodExceeded, "a".into())]);

        let mut orphan = key("a", "local://a");
        orphan.owner = "gone".into();
        let owner = rules(&[listed("local://a", "a")], vec![orphan], DAY);
        assert_eq!(owner, [(Rule::OwnerUnknown, "a".into())]);

        let mut stuck = key("a", "local://a");
        stuck.state = KeyState::PendingDestruction;
        stuck.destruction_at_ms = Some(DAY - 120_000);
        let destruction = rules(&[listed("local://a", "a")], vec![stuck.clone()], DAY);
        assert_eq!(destruction, [(Rule::DestructionOverdue, "a".into())]);
        // Within the grace the scheduler still has time.
        stuck.destruction_at_ms = Some(DAY - 30_000);
        assert!(rules(&[listed("local://a", "a")], vec![stuck], DAY).is_empty());
    }

    #[test]
    fn keygates_own_key_has_a_known_owner_and_only_it() {
        let mut audit = key("s", "local://s");
        audit.name = "keygate/audit-checkpoints".into();
        audit.owner = SYSTEM_OWNER.into();
        let listed_audit = listed("local://s", "s");
        assert!(
            rules(
                std::slice::from_ref(&listed_audit),
                vec![audit.clone()],
                DAY
            )
            .is_empty()
        );

        // Another key claiming keygate as its owner is owned by nobody configured.
        let mut other = key("a", "local://a");
        other.owner = SYSTEM_OWNER.into();
        let found = rules(&[listed("local://a", "a")], vec![other], DAY);
        assert_eq!(found, [(Rule::OwnerUnknown, "a".into())]);

        // The signing key handed to a person who has since left is reported.
        audit.owner = "gone".into();
        let found = rules(&[listed_audit], vec![audit], DAY);
        assert_eq!(found, [(Rule::OwnerUnknown, "s".into())]);
    }

    #[test]
    fn a_failed_listing_hides_no_key() {
        let keys = vec![Arc::new(key("a", "local://a"))];
        let none = HashSet::new();
        let known = |_: &str| true;
        let inputs = Inputs {
            keys: &keys,
            listed_providers: &none,
            owner_known: &known,
            system_keys: &[],
            listed_from_ms: 1,
            now_ms: DAY,
            destruction_grace: Duration::ZERO,
        };
        assert!(evaluate(&[], &inputs).is_empty());
    }
}
