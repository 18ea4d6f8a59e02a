//! Bring your own key: a key exchange key (KEK) to wrap for, and the wrapped material
//! imported through Key Vault's key transfer blob, as a new key or a new version of one.
//!
//! - `prepare_import` names the key the import will create (Key Vault's import of a new
//!   name is its creation) and refuses a name that is taken; it keeps the new key's tags
//!   (keygate's, as `create_key` writes them) in this instance until `import_key` uses them.
//! - `import_parameters` creates an `RSA-HSM` 4096-bit KEK whose only operation is `import`
//!   (the vault must offer HSM keys: Premium or a Managed HSM) and returns its public key;
//!   the import token is the KEK's `kid`.
//! - `import_key` takes material wrapped with CKM_RSA_AES_KEY_WRAP (RSA-OAEP of an ephemeral
//!   AES-256 key, SHA-1 or SHA-256, then AES-KWP of the target: PKCS#8 for RSA and EC keys,
//!   the raw key for AES), sends it as a transfer blob in `key_hsm` (`enc`
//!   `CKM_RSA_AES_KEY_WRAP` for SHA-1 OAEP, `RSA_AES_KEY_WRAP_256` for SHA-256), numbers the
//!   new version, and deletes the KEK, which has served its purpose.

use crate::algorithms;
use crate::keys::{self, tag};
use crate::names;
use crate::provider::AzureKeyVaultProvider;
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, ImportKeyParameters, JsonWebKey, KeyOperation, KeyType,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keygate_provider::{
    Algorithm, ImportParams, ImportSpec, KeySpec, KeyUri, KeyVersionInfo, ProviderError, Replied,
    Result, WrappedKey, WrappingAlgorithm,
};
use std::collections::HashMap;

/// The transfer blob's `enc` for a wrap: the BYOK specification's names.
fn enc(wrapping: WrappingAlgorithm) -> Option<&'static str> {
    match wrapping {
        WrappingAlgorithm::RsaAesKeyWrapSha1 => Some("CKM_RSA_AES_KEY_WRAP"),
        WrappingAlgorithm::RsaAesKeyWrapSha256 => Some("RSA_AES_KEY_WRAP_256"),
        WrappingAlgorithm::RsaOaepSha1 | WrappingAlgorithm::RsaOaepSha256 => None,
    }
}

/// Names the key an import will create; refuses a name that is taken (an import there would
/// add a version to another key) and an algorithm this vault has no HSM keys for.
pub(crate) async fn prepare_import(
    p: &AzureKeyVaultProvider,
    spec: &KeySpec,
) -> Result<Replied<KeyUri>> {
    const OP: &str = "prepare import";
    if !algorithms::supported(p.managed_hsm).contains(&spec.algorithm)
        || algorithms::shape(spec.algorithm, true).is_none()
    {
        let why = if spec.algorithm == Algorithm::Aes256Gcm {
            " (AES keys exist only in a Managed HSM)"
        } else {
            ""
        };
        return Err(ProviderError::unsupported(
            &p.name,
            format!("importing {} keys{why}", spec.algorithm),
        ));
    }
    let tags = crate::lifecycle::checked_tags(p, OP, spec)?;
    let name = names::vault_name(spec);
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
    p.prepared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(name.clone(), tags);
    Ok(Replied::local(p.key_uri(&name)))
}

fn op_name(op: &KeyOperation) -> &'static str {
    match op {
        KeyOperation::Encrypt => "encrypt",
        KeyOperation::Decrypt => "decrypt",
        KeyOperation::WrapKey => "wrapKey",
        KeyOperation::UnwrapKey => "unwrapKey",
        KeyOperation::Sign => "sign",
        KeyOperation::Verify => "verify",
        _ => "import",
    }
}

