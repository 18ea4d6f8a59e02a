//! Encryption: encrypt, decrypt and data keys.
//!
//! A blob is one format byte and Key Vault's output, so decrypt knows which operation and
//! fields to send back:
//!
//! | byte | made by | rest |
//! | --- | --- | --- |
//! | `0x01` | encrypt, RSA-OAEP-256 | the RSA ciphertext |
//! | `0x02` | wrapKey, RSA-OAEP-256 (data keys) | the RSA ciphertext |
//! | `0x11` | encrypt, A256GCM | IV (12) ‖ tag (16) ‖ ciphertext; the AAD is bound |
//! | `0x12` | wrapKey, A256KW (data keys without AAD) | the wrapped key |
//!
//! Anything else, or a blob too short for its format, fails authentication like a tampered
//! one. Every call names the version (`VersionRef::provider_version`).

use crate::algorithms;
use crate::provider::AzureKeyVaultProvider;
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyClientEncryptOptions, KeyClientWrapKeyOptions, KeyOperationParameters,
    KeyOperationResult,
};
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, DataKey, DataKeySpec, KeyPurpose, ProviderError, Replied, Result, SecretBytes,
    VersionRef,
};

const RSA_ENCRYPTED: u8 = 0x01;
const RSA_WRAPPED: u8 = 0x02;
const GCM_ENCRYPTED: u8 = 0x11;
const KW_WRAPPED: u8 = 0x12;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Key Vault's limit on one symmetric encrypt.
pub const MAX_AES_PLAINTEXT: usize = 64 * 1024;

fn params(alg: EncryptionAlgorithm, value: &[u8]) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(alg),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

fn result(
    p: &AzureKeyVaultProvider,
    op: &'static str,
    v: &VersionRef,
    r: &Replied<KeyOperationResult>,
) -> Result<Vec<u8>> {
    r.value.result.clone().ok_or_else(|| {
        p.at(op, v.uri.as_str())
            .missing("value", r.request_id.as_deref())
    })
}

fn too_big(
    p: &AzureKeyVaultProvider,
    op: &'static str,
    v: &VersionRef,
    len: usize,
    limit: usize,
) -> ProviderError {
    ProviderError::invalid(
        &p.name,
        format!(
            "{}: input is {len} bytes, over the limit of {limit} bytes for {}",
            p.at(op, v.uri.as_str()).what(),
            v.algorithm
        ),
    )
}

pub(crate) async fn encrypt(
    p: &AzureKeyVaultProvider,
    v: &VersionRef,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "encrypt";
    kit::require_purpose(&p.name, v, KeyPurpose::Encrypt, Op::Encrypt)?;
    let alg = algorithms::encryption(v.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("encrypt with {}", v.algorithm))
    })?;
    let name = p.key_name(&v.uri)?;
    let limit = v.algorithm.max_plaintext().unwrap_or(MAX_AES_PLAINTEXT);
    if plaintext.len() > limit {
        return Err(too_big(p, OP, v, plaintext.len(), limit));
    }
    let gcm = v.algorithm == Algorithm::Aes256Gcm;
    if !gcm && !aad.is_empty() {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{}: RSA-OAEP takes no associated data",
                p.at(OP, v.uri.as_str()).what()
            ),
        ));
    }
    let mut request = params(alg, plaintext.expose());
    if !aad.is_empty() {
        request.additional_authenticated_data = Some(aad.to_vec());
    }
    let options = KeyClientEncryptOptions {
        key_version: Some(v.provider_version.clone()),
        ..Default::default()
    };
    let reply = p
        .call(
            OP,
            v.uri.as_str(),
            p.client
                .encrypt(name, p.body(OP, name, request)?, Some(options)),
        )
        .await?;
    let ciphertext = result(p, OP, v, &reply)?;
    let blob = if gcm {
        let at = p.at(OP, v.uri.as_str());
        let iv = reply
            .value
            .iv
            .as_deref()
            .filter(|iv| iv.len() == IV_LEN)
            .ok_or_else(|| at.missing("12-byte iv", reply.request_id.as_deref()))?;
        let tag = reply
            .value
            .authentication_tag
            .as_deref()
            .filter(|t| t.len() == TAG_LEN)
            .ok_or_else(|| at.missing("16-byte tag", reply.request_id.as_deref()))?;
        let mut blob = Vec::with_capacity(1 + IV_LEN + TAG_LEN + ciphertext.len());
        blob.push(GCM_ENCRYPTED);
        blob.extend_from_slice(iv);
        blob.extend_from_slice(tag);
        blob.extend_from_slice(&ciphertext);
        blob
    } else {
        let mut blob = Vec::with_capacity(1 + ciphertext.len());
        blob.push(RSA_ENCRYPTED);
        blob.extend_from_slice(&ciphertext);
        blob
    };
    Ok(Replied::with_request_id(blob, reply.request_id))
}

