//! keygate's algorithm vocabulary mapped to Key Vault key types, sizes, curves, key
//! operations and algorithm names.

use azure_security_keyvault_keys::models::{
    CurveName, EncryptionAlgorithm, JsonWebKey, KeyOperation, KeyType, SignatureAlgorithm,
};
use keygate_provider::{Algorithm, KeyPurpose};

/// What a vault offers; a Managed HSM adds `aes-256-gcm` (`oct-HSM` keys).
const ASYMMETRIC: [Algorithm; 11] = [
    Algorithm::Rsa2048Oaep,
    Algorithm::Rsa3072Oaep,
    Algorithm::Rsa4096Oaep,
    Algorithm::Rsa2048Pss,
    Algorithm::Rsa3072Pss,
    Algorithm::Rsa4096Pss,
    Algorithm::Rsa2048Pkcs1,
    Algorithm::Rsa3072Pkcs1,
    Algorithm::Rsa4096Pkcs1,
    Algorithm::EcdsaP256,
    Algorithm::EcdsaP384,
];

pub fn supported(managed_hsm: bool) -> Vec<Algorithm> {
    let mut all = ASYMMETRIC.to_vec();
    if managed_hsm {
        all.push(Algorithm::Aes256Gcm);
    }
    all
}

/// How a key of `algorithm` is created: type, size or curve, and the operations its purpose
/// needs and no more.
pub struct Shape {
    pub kty: KeyType,
    pub key_size: Option<i32>,
    pub curve: Option<CurveName>,
    pub key_ops: Vec<KeyOperation>,
}

/// `hsm`: HSM-protected key types (always so in a Managed HSM).
pub fn shape(algorithm: Algorithm, hsm: bool) -> Option<Shape> {
    let key_ops = match algorithm.purpose() {
        // wrapKey/unwrapKey seal data keys.
        KeyPurpose::Encrypt => vec![
            KeyOperation::Encrypt,
            KeyOperation::Decrypt,
            KeyOperation::WrapKey,
            KeyOperation::UnwrapKey,
        ],
        KeyPurpose::Sign => vec![KeyOperation::Sign, KeyOperation::Verify],
        KeyPurpose::Mac => return None,
    };
    let (kty, key_size, curve) = if let Some(bits) = algorithm.rsa_bits() {
        let kty = if hsm { KeyType::RsaHsm } else { KeyType::Rsa };
        (kty, Some(bits as i32), None)
    } else {
        match algorithm {
            Algorithm::EcdsaP256 | Algorithm::EcdsaP384 => {
                let kty = if hsm { KeyType::EcHsm } else { KeyType::Ec };
                let curve = if algorithm == Algorithm::EcdsaP256 {
                    CurveName::P256
                } else {
                    CurveName::P384
                };
                (kty, None, Some(curve))
            }
            Algorithm::Aes256Gcm => (KeyType::OctHsm, Some(256), None),
            _ => return None,
        }
    };
    Some(Shape {
        kty,
        key_size,
        curve,
        key_ops,
    })
}

/// The encrypt/decrypt algorithm: RSA-OAEP-256 for RSA keys, A256GCM for AES keys.
pub fn encryption(algorithm: Algorithm) -> Option<EncryptionAlgorithm> {
    match algorithm {
        Algorithm::Aes256Gcm => Some(EncryptionAlgorithm::A256Gcm),
        a if a.purpose() == KeyPurpose::Encrypt && a.rsa_bits().is_some() => {
            Some(EncryptionAlgorithm::RsaOaep256)
        }
        _ => None,
    }
}

/// The wrapKey/unwrapKey algorithm: RSA-OAEP-256 for RSA keys, A256KW for AES keys.
pub fn wrapping(algorithm: Algorithm) -> Option<EncryptionAlgorithm> {
    match algorithm {
        Algorithm::Aes256Gcm => Some(EncryptionAlgorithm::A256Kw),
        a => encryption(a),
    }
}

pub fn signing(algorithm: Algorithm) -> Option<SignatureAlgorithm> {
    use Algorithm::*;
    match algorithm {
        Rsa2048Pss | Rsa3072Pss | Rsa4096Pss => Some(SignatureAlgorithm::Ps256),
        Rsa2048Pkcs1 | Rsa3072Pkcs1 | Rsa4096Pkcs1 => Some(SignatureAlgorithm::Rs256),
        EcdsaP256 => Some(SignatureAlgorithm::Es256),
        EcdsaP384 => Some(SignatureAlgorithm::Es384),
        _ => None,
    }
}

/// The keygate algorithm of a Key Vault key. An RSA key can serve encryption and both
/// signature schemes; `tagged` (keygate's algorithm tag) decides, else its key_ops do
/// (encryption first, then PSS).
pub fn from_jwk(jwk: &JsonWebKey, tagged: Option<Algorithm>) -> Option<Algorithm> {
    use Algorithm::*;
    let ops = jwk.key_ops.as_deref().unwrap_or_default();
    let has = |op: &str| ops.iter().any(|o| o.eq_ignore_ascii_case(op));
    match jwk.kty.as_ref()? {
        KeyType::Rsa | KeyType::RsaHsm => {
            let n = jwk.n.as_deref()?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            let (oaep, pss, pkcs1) = match bits {
                2048 => (Rsa2048Oaep, Rsa2048Pss, Rsa2048Pkcs1),
                3072 => (Rsa3072Oaep, Rsa3072Pss, Rsa3072Pkcs1),
                4096 => (Rsa4096Oaep, Rsa4096Pss, Rsa4096Pkcs1),
                _ => return None,
            };
            match tagged {
                Some(t) if [oaep, pss, pkcs1].contains(&t) => Some(t),
                _ if has("encrypt") || has("decrypt") || has("wrapKey") => Some(oaep),
                _ if has("sign") || has("verify") => Some(pss),
                _ => None,
            }
        }
        KeyType::Ec | KeyType::EcHsm => match jwk.crv.as_ref()? {
            CurveName::P256 => Some(EcdsaP256),
            CurveName::P384 => Some(EcdsaP384),
            _ => None,
        },
        // The JWK of a symmetric key says nothing of its size; keygate makes 256-bit ones.
        KeyType::Oct | KeyType::OctHsm => Some(Aes256Gcm),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_algorithm_has_a_shape_and_operations() {
        for a in supported(true) {
            let s = shape(a, true).expect("shape");
            assert!(!s.key_ops.is_empty(), "{a}");
            match a.purpose() {
                KeyPurpose::Encrypt => assert!(encryption(a).is_some() && wrapping(a).is_some()),
                _ => assert!(signing(a).is_some(), "{a}"),
            }
        }
        assert!(!supported(false).contains(&Algorithm::Aes256Gcm));
        assert!(shape(Algorithm::HmacSha256, true).is_none());
    }

    #[test]
    fn signing_keys_get_sign_and_verify_only() {
        let s = shape(Algorithm::EcdsaP384, false).expect("shape");
        assert_eq!(s.key_ops, vec![KeyOperation::Sign, KeyOperation::Verify]);
        assert_eq!(s.kty, KeyType::Ec);
        assert_eq!(
            shape(Algorithm::EcdsaP384, true).map(|s| s.kty),
            Some(KeyType::EcHsm)
        );
    }
}
