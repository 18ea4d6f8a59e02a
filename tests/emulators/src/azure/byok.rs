//! Bring your own key: the key transfer blob (`key_hsm`) of Key Vault's BYOK specification,
//! `{"schema_version", "header": {"kid", "alg": "dir", "enc"}, "ciphertext"}`, where the
//! ciphertext is CKM_RSA_AES_KEY_WRAP: an ephemeral AES-256 key encrypted with RSA-OAEP
//! under the key exchange key (KEK) named by `kid`, followed by the target key wrapped
//! with AES key wrap with padding (RFC 5649) under that AES key.
//!
//! `enc` is `CKM_RSA_AES_KEY_WRAP` (OAEP with SHA-1, PKCS#11's default) or
//! `RSA_AES_KEY_WRAP_256` (OAEP with SHA-256). The target is PKCS#8 DER for RSA and EC
//! keys, the raw key bytes for `oct-HSM` keys.

use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    PrivateDecryptingKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::crypto::Material;
use super::errors::{KvError, KvResult};
use super::model::Vault;

/// What a transfer blob holds once opened: the KEK it was made for and the target key.
pub struct Transferred {
    pub kek_name: String,
    pub target: Vec<u8>,
}

fn bad(message: impl Into<String>) -> KvError {
    KvError::bad_parameter(message)
}

fn b64(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
        .or_else(|| URL_SAFE.decode(text).ok())
        .or_else(|| STANDARD.decode(text).ok())
}

/// Opens `blob` (the decoded `key_hsm` bytes) with the KEK it names, which must be an
/// enabled RSA-HSM key of this vault whose only operation is `import`.
pub fn open(vault: &Vault, base: &str, blob: &[u8]) -> KvResult<Transferred> {
    let doc: Value = serde_json::from_slice(blob)
        .map_err(|e| bad(format!("key_hsm is not a key transfer blob (JSON): {e}")))?;
    let header = doc
        .get("header")
        .filter(|h| h.is_object())
        .ok_or_else(|| bad("The key transfer blob has no header."))?;
    let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).map(str::to_string);
    let kid = text(header, "kid").ok_or_else(|| bad("The key transfer blob names no kid."))?;
    if text(header, "alg").as_deref() != Some("dir") {
        return Err(bad("The key transfer blob's header.alg must be \"dir\"."));
    }
    let oaep: &'static OaepAlgorithm = match text(header, "enc").as_deref() {
        Some("CKM_RSA_AES_KEY_WRAP") => &OAEP_SHA1_MGF1SHA1,
        Some("RSA_AES_KEY_WRAP_256") => &OAEP_SHA256_MGF1SHA256,
        other => {
            return Err(bad(format!(
                "Unsupported key transfer encryption {other:?}: use CKM_RSA_AES_KEY_WRAP or RSA_AES_KEY_WRAP_256."
            )));
        }
    };
    let ciphertext = text(&doc, "ciphertext")
        .and_then(|c| b64(&c))
        .ok_or_else(|| bad("The key transfer blob's ciphertext is missing or not base64."))?;

    let rest = kid
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix("/keys/"))
        .ok_or_else(|| bad(format!("The KEK {kid} is not a key of this vault.")))?;
    let (name, version) = rest.split_once('/').unwrap_or((rest, ""));
    let kek = vault
        .keys
        .get(name)
        .ok_or_else(|| KvError::key_not_found(name))?
        .version(version)?;
    if kek.kty != "RSA-HSM" || kek.key_ops != ["import"] {
        return Err(bad(format!(
            "The key {kid} is not a key exchange key: a KEK is an RSA-HSM key whose key_ops are exactly [\"import\"]."
        )));
    }
    kek.check_op("import")?;
    let Material::Rsa { pkcs8 } = &kek.material else {
        return Err(bad("The KEK is not an RSA key."));
    };
    let private = PrivateDecryptingKey::from_pkcs8(pkcs8)
        .map_err(|_| KvError::internal("Stored KEK"))
        .and_then(|k| {
            OaepPrivateDecryptingKey::new(k).map_err(|_| KvError::internal("Stored KEK"))
        })?;
    let split = private.key_size_bytes();
    if ciphertext.len() <= split {
        return Err(bad(
            "The key transfer ciphertext is too short: it must hold the RSA-OAEP block and the wrapped key.",
        ));
    }
    let (wrapped_aes, wrapped_target) = ciphertext.split_at(split);
    let mut aes_buf = vec![0u8; private.min_output_size()];
    let aes = private
        .decrypt(oaep, wrapped_aes, &mut aes_buf, None)
        .map_err(|_| bad("The key transfer blob does not decrypt with the KEK."))?;
    let kek_aes =
        AesKek::new(&AES_256, aes).map_err(|_| bad("The transferred AES key is not 256 bits."))?;
    let mut target = vec![0u8; wrapped_target.len()];
    let target = kek_aes
        .unwrap_with_padding(wrapped_target, &mut target)
        .map_err(|_| {
            bad("The wrapped key does not unwrap (RFC 5649) with the transferred AES key.")
        })?
        .to_vec();
    Ok(Transferred {
        kek_name: name.to_string(),
        target,
    })
}
