//! Real cryptography behind Key Vault's RSA and EC keys: generation, JWK
//! import/export, RSA encryption/wrapping and digest signing/verification.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsBigEndian, AsDer, EcPrivateKeyBin};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    self, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey,
    PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, RsaKeyPair};

/// Private key material of one key version.
#[derive(Clone)]
pub enum Material {
    /// PKCS#8 DER of an RSA key (one key serves signing and decryption).
    Rsa { pkcs8: Vec<u8> },
    /// PKCS#8 DER of an EC key on `curve` ("P-256" or "P-384").
    Ec { pkcs8: Vec<u8>, curve: &'static str },
    /// An AES key (Managed HSM `oct-HSM`).
    Oct { key: Vec<u8> },
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Material(redacted)")
    }
}

/// Why a crypto call failed, in words fit for a Key Vault error message.
#[derive(Debug, Clone)]
pub struct CryptoError(pub String);

fn fail(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> CryptoError + '_ {
    move |_| CryptoError(what.to_string())
}

fn rejected(what: &str) -> impl Fn(aws_lc_rs::error::KeyRejected) -> CryptoError + '_ {
    move |e| CryptoError(format!("{what}: {e}"))
}

fn ec_signing(curve: &str) -> Option<&'static EcdsaSigningAlgorithm> {
    match curve {
        "P-256" => Some(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
        "P-384" => Some(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

pub fn generate_rsa(bits: i64) -> Result<Material, CryptoError> {
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        other => {
            return Err(CryptoError(format!(
                "RSA key size {other} is not supported; use 2048, 3072 or 4096."
            )));
        }
    };
    let kp = RsaKeyPair::generate(size).map_err(fail("RSA key generation failed"))?;
    let pkcs8 = kp.as_der().map_err(fail("RSA key encoding failed"))?;
    Ok(Material::Rsa {
        pkcs8: pkcs8.as_ref().to_vec(),
    })
}

pub fn generate_ec(curve: &str) -> Result<Material, CryptoError> {
    let (alg, curve) = match curve {
        "P-256" => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256"),
        "P-384" => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384"),
        other => {
            return Err(CryptoError(format!(
                "Curve {other} is not supported; use P-256 or P-384."
            )));
        }
    };
    let doc = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
        .map_err(fail("EC key generation failed"))?;
    Ok(Material::Ec {
        pkcs8: doc.as_ref().to_vec(),
        curve,
    })
}

/// The private RSA components of a JWK, big-endian.
pub struct RsaJwk<'a> {
    pub n: &'a [u8],
    pub e: &'a [u8],
    pub d: &'a [u8],
    pub p: &'a [u8],
    pub q: &'a [u8],
    pub dp: &'a [u8],
    pub dq: &'a [u8],
    pub qi: &'a [u8],
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

pub fn import_rsa(jwk: &RsaJwk<'_>) -> Result<Material, CryptoError> {
    let components = rsa::KeyPairComponents {
        public_key: rsa::PublicKeyComponents {
            n: strip_zeros(jwk.n),
            e: strip_zeros(jwk.e),
        },
        d: jwk.d,
        p: jwk.p,
        q: jwk.q,
        dP: jwk.dp,
        dQ: jwk.dq,
        qInv: jwk.qi,
    };
    let kp = RsaKeyPair::from_components(&components).map_err(rejected("Invalid RSA key"))?;
    let bits = kp.public_modulus_len() * 8;
    if !matches!(bits, 2048 | 3072 | 4096) {
        return Err(CryptoError(format!(
            "RSA key size {bits} is not supported; use 2048, 3072 or 4096."
        )));
    }
    let pkcs8 = kp.as_der().map_err(fail("RSA key encoding failed"))?;
    Ok(Material::Rsa {
        pkcs8: pkcs8.as_ref().to_vec(),
    })
}

pub fn import_ec(curve: &str, d: &[u8], x: &[u8], y: &[u8]) -> Result<Material, CryptoError> {
    let alg = ec_signing(curve).ok_or_else(|| {
        CryptoError(format!(
            "Curve {curve} is not supported; use P-256 or P-384."
        ))
    })?;
    let curve = if curve == "P-256" { "P-256" } else { "P-384" };
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(4);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    let kp = EcdsaKeyPair::from_private_key_and_public_key(alg, d, &point)
        .map_err(rejected("Invalid EC key"))?;
    let pkcs8 = kp.to_pkcs8v1().map_err(fail("EC key encoding failed"))?;
    Ok(Material::Ec {
        pkcs8: pkcs8.as_ref().to_vec(),
        curve,
    })
}

/// Public JWK members: `("n", n), ("e", e)` for RSA, `("x", x), ("y", y)` for EC.
pub fn public_members(m: &Material) -> Result<Vec<(&'static str, Vec<u8>)>, CryptoError> {
    match m {
        Material::Rsa { pkcs8 } => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected("Stored RSA key"))?;
            let public = kp.public_key();
            Ok(vec![
                (
                    "n",
                    public.modulus().big_endian_without_leading_zero().to_vec(),
                ),
                (
                    "e",
                    public.exponent().big_endian_without_leading_zero().to_vec(),
                ),
            ])
        }
        Material::Ec { pkcs8, curve } => {
            let alg = ec_signing(curve).ok_or_else(|| CryptoError("unknown curve".into()))?;
            let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(rejected("Stored EC key"))?;
            let point = kp.public_key().as_ref();
            let coord = (point.len() - 1) / 2;
            Ok(vec![
                ("x", point[1..1 + coord].to_vec()),
                ("y", point[1 + coord..].to_vec()),
            ])
        }
        // A symmetric key has no public part, and its `k` never leaves the HSM.
        Material::Oct { .. } => Ok(Vec::new()),
    }
}

