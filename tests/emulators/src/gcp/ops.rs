//! The cryptographic methods: encrypt/decrypt, asymmetricSign/Decrypt,
//! getPublicKey and macSign/macVerify, with Cloud KMS's CRC32C integrity
//! fields on the way in (checked) and out (computed, or corrupted by a hook).

use aws_lc_rs::digest::Digest;
use serde_json::{Value, json};

use super::crypto;
use super::errors::{ApiError, ApiResult};
use super::json::{self as pj, b64, crc};
use super::model::CryptoKey;
use super::routes::MAX_DATA;
use crate::Hooks;

/// The CRC32C string of `data`, unless a hook asks for a corrupted one.
fn out_crc(data: &[u8], hooks: &Hooks) -> String {
    let c = crc32c::crc32c(data);
    if hooks.take_corruption() {
        (c ^ 1).to_string()
    } else {
        c.to_string()
    }
}

fn limit(field: &str, data: &[u8]) -> ApiResult<()> {
    if data.len() > MAX_DATA {
        return Err(ApiError::invalid(format!(
            "{field} is {} bytes; the maximum is {MAX_DATA} bytes.",
            data.len()
        )));
    }
    Ok(())
}

pub fn encrypt(
    key: &CryptoKey,
    version: Option<u32>,
    body: &Value,
    hooks: &Hooks,
) -> ApiResult<Value> {
    key.require_purpose("ENCRYPT_DECRYPT")?;
    let plaintext = pj::bytes_field(body, "plaintext")?;
    let aad = pj::bytes_field(body, "additionalAuthenticatedData")?;
    limit("plaintext", &plaintext)?;
    limit("additionalAuthenticatedData", &aad)?;
    let verified_pt = pj::verify_crc(body, "plaintextCrc32c", &plaintext, "plaintext")?;
    let verified_aad = pj::verify_crc(
        body,
        "additionalAuthenticatedDataCrc32c",
        &aad,
        "additional_authenticated_data",
    )?;
    let number = match version.or(key.primary) {
        Some(n) => n,
        None => {
            return Err(ApiError::precondition(format!(
                "{} has no primary version.",
                key.name
            )));
        }
    };
    let name = key.version_name(number);
    let material = key.version(number)?.usable(&name)?;
    let ct = crypto::encrypt(material, number, &key.name, &plaintext, &aad)
        .map_err(|_| ApiError::internal("Encryption failed."))?;
    Ok(json!({
        "name": name,
        "ciphertext": b64(&ct),
        "ciphertextCrc32c": out_crc(&ct, hooks),
        "verifiedPlaintextCrc32c": verified_pt,
        "verifiedAdditionalAuthenticatedDataCrc32c": verified_aad,
        "protectionLevel": key.protection_level,
    }))
}

pub fn decrypt(key: &CryptoKey, body: &Value, hooks: &Hooks) -> ApiResult<Value> {
    key.require_purpose("ENCRYPT_DECRYPT")?;
    let ciphertext = pj::bytes_field(body, "ciphertext")?;
    let aad = pj::bytes_field(body, "additionalAuthenticatedData")?;
    if ciphertext.is_empty() {
        return Err(ApiError::invalid("ciphertext is required."));
    }
    pj::verify_crc(body, "ciphertextCrc32c", &ciphertext, "ciphertext")?;
    pj::verify_crc(
        body,
        "additionalAuthenticatedDataCrc32c",
        &aad,
        "additional_authenticated_data",
    )?;
    let failed = || {
        ApiError::invalid(
            "Decryption failed: the ciphertext is invalid, or it was not made with this CryptoKey and additional authenticated data.",
        )
    };
    let number = crypto::ciphertext_version(&ciphertext).ok_or_else(failed)?;
    let version = key.version(number).map_err(|_| failed())?;
    let material = version.usable(&key.version_name(number))?;
    let plaintext =
        crypto::decrypt(material, &key.name, &ciphertext, &aad).map_err(|_| failed())?;
    Ok(json!({
        "plaintext": b64(&plaintext),
        "plaintextCrc32c": out_crc(&plaintext, hooks),
        "usedPrimary": key.primary == Some(number),
        "protectionLevel": key.protection_level,
    }))
}

pub fn asymmetric_sign(
    key: &CryptoKey,
    number: u32,
    body: &Value,
    hooks: &Hooks,
) -> ApiResult<Value> {
    key.require_purpose("ASYMMETRIC_SIGN")?;
    let name = key.version_name(number);
    let version = key.version(number)?;
    let material = version.usable(&name)?;
    let (field, alg) = crypto::digest_alg(version.algorithm)
        .ok_or_else(|| ApiError::invalid(format!("{} cannot sign digests.", version.algorithm)))?;
    let digest_obj = body
        .get("digest")
        .filter(|d| d.is_object())
        .ok_or_else(|| ApiError::invalid("digest is required for this algorithm."))?;
    let digest_bytes = pj::bytes_field(digest_obj, field)?;
    if digest_bytes.is_empty() {
        return Err(ApiError::invalid(format!(
            "{} requires a digest.{field} field.",
            version.algorithm
        )));
    }
    let verified_digest = pj::verify_crc(body, "digestCrc32c", &digest_bytes, "digest")?;
    let digest = Digest::import_less_safe(&digest_bytes, alg).map_err(|_| {
        ApiError::invalid(format!(
            "digest.{field} must be {} bytes, got {}.",
            alg.output_len(),
            digest_bytes.len()
        ))
    })?;
    let sig = crypto::sign_digest(material, &digest)
        .map_err(|_| ApiError::internal("Signing failed."))?;
    Ok(json!({
        "signature": b64(&sig),
        "signatureCrc32c": out_crc(&sig, hooks),
        "verifiedDigestCrc32c": verified_digest,
        "name": name,
        "verifiedDataCrc32c": false,
        "protectionLevel": key.protection_level,
    }))
}

