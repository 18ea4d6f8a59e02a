//! Hash-before-sign, for backends that sign digests only (PKCS#11's CKM_ECDSA, KMS for long
//! messages): messages are hashed here with the algorithm's hash, caller digests checked.

use super::Op;
use crate::{Algorithm, KeyPurpose, ProviderError, Result, SignInput, VersionRef};
use aws_lc_rs::digest;

/// The hash a signature algorithm signs with: SHA-384 for P-384, SHA-256 for the other
/// signing algorithms; `None` for Ed25519 (it signs the message itself) and non-signing keys.
pub fn digest_algorithm(algorithm: Algorithm) -> Option<&'static digest::Algorithm> {
    match algorithm.digest_len() {
        Some(48) => Some(&digest::SHA384),
        Some(_) => Some(&digest::SHA256),
        None => None,
    }
}

/// `InvalidInput` unless `digest` is as long as `key`'s algorithm's hash.
pub fn check_digest(provider: &str, op: Op, key: &VersionRef, digest: &[u8]) -> Result<()> {
    let a = key.algorithm;
    match a.digest_len() {
        Some(len) if digest.len() == len => Ok(()),
        Some(len) => Err(ProviderError::invalid(
            provider,
            format!(
                "{op} with {}: a {a} digest is {len} bytes, got {}",
                key.uri,
                digest.len()
            ),
        )),
        None if a.purpose() == KeyPurpose::Sign => Err(ProviderError::invalid(
            provider,
            format!("{op} with {}: {a} signs messages, not digests", key.uri),
        )),
        None => Err(ProviderError::precondition(
            provider,
            format!("{op} with {}: {a} keys do not sign", key.uri),
        )),
    }
}

/// The digest to hand a digest-only backend: the message hashed, or the caller's digest
/// once checked.
pub fn prehash(provider: &str, op: Op, key: &VersionRef, input: SignInput<'_>) -> Result<Vec<u8>> {
    match input {
        SignInput::Digest(d) => check_digest(provider, op, key, d).map(|()| d.to_vec()),
        SignInput::Message(m) => match digest_algorithm(key.algorithm) {
            Some(alg) => Ok(digest::digest(alg, m).as_ref().to_vec()),
            None => Err(ProviderError::unsupported(
                provider,
                format!(
                    "{op} with {} keys on a backend that signs digests only",
                    key.algorithm
                ),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyUri;

    fn key(algorithm: Algorithm) -> VersionRef {
        VersionRef {
            uri: KeyUri::new("pkcs11:token=t;object=k"),
            algorithm,
            version: 1,
            provider_version: "v".into(),
        }
    }

    #[test]
    fn messages_are_hashed_with_the_algorithms_hash() {
        let p256 = prehash(
            "p",
            Op::Sign,
            &key(Algorithm::EcdsaP256),
            SignInput::Message(b"m"),
        );
        assert_eq!(p256.unwrap().len(), 32);
        let p384 = prehash(
            "p",
            Op::Sign,
            &key(Algorithm::EcdsaP384),
            SignInput::Message(b"m"),
        );
        assert_eq!(p384.unwrap().len(), 48);
    }

    #[test]
    fn digests_of_the_wrong_length_are_refused() {
        let k = key(Algorithm::Rsa2048Pss);
        assert!(prehash("p", Op::Sign, &k, SignInput::Digest(&[0; 32])).is_ok());
        let err = prehash("p", Op::Verify, &k, SignInput::Digest(&[0; 20])).unwrap_err();
        assert_eq!(err.kind(), "invalid_input");
        assert!(
            err.to_string().contains("digest is 32 bytes, got 20"),
            "{err}"
        );
        let ed = key(Algorithm::Ed25519);
        assert_eq!(
            prehash("p", Op::Sign, &ed, SignInput::Digest(&[0; 32]))
                .unwrap_err()
                .kind(),
            "invalid_input"
        );
    }
}
