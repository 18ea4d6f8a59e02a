//! The few DER encodings providers need: ECDSA signatures (PKCS#11 and Key Vault give raw
//! r‖s, keygate speaks X9.62 DER), and SubjectPublicKeyInfo built from a key's public parts
//! (PKCS#11 token attributes, a JWK's `n`/`e` or `crv`/`x`/`y`).

// One TLV: (tag, contents, rest).
use crate::der_tlv as read;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;

/// id-ecPublicKey (1.2.840.10045.2.1)
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// rsaEncryption (1.2.840.113549.1.1.1) followed by NULL parameters
const RSA_ENCRYPTION_ALG: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(tag);
    push_len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A positive INTEGER from unsigned big-endian bytes.
fn integer(unsigned: &[u8]) -> Vec<u8> {
    let skip = unsigned.iter().take_while(|b| **b == 0).count();
    let trimmed = &unsigned[skip..];
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    tlv(INTEGER, &body)
}

/// Raw r‖s (each half the field size) → DER `Ecdsa-Sig-Value`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = integer(r);
    body.extend(integer(s));
    Some(tlv(SEQUENCE, &body))
}

/// DER `Ecdsa-Sig-Value` → raw r‖s with each half `field_len` bytes; `None` if malformed.
pub fn ecdsa_der_to_raw(der: &[u8], field_len: usize) -> Option<Vec<u8>> {
    let (tag, body, rest) = read(der)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let (tag_r, r, after_r) = read(body)?;
    let (tag_s, s, after_s) = read(after_r)?;
    if tag_r != INTEGER || tag_s != INTEGER || !after_s.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(2 * field_len);
    for part in [r, s] {
        let skip = part.iter().take_while(|b| **b == 0).count();
        let trimmed = &part[skip..];
        if trimmed.len() > field_len {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, field_len - trimmed.len()));
        out.extend_from_slice(trimmed);
    }
    Some(out)
}

/// The DER OID of P-256 (prime256v1, 1.2.840.10045.3.1.7), as an EC SPKI's parameters.
pub const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// The DER OID of P-384 (secp384r1, 1.3.132.0.34).
pub const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// SPKI for an EC key from CKA_EC_PARAMS (the curve OID) and CKA_EC_POINT, which PKCS#11
/// returns wrapped in a DER OCTET STRING (some modules return the bare point: both work).
pub fn ec_spki(curve_oid: &[u8], ec_point: &[u8]) -> Option<Vec<u8>> {
    let point = match read(ec_point) {
        Some((OCTET_STRING, inner, rest)) if rest.is_empty() && inner.first() == Some(&0x04) => {
            inner
        }
        _ if ec_point.first() == Some(&0x04) => ec_point,
        _ => return None,
    };
    let mut alg = EC_PUBLIC_KEY_OID.to_vec();
    alg.extend_from_slice(curve_oid);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let mut body = tlv(SEQUENCE, &alg);
    body.extend(tlv(BIT_STRING, &bits));
    Some(tlv(SEQUENCE, &body))
}

/// SPKI for an RSA key from CKA_MODULUS and CKA_PUBLIC_EXPONENT.
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut key = integer(modulus);
    key.extend(integer(exponent));
    let mut bits = vec![0u8];
    bits.extend(tlv(SEQUENCE, &key));
    let mut body = tlv(SEQUENCE, RSA_ENCRYPTION_ALG);
    body.extend(tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    };

    #[test]
    fn ecdsa_conversions_round_trip() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("generate");
        let fixed = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("parse");
        for _ in 0..32 {
            let raw = fixed.sign(&rng, b"m").expect("sign");
            let der = ecdsa_raw_to_der(raw.as_ref()).expect("to der");
            assert_eq!(ecdsa_der_to_raw(&der, 32).as_deref(), Some(raw.as_ref()));
            assert!(
                aws_lc_rs::signature::UnparsedPublicKey::new(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                    fixed.public_key().as_ref()
                )
                .verify(b"m", &der)
                .is_ok()
            );
        }
        assert_eq!(ecdsa_der_to_raw(b"\x30\x00junk", 32), None);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(integer(&[0, 0, 0x7f]), vec![0x02, 0x01, 0x7f]);
        assert_eq!(integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0, 0]), vec![0x02, 0x01, 0x00]);
    }

    #[test]
    fn long_lengths() {
        let body = vec![0u8; 300];
        let encoded = tlv(OCTET_STRING, &body);
        assert_eq!(&encoded[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tag, inner, rest) = read(&encoded).expect("reads");
        assert_eq!((tag, inner.len(), rest.len()), (OCTET_STRING, 300, 0));
    }
}
