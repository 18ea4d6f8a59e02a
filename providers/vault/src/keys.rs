//! Transit keys as keygate keys: reading them back, and their lifecycle (create, rotate,
//! enable/disable through soft-delete, destroy).

use crate::algorithms;
use crate::client::Reply;
use crate::errors::VaultFailure;
use crate::provider::VaultProvider;
use keygate_provider::{
    Algorithm, KeySpec, KeyUri, KeyVersionInfo, OwnRotation, ProviderError, ProviderKey,
    ProviderKeyState, Replied, Result,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Transit's shortest auto-rotation period; shorter crypto-periods are left to the gateway's
/// own rotation scheduler.
const MIN_AUTO_ROTATE: Duration = Duration::from_secs(3600);

impl VaultProvider {
    pub(crate) async fn read_key(&self, uri: &KeyUri) -> Result<(Reply, ProviderKey)> {
        let name = self.key_name(uri)?;
        let op = self.op("describe", uri);
        let reply = self
            .send(&op, Method::GET, &format!("keys/{name}"), None)
            .await?;
        let key = parse_key(uri, name, &reply.data).map_err(|f| f.into_provider_error(&op))?;
        Ok((reply, key))
    }
}

fn parse_key(uri: &KeyUri, name: &str, data: &Value) -> Result<ProviderKey, VaultFailure> {
    let vault_type = data
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| VaultFailure::Malformed("key has no type".into()))?;
    let algorithm = algorithm_of(name, vault_type).ok_or_else(|| {
        VaultFailure::Malformed(format!(
            "Transit key type '{vault_type}' has no keygate algorithm"
        ))
    })?;
    Ok(ProviderKey {
        uri: uri.clone(),
        algorithm,
        state: state_of(data),
        versions: versions_of(data),
    })
}

/// keygate's algorithm for a Transit key: from the name keygate gave it, else from its type.
/// A foreign RSA key is reported as the PSS variant of its size: Transit keys carry no scheme.
fn algorithm_of(name: &str, vault_type: &str) -> Option<Algorithm> {
    if let Some((algorithm, _)) = algorithms::parse_vault_key_name(name)
        && algorithms::vault_type(algorithm) == vault_type
    {
        return Some(algorithm);
    }
    algorithms::from_vault_type(vault_type).or(match vault_type {
        "rsa-2048" => Some(Algorithm::Rsa2048Pss),
        "rsa-3072" => Some(Algorithm::Rsa3072Pss),
        "rsa-4096" => Some(Algorithm::Rsa4096Pss),
        _ => None,
    })
}

pub(crate) fn state_of(data: &Value) -> ProviderKeyState {
    if data.get("soft_deleted").and_then(Value::as_bool) == Some(true) {
        ProviderKeyState::Disabled
    } else {
        ProviderKeyState::Enabled
    }
}

/// Versions from the `keys` map; HMAC keys have no such map, so fall back to the range up to
/// `latest_version` (versions below `min_available_version` were trimmed).
fn versions_of(data: &Value) -> Vec<KeyVersionInfo> {
    let mut numbers: Vec<u32> = match data.get("keys").and_then(Value::as_object) {
        Some(keys) => keys.keys().filter_map(|k| k.parse().ok()).collect(),
        None => {
            let latest = data
                .get("latest_version")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32;
            let first = data
                .get("min_available_version")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .max(1) as u32;
            (first..=latest).collect()
        }
    };
    numbers.sort_unstable();
    numbers
        .into_iter()
        .map(|n| KeyVersionInfo {
            number: n,
            provider_version: n.to_string(),
        })
        .collect()
}

