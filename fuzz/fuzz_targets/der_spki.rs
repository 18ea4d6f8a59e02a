//! The DER and SubjectPublicKeyInfo helpers the providers share, the PKCS#11 provider's RSA
//! wrapping-key reader and the client certificate reader (mTLS identities).
#![no_main]

use keygate_provider::der;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Some((_, body, tail)) = keygate_provider::der_tlv(rest) {
                assert!(body.len() + tail.len() < rest.len());
            }
            let _ = keygate_provider::spki_public_key_bits(rest);
        }
        1 => {
            // An ECDSA signature in DER for a curve with fields of 32, 48 or 66 bytes.
            let field = [32, 48, 66][usize::from(which / 6) % 3];
            if let Some(raw) = der::ecdsa_der_to_raw(rest, field) {
                assert_eq!(raw.len(), 2 * field);
                let der = der::ecdsa_raw_to_der(&raw).expect("a raw signature");
                assert_eq!(der::ecdsa_der_to_raw(&der, field), Some(raw));
            }
        }
        2 => {
            if let Some(der) = der::ecdsa_raw_to_der(rest) {
                let field = rest.len() / 2;
                let raw = der::ecdsa_der_to_raw(&der, field).expect("what was encoded");
                assert_eq!(raw, rest);
            }
        }
        3 => {
            // curve OID length, OID, EC point
            if let Some((&n, rest)) = rest.split_first() {
                let (oid, point) = rest.split_at(rest.len().min(usize::from(n)));
                if let Some(spki) = der::ec_spki(oid, point) {
                    assert!(keygate_provider::spki_public_key_bits(&spki).is_some());
                }
            }
        }
        4 => {
            if let Some((&n, rest)) = rest.split_first() {
                let (modulus, exponent) = rest.split_at(rest.len().min(usize::from(n) * 4));
                let spki = der::rsa_spki(modulus, exponent);
                assert!(keygate_provider::spki_public_key_bits(&spki).is_some());
            }
            let _ = keygate_provider_pkcs11::fuzzing::rsa_wrapping_key(rest);
        }
        _ => {
            let _ = keygate::auth::PeerIdentity::from_der(rest);
        }
    }
});
