//! Signatures and MACs through Transit: sign, verify, public keys, HMAC.

use crate::algorithms;
use crate::errors::VaultFailure;
use crate::provider::VaultProvider;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, KeyPurpose, ProviderError, PublicKeyInfo, Replied, Result, SignInput, VersionRef,
};
use serde_json::{Map, Value, json};

/// The path under `sign/` or `verify/` and the body for a signature request.
fn sign_request(
    p: &VaultProvider,
    v: &VersionRef,
    input: SignInput<'_>,
    op: Op,
) -> Result<(String, Map<String, Value>)> {
    let name = p.key_name(&v.uri)?;
    let a = v.algorithm;
    let mut body = Map::new();
    body.insert("key_version".into(), json!(p.version_of(v)?));
    let bytes = match input {
        SignInput::Message(m) => m,
        SignInput::Digest(d) => {
            kit::check_digest(&p.name, op, v, d)?;
            body.insert("prehashed".into(), json!(true));
            d
        }
    };
    body.insert("input".into(), json!(B64.encode(bytes)));
    if matches!(a, Algorithm::EcdsaP256 | Algorithm::EcdsaP384) {
        // DER (X9.62 Ecdsa-Sig-Value), as the trait requires; Transit's default, made explicit.
        body.insert("marshaling_algorithm".into(), json!("asn1"));
    }
    if let Some(scheme) = algorithms::rsa_signature_algorithm(a) {
        body.insert("signature_algorithm".into(), json!(scheme));
        if scheme == "pss" {
            body.insert("salt_length".into(), json!("hash"));
        }
    }
    let path = match algorithms::hash_algorithm(a) {
        Some(hash) => format!("{name}/{hash}"),
        None => name.to_string(),
    };
    Ok((path, body))
}

pub(crate) async fn sign(
    p: &VaultProvider,
    key: &VersionRef,
    input: SignInput<'_>,
) -> Result<Replied<Vec<u8>>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Sign, Op::Sign)?;
    let op = p.op("sign", &key.uri);
    let (path, body) = sign_request(p, key, input, Op::Sign)?;
    let reply = p
        .post(&op, &format!("sign/{path}"), &Value::Object(body))
        .await?;
    let raw = reply.unprefixed(&op, "signature")?;
    Ok(Replied::with_request_id(raw, reply.request_id))
}

pub(crate) async fn verify(
    p: &VaultProvider,
    key: &VersionRef,
    input: SignInput<'_>,
    signature: &[u8],
) -> Result<Replied<bool>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Sign, Op::Verify)?;
    let op = p.op("verify", &key.uri);
    let (path, mut body) = sign_request(p, key, input, Op::Verify)?;
    body.remove("key_version");
    let version = p.version_of(key)?;
    body.insert(
        "signature".into(),
        json!(format!("vault:v{version}:{}", B64.encode(signature))),
    );
    let reply = p
        .post(&op, &format!("verify/{path}"), &Value::Object(body))
        .await?;
    Ok(Replied::with_request_id(
        reply.flag("valid"),
        reply.request_id,
    ))
}

/// A public key as SPKI DER: Transit gives PEM for ECDSA and RSA, raw base64 for Ed25519.
fn spki_der(algorithm: Algorithm, public_key: &str) -> Option<Vec<u8>> {
    if algorithm == Algorithm::Ed25519 {
        let raw = B64.decode(public_key.trim()).ok()?;
        if raw.len() != 32 {
            return None;
        }
        // SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (32 bytes) }
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&raw);
        return Some(der);
    }
    let body: String = public_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    B64.decode(body).ok()
}

pub(crate) async fn public_key(
    p: &VaultProvider,
    key: &VersionRef,
) -> Result<Replied<PublicKeyInfo>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Sign, Op::PublicKey)?;
    let (reply, _) = p.read_key(&key.uri).await?;
    let op = p.op("get public key", &key.uri);
    let version = p.version_of(key)?.to_string();
    let pem = reply
        .data
        .get("keys")
        .and_then(|k| k.get(&version))
        .and_then(|v| v.get("public_key"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ProviderError::not_found(&p.name, format!("version {version} of {}", key.uri))
        })?;
    let spki_der = spki_der(key.algorithm, pem).ok_or_else(|| {
        VaultFailure::Malformed("public key is not PEM/base64".into()).into_provider_error(&op)
    })?;
    Ok(Replied::with_request_id(
        PublicKeyInfo { spki_der },
        reply.request_id,
    ))
}

pub(crate) async fn mac(
    p: &VaultProvider,
    key: &VersionRef,
    message: &[u8],
) -> Result<Replied<Vec<u8>>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Mac, Op::Mac)?;
    let name = p.key_name(&key.uri)?;
    let op = p.op("generate MAC", &key.uri);
    let body = json!({ "input": B64.encode(message), "key_version": p.version_of(key)? });
    let reply = p.post(&op, &format!("hmac/{name}/sha2-256"), &body).await?;
    let raw = reply.unprefixed(&op, "hmac")?;
    Ok(Replied::with_request_id(raw, reply.request_id))
}

pub(crate) async fn verify_mac(
    p: &VaultProvider,
    key: &VersionRef,
    message: &[u8],
    tag: &[u8],
) -> Result<Replied<bool>> {
    kit::require_purpose(&p.name, key, KeyPurpose::Mac, Op::VerifyMac)?;
    let name = p.key_name(&key.uri)?;
    let op = p.op("verify MAC", &key.uri);
    let version = p.version_of(key)?;
    let body = json!({
        "input": B64.encode(message),
        "hmac": format!("vault:v{version}:{}", B64.encode(tag)),
    });
    let reply = p
        .post(&op, &format!("verify/{name}/sha2-256"), &body)
        .await?;
    Ok(Replied::with_request_id(
        reply.flag("valid"),
        reply.request_id,
    ))
}

#[cfg(test)]
mod tests {
    use crate::client::unprefix;

    #[test]
    fn transit_output_is_unprefixed() {
        assert_eq!(unprefix("vault:v2:AAEC"), Some((2, vec![0, 1, 2])));
        assert_eq!(unprefix("v2:AAEC"), None);
        assert_eq!(unprefix("vault:vx:AAEC"), None);
    }
}
