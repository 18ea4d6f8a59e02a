//! Key material per algorithm: generating it (as bytes to seal) and loading it into the
//! aws-lc-rs objects that do the work.

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use aws_lc_rs::{digest, hmac, rand::SystemRandom};
use keygate_provider::{Algorithm, SecretBytes, SignInput};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why an operation on loaded material failed; the provider turns it into a `ProviderError`.
#[derive(Debug)]
pub enum MaterialError {
    /// Ciphertext or tag did not authenticate, or is malformed.
    Authentication,
    /// The input cannot be used with this algorithm (size, digest length).
    Invalid(String),
    /// The operation does not fit the key's purpose.
    WrongPurpose(&'static str),
    /// aws-lc-rs failed where it should not.
    Crypto(&'static str),
}

/// One version's key, ready to use. Each lives behind an `Arc` in the provider, so the size
/// difference between variants costs nothing per call.
#[allow(clippy::large_enum_variant)]
pub enum LoadedKey {
    Aes(RandomizedNonceKey),
    RsaOaep {
        private: OaepPrivateDecryptingKey,
        public: OaepPublicEncryptingKey,
        spki: Vec<u8>,
    },
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    RsaSign(signature::RsaKeyPair),
    Hmac(hmac::Key),
}

fn unloadable<E>(_: E) -> MaterialError {
    MaterialError::Crypto("stored key material does not load")
}

fn rsa_size(bits: u32) -> Result<KeySize, MaterialError> {
    match bits {
        2048 => Ok(KeySize::Rsa2048),
        3072 => Ok(KeySize::Rsa3072),
        4096 => Ok(KeySize::Rsa4096),
        _ => Err(MaterialError::Invalid(format!(
            "unsupported RSA size {bits}"
        ))),
    }
}

fn ecdsa_alg(algorithm: Algorithm) -> Option<&'static signature::EcdsaSigningAlgorithm> {
    match algorithm {
        Algorithm::EcdsaP256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        Algorithm::EcdsaP384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        _ => None,
    }
}

/// The algorithms this provider implements.
pub const SUPPORTED: [Algorithm; 14] = [
    Algorithm::Aes256Gcm,
    Algorithm::Rsa2048Oaep,
    Algorithm::Rsa3072Oaep,
    Algorithm::Rsa4096Oaep,
    Algorithm::EcdsaP256,
    Algorithm::EcdsaP384,
    Algorithm::Ed25519,
    Algorithm::Rsa2048Pss,
    Algorithm::Rsa3072Pss,
    Algorithm::Rsa4096Pss,
    Algorithm::Rsa2048Pkcs1,
    Algorithm::Rsa3072Pkcs1,
    Algorithm::Rsa4096Pkcs1,
    Algorithm::HmacSha256,
];

/// Fresh material: raw bytes for symmetric keys, PKCS#8 DER for asymmetric ones.
/// RSA generation takes up to seconds: call from a blocking thread.
pub fn generate(algorithm: Algorithm) -> Result<SecretBytes, MaterialError> {
    let fail = |_| MaterialError::Crypto("key generation failed");
    match algorithm {
        Algorithm::Aes256Gcm | Algorithm::HmacSha256 => {
            crate::master_key::random_secret(32).map_err(fail)
        }
        Algorithm::EcdsaP256 | Algorithm::EcdsaP384 => {
            let alg = ecdsa_alg(algorithm).ok_or(MaterialError::Crypto("no curve"))?;
            let doc = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).map_err(fail)?;
            Ok(SecretBytes::copy_from(doc.as_ref()))
        }
        Algorithm::Ed25519 => {
            let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(fail)?;
            Ok(SecretBytes::copy_from(doc.as_ref()))
        }
        Algorithm::Rsa2048Oaep | Algorithm::Rsa3072Oaep | Algorithm::Rsa4096Oaep => {
            let size = rsa_size(algorithm.rsa_bits().unwrap_or_default())?;
            let key = PrivateDecryptingKey::generate(size).map_err(fail)?;
            let der: Pkcs8V1Der = key.as_der().map_err(fail)?;
            Ok(SecretBytes::copy_from(der.as_ref()))
        }
        a if a.rsa_bits().is_some() => {
            let size = rsa_size(a.rsa_bits().unwrap_or_default())?;
            let key = signature::RsaKeyPair::generate(size).map_err(fail)?;
            let der: Pkcs8V1Der = key.as_der().map_err(fail)?;
            Ok(SecretBytes::copy_from(der.as_ref()))
        }
        other => Err(MaterialError::Invalid(format!(
            "the local provider does not implement {other}"
        ))),
    }
}

