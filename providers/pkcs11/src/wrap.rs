//! BYOK: wrapping a key on the token for import into another backend, with `C_WrapKey`, so the
//! key never exists in the clear outside the token.
//!
//! - Direct RSA-OAEP: the target key under the importer's RSA public key (secret keys only).
//! - Two-step CKM_RSA_AES_KEY_WRAP: an ephemeral AES-256 key generated on the token wraps the
//!   target with CKM_AES_KEY_WRAP_PAD (RFC 5649; private keys come out as PKCS#8), then the
//!   ephemeral key is wrapped with RSA-OAEP; the blob is `OAEP(ephemeral) || KWP(target)`.
//!
//! Tokens without CKM_RSA_AES_KEY_WRAP (SoftHSM2 2.6) get the two steps one by one. SoftHSM2's
//! CKM_RSA_PKCS_OAEP knows SHA-1 only: for a SHA-256 OAEP step the ephemeral key (never the
//! target) is made readable, read out, OAEP-wrapped here, and zeroized at once; the result
//! says so. A direct SHA-256 wrap would need the target itself out, so it is refused.

use crate::errors::OpError;
use crate::naming::VersionId;
use crate::ops;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use keygate_provider::{WrappingAlgorithm, der_tlv, spki_public_key_bits};
use zeroize::Zeroizing;

/// The importer's RSA public key as the token takes it.
struct RsaPublic<'a> {
    modulus: &'a [u8],
    exponent: &'a [u8],
}

/// An unsigned DER INTEGER's magnitude (its leading zero byte dropped).
fn magnitude(int: &[u8]) -> &[u8] {
    match int {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => int,
    }
}

/// Whether [`rsa_public`] takes `spki` (the fuzz target's entry).
pub(crate) fn rsa_public_for_fuzzing(spki: &[u8]) -> bool {
    rsa_public(spki).is_ok()
}

fn rsa_public(spki: &[u8]) -> Result<RsaPublic<'_>, OpError> {
    let bad = || OpError::Unsupported("the wrapping key is not a DER RSA public key".into());
    let bits = spki_public_key_bits(spki).ok_or_else(bad)?;
    let (tag, seq, _) = der_tlv(bits).ok_or_else(bad)?;
    let (t1, n, rest) = der_tlv(seq).ok_or_else(bad)?;
    let (t2, e, _) = der_tlv(rest).ok_or_else(bad)?;
    if tag != 0x30 || t1 != 0x02 || t2 != 0x02 {
        return Err(bad());
    }
    let modulus = magnitude(n);
    if !(2048..=4096).contains(&(modulus.len() * 8)) {
        return Err(OpError::Unsupported(format!(
            "a {}-bit RSA wrapping key (2048 to 4096 bits are accepted)",
            modulus.len() * 8
        )));
    }
    Ok(RsaPublic {
        modulus,
        exponent: magnitude(e),
    })
}

fn oaep_sha1() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ))
}

/// Session objects made for one wrap, destroyed however the wrap ends.
struct Scratch<'s> {
    session: &'s Session,
    handles: Vec<ObjectHandle>,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for handle in self.handles.drain(..) {
            // Session objects die with the session anyway; this only shortens their life.
            let _ = self.session.destroy_object(handle);
        }
    }
}

impl Scratch<'_> {
    fn import_rsa_public(&mut self, key: &RsaPublic<'_>) -> Result<ObjectHandle, OpError> {
        let handle = self.session.create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(false),
            Attribute::Private(false),
            Attribute::Wrap(true),
            Attribute::Encrypt(false),
            Attribute::Verify(false),
            Attribute::Modulus(key.modulus.to_vec()),
            Attribute::PublicExponent(key.exponent.to_vec()),
        ])?;
        self.handles.push(handle);
        Ok(handle)
    }

    /// An AES-256 session key that wraps the target; `readable` only when it must leave the
    /// token for a gateway-side OAEP step.
    fn ephemeral_aes(&mut self, readable: bool) -> Result<ObjectHandle, OpError> {
        let handle = self.session.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(!readable),
                Attribute::Extractable(true),
                Attribute::Wrap(true),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
            ],
        )?;
        self.handles.push(handle);
        Ok(handle)
    }
}