/// A private key transferred in PKCS#8 DER (BYOK): RSA 2048-4096, or EC P-256/P-384.
pub fn import_pkcs8(kty: &str, der: &[u8]) -> Result<Material, CryptoError> {
    if kty.starts_with("RSA") {
        let kp = RsaKeyPair::from_pkcs8(der).map_err(rejected("Invalid RSA key"))?;
        let bits = kp.public_modulus_len() * 8;
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(CryptoError(format!(
                "RSA key size {bits} is not supported; use 2048, 3072 or 4096."
            )));
        }
        let pkcs8 = kp.as_der().map_err(fail("RSA key encoding failed"))?;
        return Ok(Material::Rsa {
            pkcs8: pkcs8.as_ref().to_vec(),
        });
    }
    for curve in ["P-256", "P-384"] {
        let alg = ec_signing(curve).ok_or_else(|| CryptoError("unknown curve".into()))?;
        if let Ok(kp) = EcdsaKeyPair::from_pkcs8(alg, der) {
            let pkcs8 = kp.to_pkcs8v1().map_err(fail("EC key encoding failed"))?;
            return Ok(Material::Ec {
                pkcs8: pkcs8.as_ref().to_vec(),
                curve,
            });
        }
    }
    Err(CryptoError(
        "The transferred key is not a PKCS#8 EC key on P-256 or P-384.".into(),
    ))
}

/// For tests that cross-check: the EC private scalar is never exported by
/// the API, but JWK import needs one, so this helper stays crate-internal.
#[allow(dead_code)]
pub(crate) fn ec_private_scalar(m: &Material) -> Option<Vec<u8>> {
    let Material::Ec { pkcs8, curve } = m else {
        return None;
    };
    let kp = EcdsaKeyPair::from_pkcs8(ec_signing(curve)?, pkcs8).ok()?;
    let bin: EcPrivateKeyBin<'_> = kp.private_key().as_be_bytes().ok()?;
    Some(bin.as_ref().to_vec())
}

fn rsa_decrypting(pkcs8: &[u8]) -> Result<PrivateDecryptingKey, CryptoError> {
    PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(rejected("Stored RSA key"))
}