impl LoadedKey {
    pub fn load(algorithm: Algorithm, material: &SecretBytes) -> Result<Self, MaterialError> {
        let m = material.expose();
        Ok(match algorithm {
            Algorithm::Aes256Gcm => {
                LoadedKey::Aes(RandomizedNonceKey::new(&AES_256_GCM, m).map_err(unloadable)?)
            }
            Algorithm::HmacSha256 => LoadedKey::Hmac(hmac::Key::new(hmac::HMAC_SHA256, m)),
            Algorithm::EcdsaP256 | Algorithm::EcdsaP384 => {
                let alg = ecdsa_alg(algorithm).ok_or(MaterialError::Crypto("no curve"))?;
                LoadedKey::Ecdsa(EcdsaKeyPair::from_pkcs8(alg, m).map_err(unloadable)?)
            }
            Algorithm::Ed25519 => {
                LoadedKey::Ed25519(Ed25519KeyPair::from_pkcs8(m).map_err(unloadable)?)
            }
            Algorithm::Rsa2048Oaep | Algorithm::Rsa3072Oaep | Algorithm::Rsa4096Oaep => {
                let private = PrivateDecryptingKey::from_pkcs8(m).map_err(unloadable)?;
                let public_key = private.public_key();
                let spki: PublicKeyX509Der = public_key.as_der().map_err(unloadable)?;
                let spki = spki.as_ref().to_vec();
                LoadedKey::RsaOaep {
                    public: OaepPublicEncryptingKey::new(public_key).map_err(unloadable)?,
                    private: OaepPrivateDecryptingKey::new(private).map_err(unloadable)?,
                    spki,
                }
            }
            a if a.rsa_bits().is_some() => {
                LoadedKey::RsaSign(signature::RsaKeyPair::from_pkcs8(m).map_err(unloadable)?)
            }
            other => {
                return Err(MaterialError::Invalid(format!(
                    "the local provider does not implement {other}"
                )));
            }
        })
    }

