//! The rules read from the audit log: `bypass-use` and `two-environments`. The scan reads the
//! events of the audit window (`[posture] audit_window`) and hands them here; deciding is
//! pure, so each rule is tested without a log.
//!
//! Both look back over the window only: a finding of theirs stays open while its condition
//! recurs within the window, and closes at the first scan after a whole window without it.

use super::network::{self, Network};
use super::{Rule, Severity, Violation};
use crate::catalog::KeyRecord;
use crate::time::{format_duration, rfc3339};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Records listed in one finding's evidence at most (the newest); the count covers all.
const LISTED: usize = 5;

/// A provider's own record of a managed key that no gateway call made (a bypass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BypassRecord {
    pub key_id: String,
    pub time_ms: i64,
    /// The provider audit source (`vault`, `aws-kms`, …).
    pub source: String,
    pub action: String,
    pub actor: String,
    pub provider_request_id: String,
    pub client_address: String,
}

/// One successful gateway call on a key, by whom and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub key_id: String,
    pub time_ms: i64,
    pub actor: String,
    pub client_address: String,
}

/// What the audit rules read besides the records.
pub struct UsageInputs<'a> {
    pub keys: &'a [Arc<KeyRecord>],
    pub window: Duration,
    /// The one environment a principal is configured for (`environments = ["prod"]`);
    /// `None` for a principal of several, of all (`*`) or unknown.
    pub principal_environment: &'a dyn Fn(&str) -> Option<String>,
    pub networks: &'a [Network],
    /// The window's reads stopped at their bound: the evidence says so.
    pub truncated: bool,
}

fn violation(key: &KeyRecord, rule: Rule, severity: Severity, evidence: String) -> Violation {
    Violation {
        rule,
        severity,
        provider: key.provider.clone(),
        provider_uri: key.provider_uri.to_string(),
        key_id: key.id.clone(),
        key_name: key.name.clone(),
        evidence,
    }
}

fn by_id(keys: &[Arc<KeyRecord>]) -> HashMap<&str, &KeyRecord> {
    keys.iter().map(|k| (k.id.as_str(), k.as_ref())).collect()
}

/// `bypass-use`: a managed key with provider records no gateway call made in the window.
/// The evidence names the newest records (source, action, actor, address, time, provider
/// request id), enough to find each in the provider's own log.
pub fn bypass_violations(records: &[BypassRecord], inputs: &UsageInputs<'_>) -> Vec<Violation> {
    let keys = by_id(inputs.keys);
    let mut per_key: BTreeMap<&str, Vec<&BypassRecord>> = BTreeMap::new();
    for r in records {
        per_key.entry(r.key_id.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (key_id, mut found) in per_key {
        let Some(key) = keys.get(key_id) else {
            continue;
        };
        found.sort_by_key(|r| std::cmp::Reverse(r.time_ms));
        let listed: Vec<String> = found
            .iter()
            .take(LISTED)
            .map(|r| {
                format!(
                    "{} {} by '{}' from {} at {} (provider request id {})",
                    r.source,
                    r.action,
                    r.actor,
                    if r.client_address.is_empty() {
                        "an unknown address"
                    } else {
                        &r.client_address
                    },
                    rfc3339(r.time_ms),
                    if r.provider_request_id.is_empty() {
                        "none"
                    } else {
                        &r.provider_request_id
                    }
                )
            })
            .collect();
        out.push(violation(
            key,
            Rule::BypassUse,
            Severity::High,
            format!(
                "{} provider record(s) in the last {} used key '{}' with no gateway call{}: {}",
                found.len(),
                format_duration(inputs.window),
                key.name,
                if inputs.truncated {
                    " (at least: the window was read up to its bound)"
                } else {
                    ""
                },
                listed.join("; ")
            ),
        ));
    }
    out
}

/// Who and where a key was used from, in one environment.
#[derive(Default)]
struct Seen<'a> {
    principals: BTreeSet<&'a str>,
    addresses: BTreeSet<&'a str>,
}

/// `two-environments`: a key used from two or more environments in the window. A call is
/// from the environment its caller is configured for, when that is exactly one, and from
/// the environment whose network holds its client address, when one does; a call can be
/// from two (a dev service calling from the staging network). A caller of several
/// environments or of all, from no listed network, places a call nowhere.
pub fn environment_violations(uses: &[KeyUse], inputs: &UsageInputs<'_>) -> Vec<Violation> {
    let keys = by_id(inputs.keys);
    let mut principal_env: HashMap<&str, Option<String>> = HashMap::new();
    let mut per_key: BTreeMap<&str, BTreeMap<String, Seen<'_>>> = BTreeMap::new();
    for u in uses {
        let envs = per_key.entry(u.key_id.as_str()).or_default();
        let by_principal = principal_env
            .entry(u.actor.as_str())
            .or_insert_with(|| (inputs.principal_environment)(&u.actor));
        if let Some(env) = by_principal {
            envs.entry(env.clone())
                .or_default()
                .principals
                .insert(u.actor.as_str());
        }
        if let Some(env) = network::environment_of(inputs.networks, &u.client_address) {
            let seen = envs.entry(env.to_string()).or_default();
            // The port is a connection's, not a place: one entry per address.
            seen.addresses.insert(address_only(&u.client_address));
        }
    }
    let mut out = Vec::new();
    for (key_id, envs) in per_key {
        if envs.len() < 2 {
            continue;
        }
        let Some(key) = keys.get(key_id) else {
            continue;
        };
        let described: Vec<String> = envs
            .iter()
            .map(|(env, seen)| {
                let mut how = Vec::new();
                if !seen.principals.is_empty() {
                    how.push(format!(
                        "callers of that environment: {}",
                        seen.principals
                            .iter()
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if !seen.addresses.is_empty() {
                    how.push(format!(
                        "from its network: {}",
                        seen.addresses
                            .iter()
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                format!("{env} ({})", how.join("; "))
            })
            .collect();
        out.push(violation(
            key,
            Rule::TwoEnvironments,
            Severity::Medium,
            format!(
                "key '{}' of environment '{}' was used from {} environments in the last {}: {}",
                key.name,
                key.environment,
                envs.len(),
                format_duration(inputs.window),
                described.join("; ")
            ),
        ));
    }
    out
}

/// `127.0.0.1:5000` → `127.0.0.1`; what is no socket address stays as it is.
fn address_only(client_address: &str) -> &str {
    match client_address.parse::<std::net::SocketAddr>() {
        Ok(_) => client_address
            .rsplit_once(':')
            .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(client_address),
        Err(_) => client_address,
    }
}

#[cfg(test)]
mod tests;