/// RSA encryption (also used for wrapKey) with `RSA-OAEP`, `RSA-OAEP-256` or `RSA1_5`.
pub fn rsa_encrypt(m: &Material, alg: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let Material::Rsa { pkcs8 } = m else {
        return Err(CryptoError("Encryption requires an RSA key.".into()));
    };
    let public = rsa_decrypting(pkcs8)?.public_key();
    let too_long = |_| CryptoError("The plaintext is too long for this key and algorithm.".into());
    match alg {
        "RSA-OAEP" | "RSA-OAEP-256" => {
            let oaep = if alg == "RSA-OAEP" {
                &OAEP_SHA1_MGF1SHA1
            } else {
                &OAEP_SHA256_MGF1SHA256
            };
            let key = OaepPublicEncryptingKey::new(public).map_err(fail("RSA key"))?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let ct = key
                .encrypt(oaep, plaintext, &mut out, None)
                .map_err(too_long)?;
            Ok(ct.to_vec())
        }
        "RSA1_5" => {
            let key = Pkcs1PublicEncryptingKey::new(public).map_err(fail("RSA key"))?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let ct = key.encrypt(plaintext, &mut out).map_err(too_long)?;
            Ok(ct.to_vec())
        }
        other => Err(CryptoError(format!(
            "Algorithm {other} is not supported for RSA keys."
        ))),
    }
}

pub fn rsa_decrypt(m: &Material, alg: &str, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let Material::Rsa { pkcs8 } = m else {
        return Err(CryptoError("Decryption requires an RSA key.".into()));
    };
    let private = rsa_decrypting(pkcs8)?;
    let bad = |_| {
        CryptoError(
            "Decryption failed: the ciphertext is invalid for this key and algorithm.".into(),
        )
    };
    match alg {
        "RSA-OAEP" | "RSA-OAEP-256" => {
            let oaep = if alg == "RSA-OAEP" {
                &OAEP_SHA1_MGF1SHA1
            } else {
                &OAEP_SHA256_MGF1SHA256
            };
            let key = OaepPrivateDecryptingKey::new(private).map_err(fail("RSA key"))?;
            let mut out = vec![0u8; key.min_output_size()];
            let pt = key.decrypt(oaep, ciphertext, &mut out, None).map_err(bad)?;
            Ok(pt.to_vec())
        }
        "RSA1_5" => {
            let key = Pkcs1PrivateDecryptingKey::new(private).map_err(fail("RSA key"))?;
            let mut out = vec![0u8; key.min_output_size()];
            let pt = key.decrypt(ciphertext, &mut out).map_err(bad)?;
            Ok(pt.to_vec())
        }
        other => Err(CryptoError(format!(
            "Algorithm {other} is not supported for RSA keys."
        ))),
    }
}

/// Digest algorithm, and for EC the curve, a JWS signature algorithm needs.
fn sig_spec(alg: &str) -> Option<(&'static digest::Algorithm, Option<&'static str>)> {
    Some(match alg {
        "RS256" | "PS256" => (&digest::SHA256, None),
        "RS384" | "PS384" => (&digest::SHA384, None),
        "RS512" | "PS512" => (&digest::SHA512, None),
        "ES256" => (&digest::SHA256, Some("P-256")),
        "ES384" => (&digest::SHA384, Some("P-384")),
        _ => return None,
    })
}

fn check_digest(m: &Material, alg: &str, digest_bytes: &[u8]) -> Result<Digest, CryptoError> {
    let (dalg, curve) = sig_spec(alg)
        .ok_or_else(|| CryptoError(format!("Signature algorithm {alg} is not supported.")))?;
    match (m, curve) {
        (Material::Rsa { .. }, None) => {}
        (Material::Ec { curve: have, .. }, Some(want)) if *have == want => {}
        (Material::Ec { curve: have, .. }, Some(_)) => {
            return Err(CryptoError(format!(
                "Signature algorithm {alg} does not match the key's curve {have}."
            )));
        }
        _ => {
            return Err(CryptoError(format!(
                "Signature algorithm {alg} does not match the key type."
            )));
        }
    }
    Digest::import_less_safe(digest_bytes, dalg).map_err(|_| {
        CryptoError(format!(
            "The digest is {} bytes; {alg} needs {} bytes.",
            digest_bytes.len(),
            dalg.output_len()
        ))
    })
}

