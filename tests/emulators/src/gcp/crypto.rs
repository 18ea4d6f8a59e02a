//! Real cryptography behind each Cloud KMS algorithm the emulator offers.
//!
//! Symmetric ciphertexts carry the key version number in a small header so
//! decrypt finds the version by itself, as Cloud KMS ciphertexts do.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    RsaKeyPair,
};
use aws_lc_rs::{constant_time, hmac};

/// Marks the emulator's symmetric ciphertext layout:
/// `[FORMAT][version u32 BE][nonce 12][ciphertext || tag 16]`.
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// Key material of one key version. Destroyed versions hold `None`.
#[derive(Clone)]
pub enum Material {
    Aes256([u8; 32]),
    Ec { pkcs8: Vec<u8>, p384: bool },
    RsaSign { pkcs8: Vec<u8> },
    RsaDecrypt { pkcs8: Vec<u8> },
    Hmac([u8; 32]),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Material(redacted)")
    }
}

/// Generic crypto failure; callers map it to the API's own error.
#[derive(Debug, Clone, Copy)]
pub struct CryptoError;

impl From<aws_lc_rs::error::Unspecified> for CryptoError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        CryptoError
    }
}

impl From<aws_lc_rs::error::KeyRejected> for CryptoError {
    fn from(_: aws_lc_rs::error::KeyRejected) -> Self {
        CryptoError
    }
}

fn random32() -> Result<[u8; 32], CryptoError> {
    let mut k = [0u8; 32];
    SystemRandom::new().fill(&mut k)?;
    Ok(k)
}

/// Generates material for a Cloud KMS algorithm name.
pub fn generate(algorithm: &str) -> Result<Material, CryptoError> {
    let rng = SystemRandom::new();
    Ok(match algorithm {
        "GOOGLE_SYMMETRIC_ENCRYPTION" => Material::Aes256(random32()?),
        "HMAC_SHA256" => Material::Hmac(random32()?),
        "EC_SIGN_P256_SHA256" => Material::Ec {
            pkcs8: EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)?
                .as_ref()
                .to_vec(),
            p384: false,
        },
        "EC_SIGN_P384_SHA384" => Material::Ec {
            pkcs8: EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng)?
                .as_ref()
                .to_vec(),
            p384: true,
        },
        "RSA_SIGN_PSS_2048_SHA256" => Material::RsaSign {
            pkcs8: rsa_pkcs8(KeySize::Rsa2048)?,
        },
        "RSA_SIGN_PSS_3072_SHA256" => Material::RsaSign {
            pkcs8: rsa_pkcs8(KeySize::Rsa3072)?,
        },
        "RSA_DECRYPT_OAEP_3072_SHA256" => Material::RsaDecrypt {
            pkcs8: PrivateDecryptingKey::generate(KeySize::Rsa3072)?
                .as_der()?
                .as_ref()
                .to_vec(),
        },
        _ => return Err(CryptoError),
    })
}

fn rsa_pkcs8(size: KeySize) -> Result<Vec<u8>, CryptoError> {
    Ok(RsaKeyPair::generate(size)?.as_der()?.as_ref().to_vec())
}

/// AES-256-GCM seal; `binding` (the crypto key's name) is folded into the
/// AAD so a ciphertext never opens under another key.
pub fn encrypt(
    material: &Material,
    version: u32,
    binding: &str,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let Material::Aes256(key) = material else {
        return Err(CryptoError);
    };
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key)?);
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce)?;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
    out.push(FORMAT);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    let full_aad = bound_aad(binding, aad);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&full_aad),
        &mut body,
    )?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The version number a symmetric ciphertext was made with.
pub fn ciphertext_version(ciphertext: &[u8]) -> Option<u32> {
    if ciphertext.len() < HEADER_LEN + 16 || ciphertext[0] != FORMAT {
        return None;
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&ciphertext[1..5]);
    Some(u32::from_be_bytes(v))
}

pub fn decrypt(
    material: &Material,
    binding: &str,
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let Material::Aes256(key) = material else {
        return Err(CryptoError);
    };
    if ciphertext_version(ciphertext).is_none() {
        return Err(CryptoError);
    }
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key)?);
    let nonce = Nonce::try_assume_unique_for_key(&ciphertext[5..HEADER_LEN])?;
    let mut body = ciphertext[HEADER_LEN..].to_vec();
    let full_aad = bound_aad(binding, aad);
    let plain = key.open_in_place(nonce, Aad::from(&full_aad), &mut body)?;
    Ok(plain.to_vec())
}

