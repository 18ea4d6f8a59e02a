//! Encryption on the token: AES-GCM sealing and opening, RSA-OAEP (encryption with the public
//! key in keygate, decryption on the token), and data keys drawn from the token's RNG.

use crate::der;
use crate::errors::{OpError, from_c_decrypt, is_session_level, mechanism_refused};
use crate::mechanisms::{self, AES_GCM_IV_LEN, AES_GCM_TAG_LEN};
use crate::oaep;
use crate::ops;
use crate::provider::Pkcs11Provider;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{AttributeType, ObjectClass};
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, DataKey, DataKeySpec, KeyPurpose, ProviderError, Replied, Result, SecretBytes,
    VersionRef,
};
use zeroize::Zeroizing;

const GCM_TAG_BITS: u64 = (AES_GCM_TAG_LEN * 8) as u64;

pub(crate) async fn aes_seal(
    p: &Pkcs11Provider,
    key: &VersionRef,
    plaintext: SecretBytes,
    aad: &[u8],
) -> Result<Vec<u8>> {
    let (key_id, id) = p.resolve(key)?;
    let aad = aad.to_vec();
    p.run(
        || format!("encrypt with {} version {}", key.uri, key.version),
        move |s| {
            s.with_object(&key_id, id, ObjectClass::SECRET_KEY, |s, handle| {
                // A fresh IV per call from the token's RNG; it travels in the blob.
                let mut iv = [0u8; AES_GCM_IV_LEN];
                s.generate_random_slice(&mut iv)?;
                let mut iv_param = iv;
                let params = GcmParams::new(&mut iv_param, &aad, GCM_TAG_BITS.into())?;
                let sealed = s.encrypt(&Mechanism::AesGcm(params), handle, plaintext.expose())?;
                let mut blob = Vec::with_capacity(AES_GCM_IV_LEN + sealed.len());
                blob.extend_from_slice(&iv);
                blob.extend_from_slice(&sealed);
                Ok(blob)
            })
        },
    )
    .await
}

/// Public-half attributes of an asymmetric version.
pub(crate) async fn public_parts(p: &Pkcs11Provider, key: &VersionRef) -> Result<(Vec<u8>, bool)> {
    let (key_id, id) = p.resolve(key)?;
    let algorithm = key.algorithm;
    p.run(
        || format!("read the public key of {} version {}", key.uri, key.version),
        move |s| {
            // Uncached: the usage flags read here change when the key is disabled.
            let handle = ops::version_object(s, &key_id, id, ObjectClass::PUBLIC_KEY)?;
            let usage = mechanisms::usage_attributes(algorithm, ObjectClass::PUBLIC_KEY);
            let attrs = s.get_attributes(handle, &usage)?;
            let enabled = usage
                .iter()
                .all(|k| ops::bool_of(&attrs, *k).unwrap_or(false));
            let spki = if let Some(oid) = mechanisms::curve_oid(algorithm) {
                let point = ops::get_bytes(s, handle, AttributeType::EcPoint)?;
                der::ec_spki(oid, &point).ok_or_else(|| {
                    OpError::Internal("the token returned a malformed CKA_EC_POINT".into())
                })?
            } else {
                let n = ops::get_bytes(s, handle, AttributeType::Modulus)?;
                let e = ops::get_bytes(s, handle, AttributeType::PublicExponent)?;
                der::rsa_spki(&n, &e)
            };
            Ok((spki, enabled))
        },
    )
    .await
}

/// C_Decrypt of one blob with the version's object: AES-GCM with its stored IV, or RSA-OAEP
/// (on the token, or raw RSA there and the padding removed here).
fn decrypt_blocking(
    s: &cryptoki::session::Session,
    handle: cryptoki::object::ObjectHandle,
    algorithm: Algorithm,
    blob: &[u8],
    aad: &[u8],
    unpad_here: bool,
) -> std::result::Result<Vec<u8>, OpError> {
    if algorithm == Algorithm::Aes256Gcm {
        let (iv, sealed) = blob.split_at(AES_GCM_IV_LEN);
        let mut iv = iv.to_vec();
        let params = GcmParams::new(&mut iv, aad, GCM_TAG_BITS.into())?;
        return Ok(s.decrypt(&Mechanism::AesGcm(params), handle, sealed)?);
    }
    if unpad_here {
        let em = Zeroizing::new(s.decrypt(&Mechanism::RsaX509, handle, blob)?);
        let k = algorithm.rsa_bits().unwrap_or(0) as usize / 8;
        return oaep::decode(&em, k).ok_or(OpError::AuthFailed);
    }
    match s.decrypt(&mechanisms::oaep_mechanism(), handle, blob) {
        Err(e) if mechanism_refused(&e) => Err(OpError::Unsupported(format!(
            "RSA-OAEP with SHA-256 on this token ({e}); set \
             `oaep_unpad_in_provider = true` to remove the padding in keygate"
        ))),
        result => Ok(result?),
    }
}