pub(crate) async fn create_key(p: &VaultProvider, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
    let vault_name = algorithms::vault_key_name(&spec.name, spec.algorithm, &spec.key_id)
        .map_err(|e| ProviderError::invalid(&p.name, e))?;
    let uri = p.uri_for(&vault_name);
    let op = p.op("create key", &uri);
    // Transit's create is an upsert that silently keeps an existing key: check first.
    match p.read_key(&uri).await {
        Ok(_) => {
            return Err(ProviderError::AlreadyExists {
                provider: p.name.clone(),
                what: format!("key {uri}"),
            });
        }
        Err(ProviderError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut body = json!({
        "type": algorithms::vault_type(spec.algorithm),
        "exportable": false,
        "allow_plaintext_backup": false,
    });
    if spec.algorithm == Algorithm::HmacSha256 {
        body["key_size"] = json!(32);
    }
    if let Some(period) = auto_rotate_period(spec.crypto_period) {
        body["auto_rotate_period"] = json!(format!("{}s", period.as_secs()));
    }
    let created = p
        .send_keygen(&op, &format!("keys/{vault_name}"), Some(&body))
        .await?;
    let (_, key) = p.read_key(&uri).await?;
    Ok(Replied::with_request_id(key, created.request_id))
}

pub(crate) async fn rotate(p: &VaultProvider, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
    let name = p.key_name(key)?;
    let op = p.op("rotate", key);
    let reply = p
        .send_keygen(&op, &format!("keys/{name}/rotate"), None)
        .await?;
    // Recent Vault and OpenBao return the key; older servers answer 204, so read it back.
    let latest = match reply.data.get("latest_version").and_then(Value::as_u64) {
        Some(v) => v as u32,
        None => {
            let (_, described) = p.read_key(key).await?;
            described.versions.last().map(|v| v.number).unwrap_or(0)
        }
    };
    Ok(Replied::with_request_id(
        KeyVersionInfo {
            number: latest,
            provider_version: latest.to_string(),
        },
        reply.request_id,
    ))
}

/// Transit's `auto_rotate_period` for a crypto-period: a tenth shorter (at most an hour), so
/// Transit's new version is there when keygate's due date comes and keygate adopts it (rule 3
/// would stop the key protecting anything new in between); none below Transit's floor, and
/// keygate rotates those keys itself.
pub(crate) fn auto_rotate_period(crypto_period: Duration) -> Option<Duration> {
    let lead = (crypto_period / 10).min(Duration::from_secs(3600));
    Some(crypto_period - lead).filter(|p| *p >= MIN_AUTO_ROTATE)
}

/// Transit rotates a key by itself once its newest version is `auto_rotate_period` old.
pub(crate) async fn own_rotation(
    p: &VaultProvider,
    key: &KeyUri,
    newest: &KeyVersionInfo,
) -> Result<Replied<OwnRotation>> {
    let (reply, described) = p.read_key(key).await?;
    let own = own_rotation_of(&reply.data, &described.versions, newest);
    Ok(Replied::with_request_id(own, reply.request_id))
}

fn own_rotation_of(
    data: &Value,
    versions: &[KeyVersionInfo],
    newest: &KeyVersionInfo,
) -> OwnRotation {
    let period = data
        .get("auto_rotate_period")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if period <= 0 {
        return OwnRotation::Never;
    }
    // keygate's and Transit's numbers differ for adopted keys: only Transit's counts.
    let Ok(known) = newest.provider_version.parse::<u32>() else {
        return OwnRotation::Never;
    };
    match versions.last() {
        Some(latest) if latest.number > known => OwnRotation::Made(latest.clone()),
        _ => {
            // `keys` maps each version of a symmetric key to its creation (Unix seconds).
            let created = data
                .get("keys")
                .and_then(|k| k.get(known.to_string()))
                .and_then(Value::as_i64);
            OwnRotation::Expected {
                at_ms: created.map(|secs| secs.saturating_add(period).saturating_mul(1000)),
            }
        }
    }
}

pub(crate) async fn set_enabled(
    p: &VaultProvider,
    key: &KeyUri,
    enabled: bool,
) -> Result<Replied<()>> {
    let name = p.key_name(key)?;
    let (op, method, tail) = if enabled {
        (
            p.op("enable", key),
            Method::POST,
            format!("keys/{name}/soft-delete-restore"),
        )
    } else {
        (
            p.op("disable", key),
            Method::DELETE,
            format!("keys/{name}/soft-delete"),
        )
    };
    // Both endpoints answer for unknown keys too, so confirm the key exists first.
    p.read_key(key).await?;
    let reply = match p.send(&op, method, &tail, None).await {
        Err(ProviderError::NotFound { .. } | ProviderError::Unsupported { .. }) => {
            return Err(ProviderError::unsupported(
                &p.name,
                "enabling or disabling keys (this server lacks Transit soft-delete, an OpenBao feature)",
            ));
        }
        other => other?,
    };
    Ok(Replied::with_request_id((), reply.request_id))
}

/// Transit's own floor: versions below `min_decryption_version` no longer decrypt, verify
/// or HMAC-verify on the server.
pub(crate) async fn retire_versions(
    p: &VaultProvider,
    key: &KeyUri,
    below: u32,
) -> Result<Replied<()>> {
    let name = p.key_name(key)?;
    let op = p.op("retire versions", key);
    let body = json!({ "min_decryption_version": below });
    let reply = p.post(&op, &format!("keys/{name}/config"), &body).await?;
    Ok(Replied::with_request_id((), reply.request_id))
}

pub(crate) async fn destroy(p: &VaultProvider, key: &KeyUri) -> Result<Replied<()>> {
    let name = p.key_name(key)?;
    let op = p.op("destroy", key);
    let body = json!({ "deletion_allowed": true });
    p.post(&op, &format!("keys/{name}/config"), &body).await?;
    let reply = p
        .send(&op, Method::DELETE, &format!("keys/{name}"), None)
        .await?;
    Ok(Replied::with_request_id((), reply.request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rotation_follows_auto_rotate_period() {
        let v = |n: u32| KeyVersionInfo {
            number: n,
            provider_version: n.to_string(),
        };
        let data = json!({"auto_rotate_period": 3600, "keys": {"1": 1000, "2": 5000}});
        assert_eq!(
            own_rotation_of(&data, &[v(1), v(2)], &v(1)),
            OwnRotation::Made(v(2))
        );
        assert_eq!(
            own_rotation_of(&data, &[v(1), v(2)], &v(2)),
            OwnRotation::Expected {
                at_ms: Some(8_600_000)
            }
        );
        assert_eq!(
            auto_rotate_period(Duration::from_secs(7200)),
            Some(Duration::from_secs(6480))
        );
        assert_eq!(auto_rotate_period(Duration::from_secs(3600)), None);
        let off = json!({"auto_rotate_period": 0, "keys": {"1": 1000}});
        assert_eq!(own_rotation_of(&off, &[v(1)], &v(1)), OwnRotation::Never);
    }

    #[test]
    fn hmac_versions_come_from_latest_version() {
        let data = json!({"type": "hmac", "latest_version": 3, "min_available_version": 0});
        let numbers: Vec<u32> = versions_of(&data).iter().map(|v| v.number).collect();
        assert_eq!(numbers, vec![1, 2, 3]);
    }

    #[test]
    fn versions_sort_numerically() {
        let data = json!({"keys": {"10": 1, "9": 1, "1": 1}});
        let numbers: Vec<u32> = versions_of(&data).iter().map(|v| v.number).collect();
        assert_eq!(numbers, vec![1, 9, 10]);
    }
}