pub(crate) async fn import_parameters(
    p: &AzureKeyVaultProvider,
    spec: &ImportSpec,
) -> Result<Replied<ImportParams>> {
    const OP: &str = "import parameters";
    if enc(spec.wrapping).is_none() {
        return Err(ProviderError::unsupported(
            &p.name,
            format!(
                "importing with {}: Key Vault takes key transfer blobs ({} or {})",
                spec.wrapping,
                WrappingAlgorithm::RsaAesKeyWrapSha1,
                WrappingAlgorithm::RsaAesKeyWrapSha256
            ),
        ));
    }
    let name = p.key_name(&spec.key)?;
    let mut suffix = [0u8; 4];
    aws_lc_rs::rand::fill(&mut suffix)
        .map_err(|_| ProviderError::internal(&p.name, "the system RNG failed"))?;
    let kek = format!(
        "{}-kek-{}",
        &name[..name.len().min(100)],
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let params = CreateKeyParameters {
        kty: Some(KeyType::RsaHsm),
        key_size: Some(4096),
        key_ops: Some(vec![KeyOperation::Import]),
        ..Default::default()
    };
    let created = p
        .call(
            OP,
            &kek,
            p.client.create_key(&kek, p.body(OP, &kek, params)?, None),
        )
        .await?;
    let jwk = created.value.key.as_ref();
    let at = p.at(OP, spec.key.as_str());
    let kid = jwk
        .and_then(|k| k.kid.clone())
        .ok_or_else(|| at.missing("KEK kid", created.request_id.as_deref()))?;
    let spki = jwk
        .and_then(keys::spki)
        .ok_or_else(|| at.missing("KEK public key", created.request_id.as_deref()))?;
    Ok(Replied::with_request_id(
        ImportParams {
            wrapping: spec.wrapping,
            wrapping_key_spki_der: spki,
            import_token: kid.into_bytes(),
            expires_at: None,
        },
        created.request_id,
    ))
}

pub(crate) async fn import_key(
    p: &AzureKeyVaultProvider,
    uri: &KeyUri,
    wrapped: &WrappedKey,
    params: &ImportParams,
) -> Result<Replied<KeyVersionInfo>> {
    const OP: &str = "import key";
    let name = p.key_name(uri)?;
    let kid = std::str::from_utf8(&params.import_token)
        .ok()
        .filter(|kid| {
            names::parse_kid(kid).is_some_and(|(host, kek, _)| {
                host.eq_ignore_ascii_case(&p.host) && names::valid_name(kek)
            })
        })
        .ok_or_else(|| {
            ProviderError::invalid(
                &p.name,
                format!(
                    "{}: the import token is not a key exchange key of this vault; ask for import parameters again",
                    p.at(OP, uri.as_str()).what()
                ),
            )
        })?;
    let enc = enc(params.wrapping).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("importing with {}", params.wrapping))
    })?;
    let (algorithm, number, mut tags) =
        match p.call(OP, uri.as_str(), p.client.get_key(name, None)).await {
            // A new version of an existing key.
            Ok(current) => {
                let current = current.value;
                let algorithm = crate::lifecycle::algorithm_of(p, OP, uri, &current)?;
                let number = crate::lifecycle::versions(p, OP, name).await?.len() as u32 + 1;
                (algorithm, number, current.tags.clone().unwrap_or_default())
            }
            // A new key, named by `prepare_import`, which kept its tags.
            Err(ProviderError::NotFound { .. }) => {
                let tags: HashMap<String, String> = p
                    .prepared
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .get(name)
                    .cloned()
                    .ok_or_else(|| {
                        ProviderError::precondition(
                            &p.name,
                            format!(
                                "{}: there is no such key and no import was prepared for it",
                                p.at(OP, uri.as_str()).what()
                            ),
                        )
                    })?;
                let algorithm = tags
                    .get(tag::ALGORITHM)
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| {
                        ProviderError::internal(&p.name, "a prepared import without its algorithm")
                    })?;
                (algorithm, 1, tags)
            }
            Err(e) => return Err(e),
        };
    let shape = algorithms::shape(algorithm, true).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("importing {algorithm} keys"))
    })?;
    let blob = serde_json::json!({
        "schema_version": "1.0.0",
        "header": {"kid": kid, "alg": "dir", "enc": enc},
        "ciphertext": URL_SAFE_NO_PAD.encode(wrapped.expose()),
        "generator": "keygate",
    });
    tags.insert(tag::VERSION.to_string(), number.to_string());
    let request = ImportKeyParameters {
        hsm: Some(true),
        key: Some(JsonWebKey {
            kty: Some(shape.kty),
            crv: shape.curve,
            key_ops: Some(
                shape
                    .key_ops
                    .iter()
                    .map(|o| op_name(o).to_string())
                    .collect(),
            ),
            t: Some(blob.to_string().into_bytes()),
            ..Default::default()
        }),
        tags: Some(tags),
        ..Default::default()
    };
    let imported = p
        .call(
            OP,
            uri.as_str(),
            p.client.import_key(name, p.body(OP, name, request)?, None),
        )
        .await?;
    let version = imported
        .value
        .key
        .as_ref()
        .and_then(|k| k.kid.as_deref())
        .and_then(names::parse_kid)
        .map(|(_, _, v)| v.to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            p.at(OP, uri.as_str())
                .missing("kid", imported.request_id.as_deref())
        })?;
    p.prepared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(name);
    // The KEK has done its one job; a failure to remove it leaves a key that can only import.
    if let Some((_, kek, _)) = names::parse_kid(kid)
        && let Err(e) = p.client.delete_key(kek, None).await
    {
        tracing::warn!(provider = %p.name, kek, error = ?e, "could not delete the key exchange key");
    }
    Ok(Replied::with_request_id(
        KeyVersionInfo {
            number,
            provider_version: version,
        },
        imported.request_id,
    ))
}
