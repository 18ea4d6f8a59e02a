//! keygate's algorithm vocabulary mapped to Cloud KMS purposes and algorithms.

use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose as Purpose;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionAlgorithm as Alg;
use keygate_provider::Algorithm;

/// Every algorithm this provider offers.
pub const SUPPORTED: [Algorithm; 7] = [
    Algorithm::Aes256Gcm,
    Algorithm::EcdsaP256,
    Algorithm::EcdsaP384,
    Algorithm::Rsa2048Pss,
    Algorithm::Rsa3072Pss,
    Algorithm::Rsa3072Oaep,
    Algorithm::HmacSha256,
];

/// Cloud KMS's limit on a plaintext, its associated data and MAC data: 64 KiB.
pub const MAX_INPUT: usize = 64 * 1024;

/// The purpose and version algorithm a keygate algorithm is created with.
pub fn to_gcp(algorithm: Algorithm) -> Option<(Purpose, Alg)> {
    use Algorithm::*;
    Some(match algorithm {
        Aes256Gcm => (Purpose::EncryptDecrypt, Alg::GoogleSymmetricEncryption),
        EcdsaP256 => (Purpose::AsymmetricSign, Alg::EcSignP256Sha256),
        EcdsaP384 => (Purpose::AsymmetricSign, Alg::EcSignP384Sha384),
        Rsa2048Pss => (Purpose::AsymmetricSign, Alg::RsaSignPss2048Sha256),
        Rsa3072Pss => (Purpose::AsymmetricSign, Alg::RsaSignPss3072Sha256),
        Rsa3072Oaep => (Purpose::AsymmetricDecrypt, Alg::RsaDecryptOaep3072Sha256),
        HmacSha256 => (Purpose::Mac, Alg::HmacSha256),
        _ => return None,
    })
}

/// The keygate algorithm of a Cloud KMS version algorithm, if keygate has one.
pub fn from_gcp(algorithm: &Alg) -> Option<Algorithm> {
    SUPPORTED
        .into_iter()
        .find(|a| to_gcp(*a).is_some_and(|(_, g)| &g == algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_algorithm_round_trips() {
        for a in SUPPORTED {
            let (_, alg) = to_gcp(a).expect("supported");
            assert_eq!(from_gcp(&alg), Some(a));
        }
        assert_eq!(from_gcp(&Alg::RsaSignPkcs12048Sha256), None);
        assert!(to_gcp(Algorithm::Ed25519).is_none());
    }
}
