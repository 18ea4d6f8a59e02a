//! Keys on the token: create, describe, rotate (a new version's objects), enable and disable
//! (usage attributes), destroy.

use crate::errors::OpError;
use crate::mechanisms;
use crate::ops;
use crate::provider::{Pkcs11Provider, key_id_of};
use keygate_provider::{
    Algorithm, KeySpec, KeyUri, KeyVersionInfo, ProviderError, ProviderKey, ProviderKeyState,
    Replied, Result,
};

fn describe_blocking(
    s: &cryptoki::session::Session,
    key_id: &str,
) -> std::result::Result<Option<(Algorithm, ProviderKeyState, Vec<KeyVersionInfo>)>, OpError> {
    let versions = ops::versions(s, key_id)?;
    let Some(last) = versions.last() else {
        return Ok(None);
    };
    let state = ops::enabled(s, last)?;
    let infos = versions
        .iter()
        .map(|f| KeyVersionInfo {
            number: f.id.version,
            provider_version: f.id.to_hex(),
        })
        .collect();
    Ok(Some((last.id.algorithm, state, infos)))
}

pub(crate) async fn create_key(p: &Pkcs11Provider, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
    create(p, spec, false).await
}

/// A key extractable only under wrap, for import into other backends (BYOK).
pub(crate) async fn create_wrappable_key(
    p: &Pkcs11Provider,
    spec: &KeySpec,
) -> Result<Replied<ProviderKey>> {
    create(p, spec, true).await
}

async fn create(
    p: &Pkcs11Provider,
    spec: &KeySpec,
    wrappable: bool,
) -> Result<Replied<ProviderKey>> {
    let algorithm = spec.algorithm;
    if !mechanisms::SUPPORTED.contains(&algorithm) {
        return Err(ProviderError::unsupported(
            &p.name,
            format!("algorithm {algorithm}"),
        ));
    }
    if spec.key_id.is_empty() {
        return Err(ProviderError::invalid(&p.name, "empty key id"));
    }
    let uri = p.key_uri(&spec.key_id);
    let _guard = p.versioning.lock().await;
    let key_id = spec.key_id.clone();
    let id = p
        .run(
            || format!("create {algorithm} key {uri}"),
            move |s| {
                if !ops::key_objects(s, &key_id)?.is_empty() {
                    return Err(OpError::AlreadyExists(format!("key '{key_id}'")));
                }
                ops::generate_with(s, &key_id, algorithm, 1, wrappable)
            },
        )
        .await?;
    tracing::info!(provider = %p.name, key = %uri, %algorithm, wrappable, "PKCS#11 key created");
    Ok(Replied::local(ProviderKey {
        uri,
        algorithm,
        state: ProviderKeyState::Enabled,
        versions: vec![KeyVersionInfo {
            number: 1,
            provider_version: id.to_hex(),
        }],
    }))
}

pub(crate) async fn describe(p: &Pkcs11Provider, key: &KeyUri) -> Result<Replied<ProviderKey>> {
    let key_id = key_id_of(p, key)?;
    let found = p
        .run(
            || format!("describe {key}"),
            move |s| describe_blocking(s, &key_id),
        )
        .await?;
    let (algorithm, state, versions) =
        found.ok_or_else(|| ProviderError::not_found(&p.name, format!("key {key}")))?;
    Ok(Replied::local(ProviderKey {
        uri: key.clone(),
        algorithm,
        state,
        versions,
    }))
}

pub(crate) async fn rotate(p: &Pkcs11Provider, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
    let key_id = key_id_of(p, key)?;
    let _guard = p.versioning.lock().await;
    let info = p
        .run(
            || format!("rotate {key}"),
            move |s| {
                let versions = ops::versions(s, &key_id)?;
                let last = versions
                    .last()
                    .ok_or_else(|| OpError::NotFound(format!("key '{key_id}'")))?;
                let state = ops::enabled(s, last)?;
                let next = last.id.version + 1;
                let id = ops::generate(s, &key_id, last.id.algorithm, next)?;
                if state == ProviderKeyState::Disabled {
                    // A new version of a disabled key starts disabled too.
                    let objects: Vec<_> = ops::key_objects(s, &key_id)?
                        .into_iter()
                        .filter(|o| o.id.version == next)
                        .collect();
                    ops::set_usage(s, &objects, false)?;
                }
                Ok(KeyVersionInfo {
                    number: next,
                    provider_version: id.to_hex(),
                })
            },
        )
        .await?;
    tracing::info!(provider = %p.name, key = %key, version = info.number, "PKCS#11 key rotated");
    Ok(Replied::local(info))
}

pub(crate) async fn set_enabled(
    p: &Pkcs11Provider,
    key: &KeyUri,
    enabled: bool,
) -> Result<Replied<()>> {
    let key_id = key_id_of(p, key)?;
    let verb = if enabled { "enable" } else { "disable" };
    p.run(
        || format!("{verb} {key} (C_SetAttributeValue on its usage flags)"),
        move |s| {
            let objects = ops::key_objects(s, &key_id)?;
            if objects.is_empty() {
                return Err(OpError::NotFound(format!("key '{key_id}'")));
            }
            ops::set_usage(s, &objects, enabled)
        },
    )
    .await
    .map(Replied::local)
}

/// Turns off the usage flags (CKA_DECRYPT, CKA_VERIFY, …) of every object of the versions
/// below `below`, so the token itself refuses them. Idempotent. Enabling the key turns flags
/// on for every object; the gateway sets the floor again right after (see
/// `set_enabled_in_backend`), so a retired version stays retired.
pub(crate) async fn retire_versions(
    p: &Pkcs11Provider,
    key: &KeyUri,
    below: u32,
) -> Result<Replied<()>> {
    let key_id = key_id_of(p, key)?;
    p.run(
        || format!("retire the versions of {key} below {below} (C_SetAttributeValue on their usage flags)"),
        move |s| {
            let objects = ops::key_objects(s, &key_id)?;
            if objects.is_empty() {
                return Err(OpError::NotFound(format!("key '{key_id}'")));
            }
            let retired: Vec<_> = objects
                .into_iter()
                .filter(|o| o.id.version < below)
                .collect();
            ops::set_usage(s, &retired, false)
        },
    )
    .await
    .map(Replied::local)
}

pub(crate) async fn destroy(p: &Pkcs11Provider, key: &KeyUri) -> Result<Replied<()>> {
    let key_id = key_id_of(p, key)?;
    let count = p
        .run(
            || format!("destroy {key}"),
            move |s| {
                let objects = ops::key_objects(s, &key_id)?;
                if objects.is_empty() {
                    return Err(OpError::NotFound(format!("key '{key_id}'")));
                }
                for object in &objects {
                    s.destroy_object(object.handle)?;
                }
                if !ops::key_objects(s, &key_id)?.is_empty() {
                    return Err(OpError::Internal(
                        "objects remain on the token after C_DestroyObject".into(),
                    ));
                }
                Ok(objects.len())
            },
        )
        .await;
    // Whatever happened, some objects may be gone: no session may keep their handles.
    p.pool.forget_handles();
    let count = count?;
    tracing::info!(provider = %p.name, key = %key, objects = count, "PKCS#11 key destroyed");
    Ok(Replied::local(()))
}
