//! keygate's algorithm vocabulary mapped to Transit key types and request parameters, and
//! keygate's key names mapped to Transit key names.

use keygate_provider::Algorithm;

/// The Transit `type` of a keygate algorithm. RSA signing and encryption share one Transit
/// type; the scheme is chosen per request.
pub fn vault_type(algorithm: Algorithm) -> &'static str {
    use Algorithm::*;
    match algorithm {
        Aes256Gcm => "aes256-gcm96",
        ChaCha20Poly1305 => "chacha20-poly1305",
        EcdsaP256 => "ecdsa-p256",
        EcdsaP384 => "ecdsa-p384",
        Ed25519 => "ed25519",
        Rsa2048Oaep | Rsa2048Pss | Rsa2048Pkcs1 => "rsa-2048",
        Rsa3072Oaep | Rsa3072Pss | Rsa3072Pkcs1 => "rsa-3072",
        Rsa4096Oaep | Rsa4096Pss | Rsa4096Pkcs1 => "rsa-4096",
        HmacSha256 => "hmac",
    }
}

/// The keygate algorithm of a Transit key type, when it is unambiguous (RSA types are not: the
/// same key serves OAEP, PSS and PKCS#1 v1.5).
pub fn from_vault_type(vault_type: &str) -> Option<Algorithm> {
    Some(match vault_type {
        "aes256-gcm96" => Algorithm::Aes256Gcm,
        "chacha20-poly1305" => Algorithm::ChaCha20Poly1305,
        "ecdsa-p256" => Algorithm::EcdsaP256,
        "ecdsa-p384" => Algorithm::EcdsaP384,
        "ed25519" => Algorithm::Ed25519,
        "hmac" => Algorithm::HmacSha256,
        _ => return None,
    })
}

/// Every algorithm the provider offers.
pub const SUPPORTED: [Algorithm; 15] = Algorithm::ALL;

/// Transit's `hash_algorithm` for a signing algorithm; `None` for Ed25519, which signs the
/// message itself.
pub fn hash_algorithm(algorithm: Algorithm) -> Option<&'static str> {
    match algorithm {
        Algorithm::Ed25519 => None,
        Algorithm::EcdsaP384 => Some("sha2-384"),
        _ => Some("sha2-256"),
    }
}

/// Transit's `signature_algorithm` for RSA signing algorithms.
pub fn rsa_signature_algorithm(algorithm: Algorithm) -> Option<&'static str> {
    use Algorithm::*;
    match algorithm {
        Rsa2048Pss | Rsa3072Pss | Rsa4096Pss => Some("pss"),
        Rsa2048Pkcs1 | Rsa3072Pkcs1 | Rsa4096Pkcs1 => Some("pkcs1v15"),
        _ => None,
    }
}

/// Marks the keygate part of a Transit key name: `{name}.kg.{algorithm}.{key_id}`.
const MARKER: &str = ".kg.";

/// Transit has no tags or metadata on keys, so keygate's name, algorithm and id are carried
/// in the Transit key name itself: `payments/card-dek` with id `8c1e…` and algorithm
/// `aes-256-gcm` becomes `payments.card-dek.kg.aes-256-gcm.8c1e…`. Inventory can then tell
/// keygate's keys (and their ids) from others, and RSA keys keep their scheme.
pub fn vault_key_name(name: &str, algorithm: Algorithm, key_id: &str) -> Result<String, String> {
    let safe_name: String = name.replace('/', ".");
    if safe_name.is_empty()
        || !safe_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || safe_name.contains("..")
        || safe_name.starts_with('.')
        || safe_name.ends_with('.')
    {
        return Err(format!(
            "key name '{name}' cannot be a Transit key name: use letters, digits, '-', '_', \
             '.' and '/' with no empty segments"
        ));
    }
    if key_id.is_empty()
        || !key_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(format!(
            "key id '{key_id}' cannot be part of a Transit key name: use letters, digits, '-' and '_'"
        ));
    }
    Ok(format!("{safe_name}{MARKER}{algorithm}.{key_id}"))
}

/// What a Transit key name says about keygate: `(algorithm, key_id)` for names made by
/// [`vault_key_name`], `None` for keys keygate did not create.
pub fn parse_vault_key_name(vault_name: &str) -> Option<(Algorithm, String)> {
    let (_, tail) = vault_name.rsplit_once(MARKER)?;
    let (algorithm, key_id) = tail.split_once('.')?;
    let algorithm = algorithm.parse().ok()?;
    if key_id.is_empty() || key_id.contains('.') {
        return None;
    }
    Some((algorithm, key_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for algorithm in SUPPORTED {
            let name = vault_key_name("payments/card-dek", algorithm, "0b5e-9f").expect("valid");
            assert!(!name.contains('/'));
            assert_eq!(
                parse_vault_key_name(&name),
                Some((algorithm, "0b5e-9f".to_string()))
            );
        }
    }

    #[test]
    fn foreign_names_carry_no_keygate_id() {
        assert_eq!(parse_vault_key_name("app-key"), None);
        assert_eq!(parse_vault_key_name("x.kg.not-an-alg.id"), None);
    }

    #[test]
    fn unsafe_names_are_refused() {
        assert!(vault_key_name("a//b", Algorithm::Aes256Gcm, "id").is_err());
        assert!(vault_key_name("a b", Algorithm::Aes256Gcm, "id").is_err());
        assert!(vault_key_name("ok", Algorithm::Aes256Gcm, "i.d").is_err());
    }

    #[test]
    fn every_unambiguous_type_maps_back() {
        for algorithm in SUPPORTED {
            if algorithm.rsa_bits().is_none() {
                assert_eq!(from_vault_type(vault_type(algorithm)), Some(algorithm));
            }
        }
    }
}
