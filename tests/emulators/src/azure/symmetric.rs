//! Managed HSM's symmetric (`oct-HSM`) keys: AES-GCM encryption with an IV the HSM draws and
//! a separate authentication tag, and AES key wrap (RFC 3394), as the REST reference defines
//! `A128GCM`/`A256GCM` and `A128KW`/`A256KW`.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::key_wrap::{AES_128, AES_256, AesKek, KeyWrap};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::crypto::{CryptoError, Material};

/// GCM IVs are 96 bits, tags 128 bits.
pub const IV_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// A new AES key of `bits` (128 or 256).
pub fn generate_oct(bits: i64) -> Result<Material, CryptoError> {
    let len = match bits {
        128 => 16,
        256 => 32,
        other => {
            return Err(CryptoError(format!(
                "oct-HSM key size {other} is not supported by the emulator; use 128 or 256."
            )));
        }
    };
    let mut key = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| CryptoError("The HSM's random generator failed.".into()))?;
    Ok(Material::Oct { key })
}

/// An imported AES key (BYOK): 16 or 32 bytes.
pub fn import_oct(key: &[u8]) -> Result<Material, CryptoError> {
    match key.len() {
        16 | 32 => Ok(Material::Oct { key: key.to_vec() }),
        n => Err(CryptoError(format!(
            "An oct-HSM key is 16 or 32 bytes; the transferred key is {n} bytes."
        ))),
    }
}

fn aes_key<'a>(m: &'a Material, alg: &str) -> Result<&'a [u8], CryptoError> {
    let Material::Oct { key } = m else {
        return Err(CryptoError(format!(
            "Algorithm {alg} requires a symmetric (oct-HSM) key."
        )));
    };
    let want = match alg {
        "A128GCM" | "A128KW" => 16,
        "A256GCM" | "A256KW" => 32,
        other => {
            return Err(CryptoError(format!(
                "Algorithm {other} is not supported for oct-HSM keys."
            )));
        }
    };
    if key.len() != want {
        return Err(CryptoError(format!(
            "Algorithm {alg} does not match the key's size of {} bits.",
            key.len() * 8
        )));
    }
    Ok(key)
}

fn gcm(m: &Material, alg: &str) -> Result<LessSafeKey, CryptoError> {
    let key = aes_key(m, alg)?;
    let algorithm = if key.len() == 16 {
        &AES_128_GCM
    } else {
        &AES_256_GCM
    };
    UnboundKey::new(algorithm, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError("Stored AES key".into()))
}

/// What AES-GCM encryption returns: the ciphertext, the IV the HSM drew and the tag.
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
}

pub fn gcm_encrypt(
    m: &Material,
    alg: &str,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Sealed, CryptoError> {
    let key = gcm(m, alg)?;
    let mut iv = [0u8; IV_LEN];
    SystemRandom::new()
        .fill(&mut iv)
        .map_err(|_| CryptoError("The HSM's random generator failed.".into()))?;
    let mut data = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut data)
        .map_err(|_| CryptoError("Encryption failed.".into()))?;
    Ok(Sealed {
        ciphertext: data,
        iv: iv.to_vec(),
        tag: tag.as_ref().to_vec(),
    })
}

pub fn gcm_decrypt(
    m: &Material,
    alg: &str,
    ciphertext: &[u8],
    iv: &[u8],
    tag: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = gcm(m, alg)?;
    let iv: [u8; IV_LEN] = iv
        .try_into()
        .map_err(|_| CryptoError(format!("The iv must be {IV_LEN} bytes.")))?;
    if tag.len() != TAG_LEN {
        return Err(CryptoError(format!(
            "The authentication tag must be {TAG_LEN} bytes."
        )));
    }
    let mut data = ciphertext.to_vec();
    data.extend_from_slice(tag);
    let plaintext = key
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut data)
        .map_err(|_| {
            CryptoError(
                "Decryption failed: the ciphertext, iv, tag or aad do not match this key.".into(),
            )
        })?;
    Ok(plaintext.to_vec())
}

fn kek(m: &Material, alg: &str) -> Result<AesKek, CryptoError> {
    let key = aes_key(m, alg)?;
    let cipher = if key.len() == 16 { &AES_128 } else { &AES_256 };
    AesKek::new(cipher, key).map_err(|_| CryptoError("Stored AES key".into()))
}

/// AES key wrap (RFC 3394): the key to wrap is a multiple of 8 bytes, at least 16.
pub fn kw_wrap(m: &Material, alg: &str, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if key.len() < 16 || !key.len().is_multiple_of(8) {
        return Err(CryptoError(format!(
            "{alg} wraps keys of 16 bytes or more in multiples of 8; got {} bytes.",
            key.len()
        )));
    }
    let mut out = vec![0u8; key.len() + 8];
    let wrapped = kek(m, alg)?
        .wrap(key, &mut out)
        .map_err(|_| CryptoError("Key wrap failed.".into()))?;
    Ok(wrapped.to_vec())
}

pub fn kw_unwrap(m: &Material, alg: &str, wrapped: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(CryptoError(
            "Unwrap failed: the wrapped key is malformed for this key and algorithm.".into(),
        ));
    }
    let mut out = vec![0u8; wrapped.len()];
    let key = kek(m, alg)?.unwrap(wrapped, &mut out).map_err(|_| {
        CryptoError("Unwrap failed: the wrapped key does not match this key.".into())
    })?;
    Ok(key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcm_round_trip_and_tamper() {
        let m = generate_oct(256).expect("key");
        let s = gcm_encrypt(&m, "A256GCM", b"secret", b"aad").expect("seal");
        assert_eq!((s.iv.len(), s.tag.len()), (IV_LEN, TAG_LEN));
        let back = gcm_decrypt(&m, "A256GCM", &s.ciphertext, &s.iv, &s.tag, b"aad");
        assert_eq!(back.expect("open"), b"secret");
        assert!(gcm_decrypt(&m, "A256GCM", &s.ciphertext, &s.iv, &s.tag, b"other").is_err());
        assert!(gcm_encrypt(&m, "A128GCM", b"x", b"").is_err());
    }

    #[test]
    fn key_wrap_round_trip() {
        let m = generate_oct(256).expect("key");
        let wrapped = kw_wrap(&m, "A256KW", &[7u8; 32]).expect("wrap");
        assert_eq!(wrapped.len(), 40);
        assert_eq!(
            kw_unwrap(&m, "A256KW", &wrapped).expect("unwrap"),
            [7u8; 32]
        );
        let mut bad = wrapped.clone();
        bad[3] ^= 1;
        assert!(kw_unwrap(&m, "A256KW", &bad).is_err());
    }
}