    /// AES-GCM: nonce ‖ ciphertext ‖ tag. RSA-OAEP: the OAEP block (AAD, if any, is the label).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, MaterialError> {
        match self {
            LoadedKey::Aes(key) => {
                let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
                out.extend_from_slice(&[0u8; NONCE_LEN]);
                out.extend_from_slice(plaintext);
                let mut body = out.split_off(NONCE_LEN);
                let nonce = key
                    .seal_in_place_append_tag(Aad::from(aad), &mut body)
                    .map_err(|_| MaterialError::Crypto("AES-GCM seal failed"))?;
                out.copy_from_slice(nonce.as_ref());
                out.extend_from_slice(&body);
                Ok(out)
            }
            LoadedKey::RsaOaep { public, .. } => {
                let max = public.max_plaintext_size(&OAEP_SHA256_MGF1SHA256);
                if plaintext.len() > max {
                    return Err(MaterialError::Invalid(format!(
                        "plaintext is {} bytes; RSA-OAEP-SHA256 with this key takes at most {max}",
                        plaintext.len()
                    )));
                }
                let mut out = vec![0u8; public.ciphertext_size()];
                let label = (!aad.is_empty()).then_some(aad);
                let len = public
                    .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, label)
                    .map_err(|_| MaterialError::Crypto("RSA-OAEP encrypt failed"))?
                    .len();
                out.truncate(len);
                Ok(out)
            }
            _ => Err(MaterialError::WrongPurpose("encrypt")),
        }
    }

    pub fn decrypt(&self, blob: &[u8], aad: &[u8]) -> Result<SecretBytes, MaterialError> {
        match self {
            LoadedKey::Aes(key) => {
                if blob.len() < NONCE_LEN + TAG_LEN {
                    return Err(MaterialError::Authentication);
                }
                let nonce = Nonce::try_assume_unique_for_key(&blob[..NONCE_LEN])
                    .map_err(|_| MaterialError::Authentication)?;
                let mut buf = SecretBytes::copy_from(&blob[NONCE_LEN..]);
                let len = key
                    .open_in_place(nonce, Aad::from(aad), buf.expose_mut())
                    .map_err(|_| MaterialError::Authentication)?
                    .len();
                buf.expose_mut().truncate(len);
                Ok(buf)
            }
            LoadedKey::RsaOaep { private, .. } => {
                if blob.len() != private.key_size_bytes() {
                    return Err(MaterialError::Authentication);
                }
                let mut out = SecretBytes::zeroed(private.min_output_size());
                let label = (!aad.is_empty()).then_some(aad);
                let len = private
                    .decrypt(&OAEP_SHA256_MGF1SHA256, blob, out.expose_mut(), label)
                    .map_err(|_| MaterialError::Authentication)?
                    .len();
                out.expose_mut().truncate(len);
                Ok(out)
            }
            _ => Err(MaterialError::WrongPurpose("decrypt")),
        }
    }

    pub fn sign(
        &self,
        algorithm: Algorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>, MaterialError> {
        let fail = |_| MaterialError::Crypto("signing failed");
        match (self, input) {
            (LoadedKey::Ecdsa(key), SignInput::Message(m)) => Ok(key
                .sign(&SystemRandom::new(), m)
                .map_err(fail)?
                .as_ref()
                .to_vec()),
            (LoadedKey::Ecdsa(key), SignInput::Digest(d)) => {
                let digest = digest_of(algorithm, d)?;
                Ok(key.sign_digest(&digest).map_err(fail)?.as_ref().to_vec())
            }
            (LoadedKey::Ed25519(key), SignInput::Message(m)) => Ok(key.sign(m).as_ref().to_vec()),
            (LoadedKey::Ed25519(_), SignInput::Digest(_)) => Err(MaterialError::Invalid(
                "ed25519 signs the message itself; send the message, not a digest".into(),
            )),
            (LoadedKey::RsaSign(key), input) => {
                let encoding = rsa_encoding(algorithm)?;
                let mut sig = vec![0u8; key.public_modulus_len()];
                match input {
                    SignInput::Message(m) => key
                        .sign(encoding, &SystemRandom::new(), m, &mut sig)
                        .map_err(fail)?,
                    SignInput::Digest(d) => key
                        .sign_digest(encoding, &digest_of(algorithm, d)?, &mut sig)
                        .map_err(fail)?,
                }
                Ok(sig)
            }
            _ => Err(MaterialError::WrongPurpose("sign")),
        }
    }

    pub fn verify(
        &self,
        algorithm: Algorithm,
        input: SignInput<'_>,
        sig: &[u8],
    ) -> Result<bool, MaterialError> {
        let public = self.public_key_der()?;
        let raw = keygate_provider::spki_public_key_bits(&public)
            .ok_or(MaterialError::Crypto("public key encoding"))?;
        let alg: &'static dyn signature::VerificationAlgorithm = match algorithm {
            Algorithm::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
            Algorithm::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::Rsa2048Pss | Algorithm::Rsa3072Pss | Algorithm::Rsa4096Pss => {
                &signature::RSA_PSS_2048_8192_SHA256
            }
            Algorithm::Rsa2048Pkcs1 | Algorithm::Rsa3072Pkcs1 | Algorithm::Rsa4096Pkcs1 => {
                &signature::RSA_PKCS1_2048_8192_SHA256
            }
            _ => return Err(MaterialError::WrongPurpose("verify")),
        };
        let key = signature::UnparsedPublicKey::new(alg, raw);
        Ok(match input {
            SignInput::Message(m) => key.verify(m, sig).is_ok(),
            SignInput::Digest(d) => {
                if algorithm == Algorithm::Ed25519 {
                    return Err(MaterialError::Invalid(
                        "ed25519 verifies the message itself; send the message, not a digest"
                            .into(),
                    ));
                }
                key.verify_digest(&digest_of(algorithm, d)?, sig).is_ok()
            }
        })
    }

    pub fn public_key_der(&self) -> Result<Vec<u8>, MaterialError> {
        let fail = |_| MaterialError::Crypto("public key encoding failed");
        match self {
            LoadedKey::Ecdsa(k) => {
                let der: PublicKeyX509Der = k.public_key().as_der().map_err(fail)?;
                Ok(der.as_ref().to_vec())
            }
            LoadedKey::Ed25519(k) => {
                let der: PublicKeyX509Der = k.public_key().as_der().map_err(fail)?;
                Ok(der.as_ref().to_vec())
            }
            LoadedKey::RsaSign(k) => {
                let der: PublicKeyX509Der = k.public_key().as_der().map_err(fail)?;
                Ok(der.as_ref().to_vec())
            }
            LoadedKey::RsaOaep { spki, .. } => Ok(spki.clone()),
            LoadedKey::Aes(_) | LoadedKey::Hmac(_) => Err(MaterialError::WrongPurpose(
                "get a public key (symmetric keys have none)",
            )),
        }
    }

    pub fn mac(&self, message: &[u8]) -> Result<Vec<u8>, MaterialError> {
        match self {
            LoadedKey::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            _ => Err(MaterialError::WrongPurpose("generate a MAC")),
        }
    }

    pub fn verify_mac(&self, message: &[u8], tag: &[u8]) -> Result<bool, MaterialError> {
        match self {
            // Constant-time comparison inside aws-lc-rs.
            LoadedKey::Hmac(key) => Ok(hmac::verify(key, message, tag).is_ok()),
            _ => Err(MaterialError::WrongPurpose("verify a MAC")),
        }
    }
}

