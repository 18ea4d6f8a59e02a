//! keygate's algorithm vocabulary mapped to KMS key specs, usages and algorithm names.

use aws_sdk_kms::types::{
    EncryptionAlgorithmSpec, KeySpec, KeyUsageType, MacAlgorithmSpec, SigningAlgorithmSpec,
};
use keygate_provider::Algorithm;

/// Every algorithm this provider offers.
pub const SUPPORTED: [Algorithm; 13] = [
    Algorithm::Aes256Gcm,
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
    Algorithm::HmacSha256,
];

/// KMS's limit on one Encrypt plaintext, and on a RAW message for Sign/Verify/GenerateMac.
pub const MAX_KMS_INPUT: usize = 4096;

/// The KMS key spec and usage a keygate algorithm is created with.
pub fn key_spec(algorithm: Algorithm) -> Option<(KeySpec, KeyUsageType)> {
    use Algorithm::*;
    let spec = match algorithm {
        Aes256Gcm => KeySpec::SymmetricDefault,
        Rsa2048Oaep | Rsa2048Pss | Rsa2048Pkcs1 => KeySpec::Rsa2048,
        Rsa3072Oaep | Rsa3072Pss | Rsa3072Pkcs1 => KeySpec::Rsa3072,
        Rsa4096Oaep | Rsa4096Pss | Rsa4096Pkcs1 => KeySpec::Rsa4096,
        EcdsaP256 => KeySpec::EccNistP256,
        EcdsaP384 => KeySpec::EccNistP384,
        HmacSha256 => KeySpec::Hmac256,
        ChaCha20Poly1305 | Ed25519 => return None,
    };
    let usage = match algorithm.purpose() {
        keygate_provider::KeyPurpose::Encrypt => KeyUsageType::EncryptDecrypt,
        keygate_provider::KeyPurpose::Sign => KeyUsageType::SignVerify,
        keygate_provider::KeyPurpose::Mac => KeyUsageType::GenerateVerifyMac,
    };
    Some((spec, usage))
}

/// The keygate algorithm of a KMS key. An RSA signing key can serve PSS and PKCS#1 alike in
/// KMS; `tagged` (the `keygate:algorithm` tag) decides, and PSS is assumed without it.
pub fn from_kms(
    spec: &KeySpec,
    usage: &KeyUsageType,
    tagged: Option<Algorithm>,
) -> Option<Algorithm> {
    use Algorithm::*;
    let rsa = |oaep, pss, pkcs1| match usage {
        KeyUsageType::EncryptDecrypt => Some(oaep),
        KeyUsageType::SignVerify => match tagged {
            Some(a) if a == pkcs1 => Some(pkcs1),
            _ => Some(pss),
        },
        _ => None,
    };
    match (spec, usage) {
        (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt) => Some(Aes256Gcm),
        (KeySpec::Rsa2048, _) => rsa(Rsa2048Oaep, Rsa2048Pss, Rsa2048Pkcs1),
        (KeySpec::Rsa3072, _) => rsa(Rsa3072Oaep, Rsa3072Pss, Rsa3072Pkcs1),
        (KeySpec::Rsa4096, _) => rsa(Rsa4096Oaep, Rsa4096Pss, Rsa4096Pkcs1),
        (KeySpec::EccNistP256, KeyUsageType::SignVerify) => Some(EcdsaP256),
        (KeySpec::EccNistP384, KeyUsageType::SignVerify) => Some(EcdsaP384),
        (KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac) => Some(HmacSha256),
        _ => None,
    }
}

pub fn encryption(algorithm: Algorithm) -> Option<EncryptionAlgorithmSpec> {
    match algorithm {
        Algorithm::Aes256Gcm => Some(EncryptionAlgorithmSpec::SymmetricDefault),
        a if a.purpose() == keygate_provider::KeyPurpose::Encrypt && a.rsa_bits().is_some() => {
            Some(EncryptionAlgorithmSpec::RsaesOaepSha256)
        }
        _ => None,
    }
}

pub fn signing(algorithm: Algorithm) -> Option<SigningAlgorithmSpec> {
    use Algorithm::*;
    match algorithm {
        Rsa2048Pss | Rsa3072Pss | Rsa4096Pss => Some(SigningAlgorithmSpec::RsassaPssSha256),
        Rsa2048Pkcs1 | Rsa3072Pkcs1 | Rsa4096Pkcs1 => {
            Some(SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
        }
        EcdsaP256 => Some(SigningAlgorithmSpec::EcdsaSha256),
        EcdsaP384 => Some(SigningAlgorithmSpec::EcdsaSha384),
        _ => None,
    }
}

pub fn mac(algorithm: Algorithm) -> Option<MacAlgorithmSpec> {
    (algorithm == Algorithm::HmacSha256).then_some(MacAlgorithmSpec::HmacSha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_algorithm_round_trips() {
        for a in SUPPORTED {
            let (spec, usage) = key_spec(a).expect("supported algorithms have a key spec");
            assert_eq!(from_kms(&spec, &usage, Some(a)), Some(a), "{a}");
        }
    }

    #[test]
    fn untagged_rsa_signing_keys_are_pss() {
        assert_eq!(
            from_kms(&KeySpec::Rsa2048, &KeyUsageType::SignVerify, None),
            Some(Algorithm::Rsa2048Pss)
        );
    }
}