/// Whether a decrypt failure is the ciphertext's fault. SoftHSM2 reports a GCM tag mismatch
/// as CKR_GENERAL_ERROR, so anything from C_Decrypt itself counts, except errors that say the
/// session or device is gone.
fn decrypt_failed(e: &OpError) -> bool {
    matches!(e, OpError::Ck(ck) if from_c_decrypt(ck) && !is_session_level(ck))
}

pub(crate) async fn encrypt(
    p: &Pkcs11Provider,
    key: &VersionRef,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Replied<Vec<u8>>> {
    p.require(key, KeyPurpose::Encrypt, Op::Encrypt)?;
    if key.algorithm == Algorithm::Aes256Gcm {
        let pt = SecretBytes::copy_from(plaintext.expose());
        return aes_seal(p, key, pt, aad).await.map(Replied::local);
    }
    // RSA-OAEP: encryption needs only the public key, so it runs here with aws-lc-rs.
    if !aad.is_empty() {
        return Err(ProviderError::invalid(
            &p.name,
            format!("{} takes no associated data", key.algorithm),
        ));
    }
    let max = key.algorithm.max_plaintext().unwrap_or(0);
    if plaintext.len() > max {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{} encrypts at most {max} bytes; got {}",
                key.algorithm,
                plaintext.len()
            ),
        ));
    }
    let (spki, enabled) = public_parts(p, key).await?;
    if !enabled {
        return Err(ProviderError::precondition(
            &p.name,
            format!("encrypt with {}: the key is disabled on the token", key.uri),
        ));
    }
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    let internal = |what: &str| {
        ProviderError::internal(
            &p.name,
            format!("RSA-OAEP encrypt with {}: {what}", key.uri),
        )
    };
    let public = PublicEncryptingKey::from_der(&spki)
        .map_err(|_| internal("the token's public key was rejected"))?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|_| internal("unusable public key"))?;
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let len = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext.expose(), &mut out, None)
        .map_err(|_| internal("encryption failed"))?
        .len();
    out.truncate(len);
    Ok(Replied::local(out))
}

pub(crate) async fn decrypt(
    p: &Pkcs11Provider,
    key: &VersionRef,
    blob: &[u8],
    aad: &[u8],
) -> Result<Replied<SecretBytes>> {
    p.require(key, KeyPurpose::Encrypt, Op::Decrypt)?;
    let (key_id, id) = p.resolve(key)?;
    let algorithm = key.algorithm;
    if algorithm == Algorithm::Aes256Gcm && blob.len() < AES_GCM_IV_LEN + AES_GCM_TAG_LEN {
        return Err(ProviderError::auth_failed(&p.name));
    }
    if algorithm != Algorithm::Aes256Gcm && !aad.is_empty() {
        return Err(ProviderError::invalid(
            &p.name,
            format!("{algorithm} takes no associated data"),
        ));
    }
    let blob = blob.to_vec();
    let aad = aad.to_vec();
    let unpad_here = p.oaep_unpad_in_provider;
    let result = p
        .pool
        .run(move |s| {
            let class = mechanisms::secret_class(algorithm);
            let out = s.with_object(&key_id, id, class, |s, handle| {
                decrypt_blocking(s, handle, algorithm, &blob, &aad, unpad_here)
            })?;
            Ok(SecretBytes::new(out))
        })
        .await;
    match result {
        Ok(pt) => Ok(Replied::local(pt)),
        Err(e) if decrypt_failed(&e) => Err(ProviderError::auth_failed(&p.name)),
        Err(e) => Err(e.into_provider(
            &p.name,
            &format!("decrypt with {} version {}", key.uri, key.version),
        )),
    }
}

pub(crate) async fn generate_data_key(
    p: &Pkcs11Provider,
    key: &VersionRef,
    spec: DataKeySpec,
    aad: &[u8],
) -> Result<Replied<DataKey>> {
    p.require(key, KeyPurpose::Encrypt, Op::GenerateDataKey)?;
    if key.algorithm != Algorithm::Aes256Gcm {
        return Err(ProviderError::precondition(
            &p.name,
            format!(
                "data keys are sealed under aes-256-gcm keys, not {}",
                key.algorithm
            ),
        ));
    }
    kit::check_len(&p.name, spec.len)?;
    let len = spec.len;
    let plaintext = p
        .run(
            || "draw random bytes from the token".to_string(),
            move |s| {
                let mut bytes = SecretBytes::zeroed(len);
                s.generate_random_slice(bytes.expose_mut())?;
                Ok(bytes)
            },
        )
        .await?;
    kit::seal_data_key(p, key, plaintext, aad).await
}