fn rsa_encoding(
    algorithm: Algorithm,
) -> Result<&'static signature::RsaSignatureEncoding, MaterialError> {
    match algorithm {
        Algorithm::Rsa2048Pss | Algorithm::Rsa3072Pss | Algorithm::Rsa4096Pss => {
            Ok(&signature::RSA_PSS_SHA256)
        }
        Algorithm::Rsa2048Pkcs1 | Algorithm::Rsa3072Pkcs1 | Algorithm::Rsa4096Pkcs1 => {
            Ok(&signature::RSA_PKCS1_SHA256)
        }
        _ => Err(MaterialError::WrongPurpose("sign")),
    }
}

/// Wraps a caller's digest for aws-lc-rs after checking its length against the algorithm's hash.
fn digest_of(algorithm: Algorithm, bytes: &[u8]) -> Result<digest::Digest, MaterialError> {
    let (alg, name) = match algorithm {
        Algorithm::EcdsaP384 => (&digest::SHA384, "SHA-384"),
        _ => (&digest::SHA256, "SHA-256"),
    };
    if bytes.len() != alg.output_len() {
        return Err(MaterialError::Invalid(format!(
            "digest is {} bytes; {algorithm} takes a {} digest of {} bytes",
            bytes.len(),
            name,
            alg.output_len()
        )));
    }
    digest::Digest::import_less_safe(bytes, alg)
        .map_err(|_| MaterialError::Invalid("digest does not import".into()))
}
