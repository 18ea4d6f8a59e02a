//! keygate algorithms in PKCS#11 terms: key generation templates, mechanisms, digests.

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use keygate_provider::{Algorithm, KeyPurpose};

/// The algorithms this provider offers.
pub const SUPPORTED: [Algorithm; 10] = [
    Algorithm::Aes256Gcm,
    Algorithm::EcdsaP256,
    Algorithm::EcdsaP384,
    Algorithm::Rsa2048Pss,
    Algorithm::Rsa3072Pss,
    Algorithm::Rsa4096Pss,
    Algorithm::Rsa2048Oaep,
    Algorithm::Rsa3072Oaep,
    Algorithm::Rsa4096Oaep,
    Algorithm::HmacSha256,
];

/// Stable one-byte codes stored in CKA_ID (see `naming`); never renumber.
const CODES: [(Algorithm, u8); 10] = [
    (Algorithm::Aes256Gcm, 1),
    (Algorithm::EcdsaP256, 2),
    (Algorithm::EcdsaP384, 3),
    (Algorithm::Rsa2048Pss, 4),
    (Algorithm::Rsa3072Pss, 5),
    (Algorithm::Rsa4096Pss, 6),
    (Algorithm::Rsa2048Oaep, 7),
    (Algorithm::Rsa3072Oaep, 8),
    (Algorithm::Rsa4096Oaep, 9),
    (Algorithm::HmacSha256, 10),
];

pub fn algorithm_code(algorithm: Algorithm) -> u8 {
    CODES
        .iter()
        .find(|(a, _)| *a == algorithm)
        .map_or(0, |(_, c)| *c)
}

pub fn algorithm_from_code(code: u8) -> Option<Algorithm> {
    CODES.iter().find(|(_, c)| *c == code).map(|(a, _)| *a)
}

pub const AES_GCM_IV_LEN: usize = 12;
pub const AES_GCM_TAG_LEN: usize = 16;

/// DER OIDs for CKA_EC_PARAMS (namedCurve).
pub const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The curve's DER OID, for EC algorithms.
pub fn curve_oid(algorithm: Algorithm) -> Option<&'static [u8]> {
    match algorithm {
        Algorithm::EcdsaP256 => Some(P256_OID),
        Algorithm::EcdsaP384 => Some(P384_OID),
        _ => None,
    }
}

/// The usage attributes keygate sets on the key that does the secret-side work (the secret
/// key, or the private half) and on the public half. Disabling turns exactly these off.
pub fn usage_attributes(algorithm: Algorithm, class: ObjectClass) -> Vec<AttributeType> {
    let public = class == ObjectClass::PUBLIC_KEY;
    match (algorithm, public) {
        (Algorithm::Aes256Gcm, _) => vec![AttributeType::Encrypt, AttributeType::Decrypt],
        (Algorithm::HmacSha256, _) => vec![AttributeType::Sign, AttributeType::Verify],
        (a, false) if a.purpose() == KeyPurpose::Sign => vec![AttributeType::Sign],
        (_, true) if algorithm.purpose() == KeyPurpose::Sign => vec![AttributeType::Verify],
        (_, false) => vec![AttributeType::Decrypt],
        (_, true) => vec![AttributeType::Encrypt],
    }
}

fn usage(kind: AttributeType, on: bool) -> Option<Attribute> {
    match kind {
        AttributeType::Encrypt => Some(Attribute::Encrypt(on)),
        AttributeType::Decrypt => Some(Attribute::Decrypt(on)),
        AttributeType::Sign => Some(Attribute::Sign(on)),
        AttributeType::Verify => Some(Attribute::Verify(on)),
        _ => None,
    }
}

/// The template that switches a key's usages on or off.
pub fn usage_template(algorithm: Algorithm, class: ObjectClass, on: bool) -> Vec<Attribute> {
    usage_attributes(algorithm, class)
        .into_iter()
        .filter_map(|k| usage(k, on))
        .collect()
}

/// What to ask the token for to create one version.
pub enum KeyGen {
    Secret {
        mechanism: Mechanism<'static>,
        template: Vec<Attribute>,
    },
    Pair {
        mechanism: Mechanism<'static>,
        public: Vec<Attribute>,
        private: Vec<Attribute>,
    },
}

/// Templates for a new version: persistent, private, sensitive and never extractable.
pub fn key_gen(algorithm: Algorithm, label: &[u8], id: &[u8]) -> KeyGen {
    let common = |class: ObjectClass| {
        let mut t = vec![
            Attribute::Class(class),
            Attribute::Token(true),
            Attribute::Label(label.to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        if class == ObjectClass::PUBLIC_KEY {
            t.push(Attribute::Private(false));
        } else {
            t.extend([
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ]);
        }
        t.extend(usage_template(algorithm, class, true));
        t
    };
    match algorithm {
        Algorithm::Aes256Gcm | Algorithm::HmacSha256 => {
            let (mechanism, key_type) = if algorithm == Algorithm::Aes256Gcm {
                (Mechanism::AesKeyGen, KeyType::AES)
            } else {
                (Mechanism::GenericSecretKeyGen, KeyType::GENERIC_SECRET)
            };
            let mut template = common(ObjectClass::SECRET_KEY);
            template.extend([Attribute::KeyType(key_type), Attribute::ValueLen(32.into())]);
            KeyGen::Secret {
                mechanism,
                template,
            }
        }
        _ => {
            let mut public = common(ObjectClass::PUBLIC_KEY);
            let private = common(ObjectClass::PRIVATE_KEY);
            let mechanism = if let Some(oid) = curve_oid(algorithm) {
                public.push(Attribute::EcParams(oid.to_vec()));
                Mechanism::EccKeyPairGen
            } else {
                let bits = algorithm.rsa_bits().unwrap_or(2048);
                public.extend([
                    Attribute::ModulusBits(u64::from(bits).into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ]);
                Mechanism::RsaPkcsKeyPairGen
            };
            KeyGen::Pair {
                mechanism,
                public,
                private,
            }
        }
    }
}

/// The mechanism that signs a precomputed digest with this algorithm's private key.
pub fn sign_mechanism(algorithm: Algorithm) -> Mechanism<'static> {
    if curve_oid(algorithm).is_some() {
        Mechanism::Ecdsa
    } else {
        Mechanism::RsaPkcsPss(PkcsPssParams {
            hash_alg: MechanismType::SHA256,
            mgf: PkcsMgfType::MGF1_SHA256,
            s_len: 32.into(),
        })
    }
}

/// RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label.
pub fn oaep_mechanism() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ))
}

/// The class of the object that does the secret-side work for this algorithm.
pub fn secret_class(algorithm: Algorithm) -> ObjectClass {
    if algorithm.is_symmetric() {
        ObjectClass::SECRET_KEY
    } else {
        ObjectClass::PRIVATE_KEY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_cover_supported() {
        for a in SUPPORTED {
            assert_eq!(algorithm_from_code(algorithm_code(a)), Some(a));
        }
        assert_eq!(algorithm_from_code(0), None);
    }
}