pub fn asymmetric_decrypt(
    key: &CryptoKey,
    number: u32,
    body: &Value,
    hooks: &Hooks,
) -> ApiResult<Value> {
    key.require_purpose("ASYMMETRIC_DECRYPT")?;
    let name = key.version_name(number);
    let material = key.version(number)?.usable(&name)?;
    let ciphertext = pj::bytes_field(body, "ciphertext")?;
    let verified = pj::verify_crc(body, "ciphertextCrc32c", &ciphertext, "ciphertext")?;
    let plaintext = crypto::asymmetric_decrypt(material, &ciphertext)
        .map_err(|_| ApiError::invalid("Decryption failed: the ciphertext is invalid."))?;
    Ok(json!({
        "plaintext": b64(&plaintext),
        "plaintextCrc32c": out_crc(&plaintext, hooks),
        "verifiedCiphertextCrc32c": verified,
        "protectionLevel": key.protection_level,
    }))
}

pub fn get_public_key(
    key: &CryptoKey,
    number: u32,
    format: Option<&str>,
    hooks: &Hooks,
) -> ApiResult<Value> {
    if !matches!(key.purpose, "ASYMMETRIC_SIGN" | "ASYMMETRIC_DECRYPT") {
        return Err(ApiError::invalid(format!(
            "{} has purpose {}; public keys exist only for ASYMMETRIC_SIGN or ASYMMETRIC_DECRYPT keys.",
            key.name, key.purpose
        )));
    }
    let name = key.version_name(number);
    let version = key.version(number)?;
    let material = version.usable(&name)?;
    let der = crypto::public_key_der(material)
        .map_err(|_| ApiError::internal("Public key export failed."))?;
    let pem = pem::encode_config(
        &pem::Pem::new("PUBLIC KEY", der.clone()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    let mut out = json!({
        "pem": pem,
        "algorithm": version.algorithm,
        "pemCrc32c": out_crc(pem.as_bytes(), hooks),
        "name": name,
        "protectionLevel": key.protection_level,
    });
    match format {
        None | Some("PEM") => {}
        Some("DER") => {
            out["publicKeyFormat"] = "DER".into();
            out["publicKey"] = json!({"data": b64(&der), "crc32cChecksum": crc(&der)});
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "publicKeyFormat {other} is not supported for {}.",
                version.algorithm
            )));
        }
    }
    Ok(out)
}

pub fn mac_sign(key: &CryptoKey, number: u32, body: &Value, hooks: &Hooks) -> ApiResult<Value> {
    key.require_purpose("MAC")?;
    let name = key.version_name(number);
    let material = key.version(number)?.usable(&name)?;
    let data = pj::bytes_field(body, "data")?;
    limit("data", &data)?;
    let verified = pj::verify_crc(body, "dataCrc32c", &data, "data")?;
    let mac = crypto::mac_sign(material, &data).map_err(|_| ApiError::internal("MAC failed."))?;
    Ok(json!({
        "name": name,
        "mac": b64(&mac),
        "macCrc32c": out_crc(&mac, hooks),
        "verifiedDataCrc32c": verified,
        "protectionLevel": key.protection_level,
    }))
}

pub fn mac_verify(key: &CryptoKey, number: u32, body: &Value, hooks: &Hooks) -> ApiResult<Value> {
    key.require_purpose("MAC")?;
    let name = key.version_name(number);
    let material = key.version(number)?.usable(&name)?;
    let data = pj::bytes_field(body, "data")?;
    let mac = pj::bytes_field(body, "mac")?;
    limit("data", &data)?;
    let verified_data = pj::verify_crc(body, "dataCrc32c", &data, "data")?;
    let verified_mac = pj::verify_crc(body, "macCrc32c", &mac, "mac")?;
    let success =
        crypto::mac_verify(material, &data, &mac).map_err(|_| ApiError::internal("MAC failed."))?;
    // The integrity flag mirrors `success`; a hook can flip it so clients
    // can prove they check it.
    let integrity = if hooks.take_corruption() {
        !success
    } else {
        success
    };
    Ok(json!({
        "name": name,
        "success": success,
        "verifiedDataCrc32c": verified_data,
        "verifiedMacCrc32c": verified_mac,
        "verifiedSuccessIntegrity": integrity,
        "protectionLevel": key.protection_level,
    }))
}
