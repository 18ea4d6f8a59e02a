//! Encryption through Transit: encrypt, decrypt and data keys, each pinned to the version the
//! gateway names.

use crate::provider::VaultProvider;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    DataKey, DataKeySpec, KeyPurpose, ProviderError, Replied, Result, SecretBytes, VersionRef,
};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

/// Base fields every encrypt-like call sends.
fn sealing_body(p: &VaultProvider, v: &VersionRef, aad: &[u8]) -> Result<Map<String, Value>> {
    let mut body = Map::new();
    body.insert("key_version".into(), json!(p.version_of(v)?));
    if !aad.is_empty() {
        if v.algorithm.rsa_bits().is_some() {
            return Err(ProviderError::invalid(
                &p.name,
                format!("{}: RSA-OAEP in Transit takes no associated data", v.uri),
            ));
        }
        body.insert("associated_data".into(), json!(B64.encode(aad)));
    }
    Ok(body)
}

pub(crate) async fn encrypt(
    p: &VaultProvider,
    key: &VersionRef,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Replied<Vec<u8>>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Encrypt, Op::Encrypt)?;
    let name = p.key_name(&key.uri)?;
    let op = p.op("encrypt", &key.uri);
    let mut body = sealing_body(p, key, aad)?;
    let encoded = Zeroizing::new(B64.encode(plaintext.expose()));
    body.insert("plaintext".into(), Value::String(encoded.to_string()));
    let reply = p
        .post(&op, &format!("encrypt/{name}"), &Value::Object(body))
        .await?;
    let blob = reply.text(&op, "ciphertext")?.as_bytes().to_vec();
    Ok(Replied::with_request_id(blob, reply.request_id))
}

pub(crate) async fn decrypt(
    p: &VaultProvider,
    key: &VersionRef,
    blob: &[u8],
    aad: &[u8],
) -> Result<Replied<SecretBytes>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Encrypt, Op::Decrypt)?;
    let name = p.key_name(&key.uri)?;
    let op = p.op("decrypt", &key.uri).authenticated();
    // The blob is Transit's `vault:vN:…`; it must name the version the gateway recorded.
    let version = p.version_of(key)?;
    let Ok(ciphertext) = std::str::from_utf8(blob) else {
        return Err(ProviderError::auth_failed(&p.name));
    };
    if !ciphertext.starts_with(&format!("vault:v{version}:")) {
        return Err(ProviderError::auth_failed(&p.name));
    }
    let mut body = sealing_body(p, key, aad)?;
    body.remove("key_version");
    body.insert("ciphertext".into(), json!(ciphertext));
    let reply = p
        .post(&op, &format!("decrypt/{name}"), &Value::Object(body))
        .await?;
    let plaintext = reply.secret(&op, "plaintext")?;
    Ok(Replied::with_request_id(plaintext, reply.request_id))
}

pub(crate) async fn generate_data_key(
    p: &VaultProvider,
    key: &VersionRef,
    spec: DataKeySpec,
    aad: &[u8],
) -> Result<Replied<DataKey>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Encrypt, Op::GenerateDataKey)?;
    if !key.algorithm.is_symmetric() {
        return Err(ProviderError::precondition(
            &p.name,
            format!(
                "generate a data key with {}: Transit makes data keys under symmetric keys only",
                key.uri
            ),
        ));
    }
    let bits = match spec.len {
        16 | 32 | 64 => spec.len * 8,
        other => {
            return Err(ProviderError::invalid(
                &p.name,
                format!("Transit makes data keys of 16, 32 or 64 bytes, not {other}"),
            ));
        }
    };
    let name = p.key_name(&key.uri)?;
    let op = p.op("generate data key", &key.uri);
    let mut body = sealing_body(p, key, aad)?;
    body.insert("bits".into(), json!(bits));
    let reply = p
        .post(
            &op,
            &format!("datakey/plaintext/{name}"),
            &Value::Object(body),
        )
        .await?;
    let sealed = reply.text(&op, "ciphertext")?.as_bytes().to_vec();
    let plaintext = reply.secret(&op, "plaintext")?;
    Ok(Replied::with_request_id(
        DataKey { plaintext, sealed },
        reply.request_id,
    ))
}