fn bound_aad(binding: &str, aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(binding.len() + 1 + aad.len());
    v.extend_from_slice(binding.as_bytes());
    v.push(0);
    v.extend_from_slice(aad);
    v
}

/// The digest algorithm an asymmetric signing algorithm expects.
pub fn digest_alg(algorithm: &str) -> Option<(&'static str, &'static digest::Algorithm)> {
    match algorithm {
        "EC_SIGN_P384_SHA384" => Some(("sha384", &digest::SHA384)),
        "EC_SIGN_P256_SHA256" | "RSA_SIGN_PSS_2048_SHA256" | "RSA_SIGN_PSS_3072_SHA256" => {
            Some(("sha256", &digest::SHA256))
        }
        _ => None,
    }
}

/// Signs a pre-computed digest: ECDSA (DER signature) or RSA-PSS (salt = hash length).
pub fn sign_digest(material: &Material, digest: &Digest) -> Result<Vec<u8>, CryptoError> {
    match material {
        Material::Ec { pkcs8, p384 } => {
            let alg = if *p384 {
                &ECDSA_P384_SHA384_ASN1_SIGNING
            } else {
                &ECDSA_P256_SHA256_ASN1_SIGNING
            };
            let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8)?;
            Ok(kp.sign_digest(digest)?.as_ref().to_vec())
        }
        Material::RsaSign { pkcs8 } => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8)?;
            let mut sig = vec![0u8; kp.public_modulus_len()];
            kp.sign_digest(&signature::RSA_PSS_SHA256, digest, &mut sig)?;
            Ok(sig)
        }
        _ => Err(CryptoError),
    }
}

/// RSA-OAEP (SHA-256, MGF1-SHA-256, no label) decryption.
pub fn asymmetric_decrypt(material: &Material, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let Material::RsaDecrypt { pkcs8 } = material else {
        return Err(CryptoError);
    };
    let key = OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8)?)?;
    let mut out = vec![0u8; key.min_output_size()];
    let plain = key.decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)?;
    Ok(plain.to_vec())
}

/// The SubjectPublicKeyInfo DER of an asymmetric version.
pub fn public_key_der(material: &Material) -> Result<Vec<u8>, CryptoError> {
    match material {
        Material::Ec { pkcs8, p384 } => {
            let alg = if *p384 {
                &ECDSA_P384_SHA384_ASN1_SIGNING
            } else {
                &ECDSA_P256_SHA256_ASN1_SIGNING
            };
            let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8)?;
            Ok(kp.public_key().as_der()?.as_ref().to_vec())
        }
        Material::RsaSign { pkcs8 } => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8)?;
            Ok(kp.public_key().as_der()?.as_ref().to_vec())
        }
        Material::RsaDecrypt { pkcs8 } => {
            let key = PrivateDecryptingKey::from_pkcs8(pkcs8)?;
            Ok(key.public_key().as_der()?.as_ref().to_vec())
        }
        _ => Err(CryptoError),
    }
}

pub fn mac_sign(material: &Material, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let Material::Hmac(k) = material else {
        return Err(CryptoError);
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, k);
    Ok(hmac::sign(&key, data).as_ref().to_vec())
}

pub fn mac_verify(material: &Material, data: &[u8], mac: &[u8]) -> Result<bool, CryptoError> {
    let expected = mac_sign(material, data)?;
    Ok(constant_time::verify_slices_are_equal(&expected, mac).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_round_trip_is_bound_to_key_and_aad() {
        let m = generate("GOOGLE_SYMMETRIC_ENCRYPTION").expect("generate");
        let ct = encrypt(&m, 7, "k1", b"hello", b"aad").expect("encrypt");
        assert_eq!(ciphertext_version(&ct), Some(7));
        assert_eq!(decrypt(&m, "k1", &ct, b"aad").expect("decrypt"), b"hello");
        assert!(decrypt(&m, "k2", &ct, b"aad").is_err());
        assert!(decrypt(&m, "k1", &ct, b"other").is_err());
    }

    #[test]
    fn ec_signature_verifies_with_the_public_key() {
        let m = generate("EC_SIGN_P256_SHA256").expect("generate");
        let d = digest::digest(&digest::SHA256, b"msg");
        let sig = sign_digest(&m, &d).expect("sign");
        let Material::Ec { pkcs8, .. } = &m else {
            panic!("wrong material")
        };
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).expect("kp");
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_ASN1,
            kp.public_key().as_ref(),
        )
        .verify(b"msg", &sig)
        .expect("verifies");
    }
}
