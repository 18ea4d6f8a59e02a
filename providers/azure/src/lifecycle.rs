//! Keys coming and going: create (with tags, purpose-bound key_ops and a rotation policy),
//! describe, rotate, enable and disable, and Key Vault's soft delete, recover and purge.

use crate::algorithms;
use crate::keys::{self, Listed, tag};
use crate::names;
use crate::provider::AzureKeyVaultProvider;
use azure_core::http::pager::PagerOptions;
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, Key, KeyAttributes, KeyClientGetKeyOptions,
    KeyClientListKeyPropertiesVersionsOptions, KeyClientUpdateKeyPropertiesOptions,
    KeyRotationPolicy, KeyRotationPolicyAction, LifetimeAction, LifetimeActionTrigger,
    LifetimeActionType, UpdateKeyPropertiesParameters,
};
use futures::TryStreamExt;
use keygate_provider::{
    KeySpec, KeyUri, KeyVersionInfo, ProviderError, ProviderKey, ProviderKeyState, Replied, Result,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Key Vault's shortest rotation period.
const MIN_ROTATION_DAYS: u64 = 7;

/// How long a delete or recover may take to show (both are long-running in Key Vault).
const SETTLE: Duration = Duration::from_secs(10);

/// keygate's tags for a new key, refused when the labels would take it past Key Vault's
/// limit.
pub(crate) fn checked_tags(
    p: &AzureKeyVaultProvider,
    op: &'static str,
    spec: &KeySpec,
) -> Result<HashMap<String, String>> {
    let tags = keys::tags(spec);
    if tags.len() > keys::MAX_TAGS {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{}: Key Vault allows {} tags per key and keygate's own take {}; give at most {} labels",
                p.at(op, &spec.name).what(),
                keys::MAX_TAGS,
                tags.len() - spec.labels.len(),
                keys::MAX_TAGS - (tags.len() - spec.labels.len())
            ),
        ));
    }
    Ok(tags)
}

