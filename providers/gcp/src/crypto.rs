//! Encryption: encrypt and decrypt, CRC32C-checked both ways. Symmetric keys encrypt with
//! the exact CryptoKeyVersion asked for and decrypt by key (the ciphertext names its
//! version). RSA-OAEP keys (RSA_DECRYPT_OAEP_3072_SHA256) have no encrypt call in Cloud KMS:
//! keygate encrypts with the version's public key, as Google's documentation does, and
//! Cloud KMS decrypts. Data keys are the kit's: random bytes sealed with `encrypt`.

use crate::algorithms::MAX_INPUT;
use crate::integrity::{check_crc, check_name, check_verified, crc};
use crate::names;
use crate::provider::GcpKmsProvider;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, KeyPurpose, ProviderError, Replied, Result, SecretBytes, VersionRef,
};

fn too_big(
    p: &GcpKmsProvider,
    op: &str,
    v: &VersionRef,
    what: &str,
    len: usize,
    limit: usize,
) -> ProviderError {
    ProviderError::invalid(
        &p.name,
        format!(
            "{op} on {}: {what} is {len} bytes, over the limit of {limit} bytes",
            v.uri
        ),
    )
}

/// Cloud KMS answers a ciphertext that does not open with INVALID_ARGUMENT; to keygate that
/// is a failed authentication (checksum mismatches stay integrity failures).
fn not_opened(p: &GcpKmsProvider, e: ProviderError) -> ProviderError {
    match e {
        ProviderError::InvalidInput { .. } => ProviderError::auth_failed(&p.name),
        other => other,
    }
}

pub(crate) async fn encrypt(
    p: &GcpKmsProvider,
    v: &VersionRef,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "encrypt";
    kit::require_purpose(&p.name, v, KeyPurpose::Encrypt, Op::Encrypt)?;
    match v.algorithm {
        Algorithm::Aes256Gcm => encrypt_symmetric(p, v, plaintext, aad).await,
        Algorithm::Rsa3072Oaep => encrypt_oaep(p, v, plaintext, aad).await,
        other => Err(ProviderError::unsupported(
            &p.name,
            format!("{OP} with {other}"),
        )),
    }
}

async fn encrypt_symmetric(
    p: &GcpKmsProvider,
    v: &VersionRef,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "encrypt";
    if plaintext.len() > MAX_INPUT {
        return Err(too_big(
            p,
            OP,
            v,
            "the plaintext",
            plaintext.len(),
            MAX_INPUT,
        ));
    }
    if aad.len() > MAX_INPUT {
        return Err(too_big(
            p,
            OP,
            v,
            "the associated data",
            aad.len(),
            MAX_INPUT,
        ));
    }
    let name = p.key_name(&v.uri)?;
    let version = names::version_name(&p.name, name, &v.provider_version)?;
    let request_id = p.request_id();
    let mut request = p
        .client
        .encrypt()
        .set_name(&version)
        .set_plaintext(plaintext.expose().to_vec())
        .set_plaintext_crc32c(crc(plaintext.expose()));
    if !aad.is_empty() {
        request = request
            .set_additional_authenticated_data(aad.to_vec())
            .set_additional_authenticated_data_crc32c(crc(aad));
    }
    let sent = p.call(OP, v.uri.as_str(), &request_id, request).await?;
    let out = &sent.out;
    check_verified(&sent.at, "plaintext_crc32c", out.verified_plaintext_crc32c)?;
    if !aad.is_empty() {
        check_verified(
            &sent.at,
            "additional_authenticated_data_crc32c",
            out.verified_additional_authenticated_data_crc32c,
        )?;
    }
    check_name(&sent.at, &version, &out.name)?;
    check_crc(
        &sent.at,
        "ciphertext_crc32c",
        &out.ciphertext,
        out.ciphertext_crc32c,
    )?;
    Ok(sent.reply(out.ciphertext.to_vec()))
}