pub(crate) async fn decrypt(
    p: &AzureKeyVaultProvider,
    v: &VersionRef,
    blob: &[u8],
    aad: &[u8],
) -> Result<Replied<SecretBytes>> {
    const OP: &str = "decrypt";
    const UNWRAP: &str = "unwrap key";
    kit::require_purpose(&p.name, v, KeyPurpose::Encrypt, Op::Decrypt)?;
    let name = p.key_name(&v.uri)?;
    let gcm_key = v.algorithm == Algorithm::Aes256Gcm;
    let forged = || ProviderError::auth_failed(&p.name);
    let (&format, body) = blob.split_first().ok_or_else(forged)?;
    let version = v.provider_version.as_str();
    let reply = match (format, gcm_key) {
        (RSA_ENCRYPTED, false) | (GCM_ENCRYPTED, true) => {
            let request = if gcm_key {
                if body.len() < IV_LEN + TAG_LEN {
                    return Err(forged());
                }
                let (iv, rest) = body.split_at(IV_LEN);
                let (tag, ciphertext) = rest.split_at(TAG_LEN);
                let mut r = params(EncryptionAlgorithm::A256Gcm, ciphertext);
                r.iv = Some(iv.to_vec());
                r.authentication_tag = Some(tag.to_vec());
                if !aad.is_empty() {
                    r.additional_authenticated_data = Some(aad.to_vec());
                }
                r
            } else {
                if !aad.is_empty() || body.is_empty() {
                    return Err(forged());
                }
                params(EncryptionAlgorithm::RsaOaep256, body)
            };
            p.call(
                OP,
                v.uri.as_str(),
                p.client
                    .decrypt(name, version, p.body(OP, name, request)?, None),
            )
            .await?
        }
        (RSA_WRAPPED, false) | (KW_WRAPPED, true) => {
            // A wrap binds no associated data: a caller who sends some did not make this blob.
            if !aad.is_empty() || body.is_empty() {
                return Err(forged());
            }
            let alg = algorithms::wrapping(v.algorithm).ok_or_else(forged)?;
            p.call(
                UNWRAP,
                v.uri.as_str(),
                p.client.unwrap_key(
                    name,
                    version,
                    p.body(UNWRAP, name, params(alg, body))?,
                    None,
                ),
            )
            .await?
        }
        _ => return Err(forged()),
    };
    let plaintext = reply.value.result.ok_or_else(|| {
        p.at(OP, v.uri.as_str())
            .missing("value", reply.request_id.as_deref())
    })?;
    Ok(Replied::with_request_id(
        SecretBytes::new(plaintext),
        reply.request_id,
    ))
}

/// Random bytes from the system RNG, sealed with wrapKey where the wrap binds what is asked
/// (RSA-OAEP-256, which takes no AAD; A256KW when there is no AAD and the length suits it),
/// else with encrypt (A256GCM binds the AAD).
pub(crate) async fn generate_data_key(
    p: &AzureKeyVaultProvider,
    v: &VersionRef,
    spec: DataKeySpec,
    aad: &[u8],
) -> Result<Replied<DataKey>> {
    const OP: &str = "wrap key";
    kit::require_purpose(&p.name, v, KeyPurpose::Encrypt, Op::GenerateDataKey)?;
    let plaintext = kit::random_data_key(&p.name, spec.len)?;
    let gcm_key = v.algorithm == Algorithm::Aes256Gcm;
    let kw_fits = aad.is_empty() && spec.len >= 16 && spec.len.is_multiple_of(8);
    if gcm_key && !kw_fits {
        return kit::seal_data_key(p, v, plaintext, aad).await;
    }
    if !gcm_key {
        if !aad.is_empty() {
            return Err(ProviderError::invalid(
                &p.name,
                format!(
                    "{}: RSA-OAEP takes no associated data",
                    p.at(OP, v.uri.as_str()).what()
                ),
            ));
        }
        if let Some(limit) = v.algorithm.max_plaintext()
            && spec.len > limit
        {
            return Err(too_big(p, OP, v, spec.len, limit));
        }
    }
    let alg = algorithms::wrapping(v.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("data keys under {}", v.algorithm))
    })?;
    let name = p.key_name(&v.uri)?;
    let options = KeyClientWrapKeyOptions {
        key_version: Some(v.provider_version.clone()),
        ..Default::default()
    };
    let reply = p
        .call(
            OP,
            v.uri.as_str(),
            p.client.wrap_key(
                name,
                p.body(OP, name, params(alg, plaintext.expose()))?,
                Some(options),
            ),
        )
        .await?;
    let wrapped = result(p, OP, v, &reply)?;
    let mut sealed = Vec::with_capacity(1 + wrapped.len());
    sealed.push(if gcm_key { KW_WRAPPED } else { RSA_WRAPPED });
    sealed.extend_from_slice(&wrapped);
    Ok(Replied::with_request_id(
        DataKey { plaintext, sealed },
        reply.request_id,
    ))
}