pub(crate) async fn create_key(
    p: &AzureKeyVaultProvider,
    spec: &KeySpec,
) -> Result<Replied<ProviderKey>> {
    const OP: &str = "create key";
    let shape = algorithms::shape(spec.algorithm, p.hsm)
        .filter(|_| algorithms::supported(p.managed_hsm).contains(&spec.algorithm))
        .ok_or_else(|| {
            let why = if spec.algorithm == keygate_provider::Algorithm::Aes256Gcm {
                " (AES keys exist only in a Managed HSM)"
            } else {
                ""
            };
            ProviderError::unsupported(&p.name, format!("algorithm {}{why}", spec.algorithm))
        })?;
    let tags = checked_tags(p, OP, spec)?;
    let name = names::vault_name(spec);
    // Creating under an existing name adds a version to that key: refuse instead.
    match p.client.get_key(&name, None).await {
        Ok(_) => {
            return Err(ProviderError::AlreadyExists {
                provider: p.name.clone(),
                what: format!("Key Vault key {name} (for {})", spec.name),
            });
        }
        Err(e) if e.http_status().map(u16::from) == Some(404) => {}
        Err(e) => return Err(crate::errors::from_sdk(p.at(OP, &name), e)),
    }
    let params = CreateKeyParameters {
        kty: Some(shape.kty),
        key_size: shape.key_size,
        curve: shape.curve,
        key_ops: Some(shape.key_ops),
        tags: Some(tags),
        key_attributes: Some(KeyAttributes {
            enabled: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = p
        .call(
            OP,
            &name,
            p.client.create_key(&name, p.body(OP, &name, params)?, None),
        )
        .await?;
    let version = version_of(p, OP, &name, &created.value)?;
    if let Err(e) = set_rotation_policy(p, &name, spec).await {
        // Don't leave a key without the rotation keygate promised: take it back.
        let _ = p.client.delete_key(&name, None).await;
        return Err(e);
    }
    Ok(Replied::with_request_id(
        ProviderKey {
            uri: p.key_uri(&name),
            algorithm: spec.algorithm,
            state: ProviderKeyState::Enabled,
            versions: vec![KeyVersionInfo {
                number: 1,
                provider_version: version,
            }],
        },
        created.request_id,
    ))
}

/// Rotate after the crypto-period (at least Key Vault's 7 days). No expiry: versions keep
/// decrypting until the key is destroyed.
async fn set_rotation_policy(p: &AzureKeyVaultProvider, name: &str, spec: &KeySpec) -> Result<()> {
    let days = keys::crypto_period_days(spec).max(MIN_ROTATION_DAYS);
    let policy = KeyRotationPolicy {
        lifetime_actions: Some(vec![LifetimeAction {
            trigger: Some(LifetimeActionTrigger {
                time_after_create: Some(format!("P{days}D")),
                time_before_expiry: None,
            }),
            action: Some(LifetimeActionType {
                type_prop: Some(KeyRotationPolicyAction::Rotate),
            }),
        }]),
        ..Default::default()
    };
    p.call(
        "set rotation policy",
        name,
        p.client.update_key_rotation_policy(
            name,
            p.body("set rotation policy", name, policy)?,
            None,
        ),
    )
    .await?;
    Ok(())
}

/// The version id of a key bundle's `kid`.
fn version_of(
    p: &AzureKeyVaultProvider,
    op: &'static str,
    name: &str,
    key: &Key,
) -> Result<String> {
    key.key
        .as_ref()
        .and_then(|k| k.kid.as_deref())
        .and_then(names::parse_kid)
        .map(|(_, _, v)| v.to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| p.at(op, name).missing("key id (kid)", None))
}

/// Every version of `name`, oldest first, numbered.
pub(crate) async fn versions(
    p: &AzureKeyVaultProvider,
    op: &'static str,
    name: &str,
) -> Result<Vec<KeyVersionInfo>> {
    let options = KeyClientListKeyPropertiesVersionsOptions {
        maxresults: Some(25),
        method_options: PagerOptions::default(),
    };
    let pager = p
        .client
        .list_key_properties_versions(name, Some(options))
        .map_err(|e| crate::errors::from_sdk(p.at(op, name), e))?;
    let all: Vec<_> = pager
        .try_collect()
        .await
        .map_err(|e| crate::errors::from_sdk(p.at(op, name), e))?;
    Ok(keys::versions(
        all.iter().filter_map(Listed::from_properties).collect(),
    ))
}

pub(crate) async fn describe(
    p: &AzureKeyVaultProvider,
    uri: &KeyUri,
) -> Result<Replied<ProviderKey>> {
    const OP: &str = "describe";
    let name = p.key_name(uri)?;
    match p.call(OP, uri.as_str(), p.client.get_key(name, None)).await {
        Ok(reply) => {
            let key = reply.value;
            let algorithm = algorithm_of(p, OP, uri, &key)?;
            let state = keys::state(key.attributes.as_ref().and_then(|a| a.enabled));
            let versions = versions(p, OP, name).await?;
            Ok(Replied::with_request_id(
                ProviderKey {
                    uri: uri.clone(),
                    algorithm,
                    state,
                    versions,
                },
                reply.request_id,
            ))
        }
        Err(ProviderError::NotFound { .. }) => {
            // Soft-deleted: pending destruction until purged. Its versions cannot be listed
            // while deleted; the latest is named.
            let deleted = p
                .call(OP, uri.as_str(), p.client.get_deleted_key(name, None))
                .await?;
            let jwk = deleted.value.key.as_ref();
            let tagged = deleted
                .value
                .tags
                .as_ref()
                .and_then(|t| t.get(tag::ALGORITHM))
                .and_then(|a| a.parse().ok());
            let algorithm = jwk
                .and_then(|k| algorithms::from_jwk(k, tagged))
                .ok_or_else(|| unsupported_key(p, uri))?;
            let version = jwk
                .and_then(|k| k.kid.as_deref())
                .and_then(names::parse_kid)
                .map(|(_, _, v)| v.to_string())
                .unwrap_or_default();
            let number = deleted
                .value
                .tags
                .as_ref()
                .and_then(|t| t.get(tag::VERSION))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            Ok(Replied::with_request_id(
                ProviderKey {
                    uri: uri.clone(),
                    algorithm,
                    state: ProviderKeyState::PendingDestruction,
                    versions: vec![KeyVersionInfo {
                        number,
                        provider_version: version,
                    }],
                },
                deleted.request_id,
            ))
        }
        Err(e) => Err(e),
    }
}

fn unsupported_key(p: &AzureKeyVaultProvider, uri: &KeyUri) -> ProviderError {
    ProviderError::unsupported(
        &p.name,
        format!("key {uri}: its type or size is not one keygate uses"),
    )
}

pub(crate) fn algorithm_of(
    p: &AzureKeyVaultProvider,
    _op: &'static str,
    uri: &KeyUri,
    key: &Key,
) -> Result<keygate_provider::Algorithm> {
    let tagged = key
        .tags
        .as_ref()
        .and_then(|t| t.get(tag::ALGORITHM))
        .and_then(|a| a.parse().ok());
    key.key
        .as_ref()
        .and_then(|jwk| algorithms::from_jwk(jwk, tagged))
        .ok_or_else(|| unsupported_key(p, uri))
}

pub(crate) async fn rotate(
    p: &AzureKeyVaultProvider,
    uri: &KeyUri,
) -> Result<Replied<KeyVersionInfo>> {
    const OP: &str = "rotate";
    let name = p.key_name(uri)?;
    let before = versions(p, OP, name).await?;
    let rotated = p
        .call(OP, uri.as_str(), p.client.rotate_key(name, None))
        .await?;
    let version = version_of(p, OP, name, &rotated.value)?;
    let number = before.len() as u32 + 1;
    // Number the new version: its creation second may equal the previous version's.
    let mut tags: HashMap<String, String> = rotated.value.tags.clone().unwrap_or_default();
    tags.insert(tag::VERSION.to_string(), number.to_string());
    let params = UpdateKeyPropertiesParameters {
        tags: Some(tags),
        ..Default::default()
    };
    let options = KeyClientUpdateKeyPropertiesOptions {
        key_version: Some(version.clone()),
        ..Default::default()
    };
    p.call(
        "number the new version",
        uri.as_str(),
        p.client
            .update_key_properties(name, p.body(OP, name, params)?, Some(options)),
    )
    .await?;
    Ok(Replied::with_request_id(
        KeyVersionInfo {
            number,
            provider_version: version,
        },
        rotated.request_id,
    ))
}

/// Key Vault's `enabled` is per version: every version is switched, so an old version
/// cannot be used while the key is disabled.
pub(crate) async fn set_enabled(
    p: &AzureKeyVaultProvider,
    uri: &KeyUri,
    enabled: bool,
) -> Result<Replied<()>> {
    let op = if enabled { "enable" } else { "disable" };
    let name = p.key_name(uri)?;
    let mut request_id = None;
    for v in versions(p, op, name).await? {
        request_id = set_version_enabled(p, op, uri, v.provider_version, enabled).await?;
    }
    Ok(Replied::with_request_id((), request_id))
}

/// Retires keygate's versions below `below` the way Key Vault stops a version being used: the
/// version is disabled (`attributes.enabled = false`). Idempotent.
pub(crate) async fn retire_versions(
    p: &AzureKeyVaultProvider,
    uri: &KeyUri,
    below: u32,
) -> Result<Replied<()>> {
    const OP: &str = "retire versions";
    let name = p.key_name(uri)?;
    let mut request_id = None;
    for v in versions(p, OP, name).await? {
        if v.number < below {
            request_id = set_version_enabled(p, OP, uri, v.provider_version, false).await?;
        }
    }
    Ok(Replied::with_request_id((), request_id))
}

async fn set_version_enabled(
    p: &AzureKeyVaultProvider,
    op: &'static str,
    uri: &KeyUri,
    version: String,
    enabled: bool,
) -> Result<Option<String>> {
    let name = p.key_name(uri)?;
    let params = UpdateKeyPropertiesParameters {
        key_attributes: Some(KeyAttributes {
            enabled: Some(enabled),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = KeyClientUpdateKeyPropertiesOptions {
        key_version: Some(version),
        ..Default::default()
    };
    let reply = p
        .call(
            op,
            uri.as_str(),
            p.client
                .update_key_properties(name, p.body(op, name, params)?, Some(options)),
        )
        .await?;
    Ok(reply.request_id)
}

pub(crate) async fn schedule_destroy(
    p: &AzureKeyVaultProvider,
    uri: &KeyUri,
    window: Duration,
) -> Result<Replied<()>> {
    const OP: &str = "schedule destruction";
    let name = p.key_name(uri)?;
    let key = p
        .call(OP, uri.as_str(), p.client.get_key(name, None))
        .await?
        .value;
    // Key Vault purges a deleted key itself after the vault's retention: keygate's window
    // must end first, or a cancellation could find nothing to recover.
    let retention = key
        .attributes
        .as_ref()
        .and_then(|a| a.recoverable_days)
        .unwrap_or(0);
    if retention <= 0 {
        return Err(ProviderError::precondition(
            &p.name,
            format!(
                "{}: the vault has no soft delete, so a deletion could not be cancelled; enable soft delete on the vault",
                p.at(OP, uri.as_str()).what()
            ),
        ));
    }
    if window > Duration::from_secs(retention as u64 * 86_400) {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{}: the vault keeps deleted keys {retention} days, shorter than the pending window of {} days; choose a window of at most {retention} days",
                p.at(OP, uri.as_str()).what(),
                window.as_secs().div_ceil(86_400)
            ),
        ));
    }
    let deleted = p
        .call(OP, uri.as_str(), p.client.delete_key(name, None))
        .await?;
    Ok(Replied::with_request_id((), deleted.request_id))
}

pub(crate) async fn cancel_destroy(p: &AzureKeyVaultProvider, uri: &KeyUri) -> Result<Replied<()>> {
    const OP: &str = "cancel destruction";
    let name = p.key_name(uri)?;
    let recovered = p
        .call(OP, uri.as_str(), p.client.recover_deleted_key(name, None))
        .await?;
    // Recovery completes in the background: wait for the key to answer again.
    let until = Instant::now() + SETTLE;
    loop {
        match p
            .client
            .get_key(name, None::<KeyClientGetKeyOptions<'_>>)
            .await
        {
            Ok(_) => break,
            Err(e) if e.http_status().map(u16::from) == Some(404) && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(crate::errors::from_sdk(p.at(OP, uri.as_str()), e)),
        }
    }
    Ok(Replied::with_request_id((), recovered.request_id))
}

pub(crate) async fn destroy(p: &AzureKeyVaultProvider, uri: &KeyUri) -> Result<Replied<()>> {
    const OP: &str = "destroy";
    let name = p.key_name(uri)?;
    match p
        .call_empty(OP, uri.as_str(), p.client.purge_deleted_key(name, None))
        .await
    {
        Ok(r) => Ok(r),
        Err(ProviderError::NotFound { .. }) => {
            // Not among the deleted keys: already purged, or never deleted.
            match p.client.get_key(name, None).await {
                Err(e) if e.http_status().map(u16::from) == Some(404) => Ok(Replied::local(())),
                Err(e) => Err(crate::errors::from_sdk(p.at(OP, uri.as_str()), e)),
                Ok(_) => Err(ProviderError::precondition(
                    &p.name,
                    format!(
                        "{}: the key is not deleted; schedule its destruction first (Key Vault purges only deleted keys)",
                        p.at(OP, uri.as_str()).what()
                    ),
                )),
            }
        }
        Err(e) => Err(e),
    }
}