async fn encrypt_oaep(
    p: &GcpKmsProvider,
    v: &VersionRef,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "encrypt";
    if !aad.is_empty() {
        return Err(ProviderError::invalid(
            &p.name,
            format!("{OP} on {}: RSA-OAEP takes no associated data", v.uri),
        ));
    }
    let limit = v.algorithm.max_plaintext().unwrap_or(0);
    if plaintext.len() > limit {
        return Err(too_big(p, OP, v, "the plaintext", plaintext.len(), limit));
    }
    // Asked each time, not cached: Cloud KMS refuses the public key of a disabled or
    // destroyed version, so such a key encrypts nothing, as with symmetric keys.
    let (spki, request_id) = p.public_key_der(OP, v, false).await?;
    let key = PublicEncryptingKey::from_der(&spki)
        .ok()
        .and_then(|k| OaepPublicEncryptingKey::new(k).ok())
        .ok_or_else(|| {
            ProviderError::internal(
                &p.name,
                format!(
                    "{OP} on {}: Cloud KMS's public key is not an RSA key",
                    v.uri
                ),
            )
        })?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext.expose(), &mut out, None)
        .map_err(|_| {
            ProviderError::internal(&p.name, format!("{OP} on {}: RSA-OAEP failed", v.uri))
        })?
        .len();
    out.truncate(len);
    Ok(Replied::with_request_id(out, request_id))
}

pub(crate) async fn decrypt(
    p: &GcpKmsProvider,
    v: &VersionRef,
    blob: &[u8],
    aad: &[u8],
) -> Result<Replied<SecretBytes>> {
    kit::require_purpose(&p.name, v, KeyPurpose::Encrypt, Op::Decrypt)?;
    match v.algorithm {
        Algorithm::Aes256Gcm => decrypt_symmetric(p, v, blob, aad).await,
        Algorithm::Rsa3072Oaep => {
            if !aad.is_empty() {
                return Err(ProviderError::invalid(
                    &p.name,
                    format!("decrypt on {}: RSA-OAEP takes no associated data", v.uri),
                ));
            }
            decrypt_oaep(p, v, blob).await
        }
        other => Err(ProviderError::unsupported(
            &p.name,
            format!("decrypt with {other}"),
        )),
    }
}

async fn decrypt_symmetric(
    p: &GcpKmsProvider,
    v: &VersionRef,
    blob: &[u8],
    aad: &[u8],
) -> Result<Replied<SecretBytes>> {
    const OP: &str = "decrypt";
    let name = p.key_name(&v.uri)?;
    let request_id = p.request_id();
    let mut request = p
        .client
        .decrypt()
        .set_name(name)
        .set_ciphertext(blob.to_vec())
        .set_ciphertext_crc32c(crc(blob));
    if !aad.is_empty() {
        request = request
            .set_additional_authenticated_data(aad.to_vec())
            .set_additional_authenticated_data_crc32c(crc(aad));
    }
    let sent = p
        .call(OP, v.uri.as_str(), &request_id, request)
        .await
        .map_err(|e| not_opened(p, e))?;
    let plaintext = SecretBytes::new(sent.out.plaintext.to_vec());
    check_crc(
        &sent.at,
        "plaintext_crc32c",
        plaintext.expose(),
        sent.out.plaintext_crc32c,
    )?;
    Ok(sent.reply(plaintext))
}

async fn decrypt_oaep(
    p: &GcpKmsProvider,
    v: &VersionRef,
    blob: &[u8],
) -> Result<Replied<SecretBytes>> {
    const OP: &str = "decrypt";
    let name = p.key_name(&v.uri)?;
    let version = names::version_name(&p.name, name, &v.provider_version)?;
    let request_id = p.request_id();
    let request = p
        .client
        .asymmetric_decrypt()
        .set_name(&version)
        .set_ciphertext(blob.to_vec())
        .set_ciphertext_crc32c(crc(blob));
    let sent = p
        .call(OP, v.uri.as_str(), &request_id, request)
        .await
        .map_err(|e| not_opened(p, e))?;
    check_verified(
        &sent.at,
        "ciphertext_crc32c",
        sent.out.verified_ciphertext_crc32c,
    )?;
    let plaintext = SecretBytes::new(sent.out.plaintext.to_vec());
    check_crc(
        &sent.at,
        "plaintext_crc32c",
        plaintext.expose(),
        sent.out.plaintext_crc32c,
    )?;
    Ok(sent.reply(plaintext))
}