/// The secret-side object of a version (the secret key, or the private half).
fn target_object(session: &Session, key_id: &str, id: VersionId) -> Result<ObjectHandle, OpError> {
    let class = crate::mechanisms::secret_class(id.algorithm);
    ops::version_object(session, key_id, id, class)
}

/// Wraps one version of `key_id` for an importer whose RSA public key is `spki` (DER).
/// Returns the blob and whether the ephemeral AES key left the token.
pub fn wrap(
    session: &Session,
    key_id: &str,
    id: VersionId,
    wrapping: WrappingAlgorithm,
    spki: &[u8],
) -> Result<(Vec<u8>, bool), OpError> {
    let rsa = rsa_public(spki)?;
    let target = target_object(session, key_id, id)?;
    let mut scratch = Scratch {
        session,
        handles: Vec::new(),
    };
    if !wrapping.two_step() {
        if !id.algorithm.is_symmetric() {
            return Err(OpError::Unsupported(format!(
                "{wrapping} for a {} key: RSA-OAEP alone wraps only secret keys",
                id.algorithm
            )));
        }
        if !wrapping.oaep_sha1() {
            return Err(OpError::Unsupported(format!(
                "{wrapping}: the token's RSA-OAEP knows SHA-1 only, and the key may not leave it"
            )));
        }
        let public = scratch.import_rsa_public(&rsa)?;
        return Ok((session.wrap_key(&oaep_sha1(), public, target)?, false));
    }
    let in_gateway = !wrapping.oaep_sha1();
    let ephemeral = scratch.ephemeral_aes(in_gateway)?;
    let kwp = session.wrap_key(&Mechanism::AesKeyWrapPad, ephemeral, target)?;
    let head = if in_gateway {
        let value = Zeroizing::new(ops::get_bytes(session, ephemeral, AttributeType::Value)?);
        oaep_sha256(spki, &value)?
    } else {
        let public = scratch.import_rsa_public(&rsa)?;
        session.wrap_key(&oaep_sha1(), public, ephemeral)?
    };
    drop(scratch);
    let mut blob = head;
    blob.extend_from_slice(&kwp);
    Ok((blob, in_gateway))
}

/// RSA-OAEP-SHA-256 (MGF1-SHA-256, empty label) of the ephemeral key, here in the gateway.
fn oaep_sha256(spki: &[u8], secret: &[u8]) -> Result<Vec<u8>, OpError> {
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    let key = PublicEncryptingKey::from_der(spki)
        .ok()
        .and_then(|k| OaepPublicEncryptingKey::new(k).ok())
        .ok_or_else(|| OpError::Unsupported("the wrapping key is not an RSA public key".into()))?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, secret, &mut out, None)
        .map_err(|_| OpError::Internal("RSA-OAEP-SHA-256 of the ephemeral key failed".into()))?
        .len();
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_public_takes_modulus_and_exponent_out_of_spki() {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).expect("generate");
        let spki = key.public_key().as_der().expect("der");
        let parsed = rsa_public(spki.as_ref()).expect("parse");
        assert_eq!(parsed.modulus.len(), 256);
        assert_eq!(parsed.exponent, [1, 0, 1]);
        assert_eq!(
            parsed.modulus[0] & 0x80,
            0x80,
            "the leading zero byte is dropped"
        );
    }

    #[test]
    fn rsa_public_refuses_what_is_not_an_rsa_key() {
        assert!(matches!(
            rsa_public(b"\x30\x03\x02\x01\x01"),
            Err(OpError::Unsupported(_))
        ));
        let p256 =
            keygate_provider::der::ec_spki(crate::mechanisms::P256_OID, &[4; 65]).expect("ec spki");
        assert!(matches!(rsa_public(&p256), Err(OpError::Unsupported(_))));
    }
}