/// Signs a digest. EC signatures are JWS-style fixed-width `r || s`.
pub fn sign(m: &Material, alg: &str, digest_bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let d = check_digest(m, alg, digest_bytes)?;
    match m {
        Material::Rsa { pkcs8 } => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected("Stored RSA key"))?;
            let enc: &'static dyn signature::RsaEncoding = match alg {
                "RS256" => &signature::RSA_PKCS1_SHA256,
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                _ => &signature::RSA_PSS_SHA512,
            };
            let mut sig = vec![0u8; kp.public_modulus_len()];
            kp.sign_digest(enc, &d, &mut sig)
                .map_err(fail("Signing failed"))?;
            Ok(sig)
        }
        Material::Ec { pkcs8, curve } => {
            let alg = ec_signing(curve).ok_or_else(|| CryptoError("unknown curve".into()))?;
            let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(rejected("Stored EC key"))?;
            Ok(kp
                .sign_digest(&d)
                .map_err(fail("Signing failed"))?
                .as_ref()
                .to_vec())
        }
        Material::Oct { .. } => Err(CryptoError("oct-HSM keys do not sign.".into())),
    }
}

/// Verifies a signature over a digest with the key's public half.
pub fn verify(
    m: &Material,
    alg: &str,
    digest_bytes: &[u8],
    sig: &[u8],
) -> Result<bool, CryptoError> {
    let d = check_digest(m, alg, digest_bytes)?;
    let (public, valg): (Vec<u8>, &'static dyn signature::VerificationAlgorithm) = match m {
        Material::Rsa { pkcs8 } => {
            let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected("Stored RSA key"))?;
            let der = kp
                .public_key()
                .as_der()
                .map_err(fail("RSA key encoding failed"))?;
            let valg: &'static dyn signature::VerificationAlgorithm = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            (der.as_ref().to_vec(), valg)
        }
        Material::Ec { pkcs8, curve } => {
            let salg = ec_signing(curve).ok_or_else(|| CryptoError("unknown curve".into()))?;
            let kp = EcdsaKeyPair::from_pkcs8(salg, pkcs8).map_err(rejected("Stored EC key"))?;
            let valg: &'static dyn signature::VerificationAlgorithm = if *curve == "P-256" {
                &signature::ECDSA_P256_SHA256_FIXED
            } else {
                &signature::ECDSA_P384_SHA384_FIXED
            };
            (kp.public_key().as_ref().to_vec(), valg)
        }
        Material::Oct { .. } => return Err(CryptoError("oct-HSM keys do not verify.".into())),
    };
    Ok(signature::UnparsedPublicKey::new(valg, &public)
        .verify_digest(&d, sig)
        .is_ok())
}

/// RSA modulus size in bits, or None for EC keys.
pub fn rsa_bits(m: &Material) -> Option<usize> {
    match m {
        Material::Rsa { pkcs8 } => RsaKeyPair::from_pkcs8(pkcs8)
            .ok()
            .map(|kp| kp.public_modulus_len() * 8),
        Material::Ec { .. } | Material::Oct { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_sign_verify_and_oaep_round_trip() {
        let m = generate_rsa(2048).expect("rsa");
        let d = digest::digest(&digest::SHA256, b"msg");
        for alg in ["RS256", "PS256"] {
            let sig = sign(&m, alg, d.as_ref()).expect("sign");
            assert!(verify(&m, alg, d.as_ref(), &sig).expect("verify"));
            assert!(!verify(&m, alg, d.as_ref(), &sig[1..]).expect("verify"));
        }
        for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"] {
            let ct = rsa_encrypt(&m, alg, b"secret").expect("encrypt");
            assert_eq!(rsa_decrypt(&m, alg, &ct).expect("decrypt"), b"secret");
        }
    }

    #[test]
    fn ec_keys_survive_a_jwk_round_trip() {
        let m = generate_ec("P-384").expect("ec");
        let members = public_members(&m).expect("public");
        let d = ec_private_scalar(&m).expect("scalar");
        let again = import_ec("P-384", &d, &members[0].1, &members[1].1).expect("import");
        let dg = digest::digest(&digest::SHA384, b"msg");
        let sig = sign(&again, "ES384", dg.as_ref()).expect("sign");
        assert_eq!(sig.len(), 96);
        assert!(verify(&m, "ES384", dg.as_ref(), &sig).expect("verify"));
        assert!(sign(&m, "ES256", dg.as_ref()).is_err());
    }
}
