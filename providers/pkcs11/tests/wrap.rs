//! BYOK wrapping on the token, checked against an independent unwrap (aws-lc-rs RSA-OAEP and
//! AES-KWP with a test private key): the blob carries the very key the token encrypts with.

mod common;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    PrivateDecryptingKey,
};
use common::{latest, raw_session, spec};
use cryptoki::context::Pkcs11;
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use keygate_provider::{
    Algorithm, ImportParams, KeyProvider, ProviderError, SecretBytes, WrappingAlgorithm,
};

fn value_is_sensitive(key_id: &str) {
    let session = raw_session();
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(key_id.as_bytes().to_vec()),
        ])
        .expect("find");
    assert_eq!(handles.len(), 1);
    let info = session
        .get_attribute_info(handles[0], &[AttributeType::Value])
        .expect("C_GetAttributeValue");
    assert!(
        matches!(info[0], AttributeInfo::Sensitive),
        "CKA_VALUE must be CKR_ATTRIBUTE_SENSITIVE, got {:?}",
        info[0]
    );
}

/// A test importer's RSA key pair: the private half and its public SPKI DER.
fn importer(size: KeySize) -> (OaepPrivateDecryptingKey, Vec<u8>) {
    let key = PrivateDecryptingKey::generate(size).expect("rsa key");
    let spki = key.public_key().as_der().expect("spki").as_ref().to_vec();
    (OaepPrivateDecryptingKey::new(key).expect("oaep key"), spki)
}

fn oaep_decrypt(key: &OaepPrivateDecryptingKey, alg: &'static OaepAlgorithm, ct: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; key.min_output_size()];
    key.decrypt(alg, ct, &mut out, None)
        .expect("independent RSA-OAEP decrypt")
        .to_vec()
}

fn params(wrapping: WrappingAlgorithm, spki: &[u8]) -> ImportParams {
    ImportParams {
        wrapping,
        wrapping_key_spki_der: spki.to_vec(),
        import_token: Vec::new(),
        expires_at: None,
    }
}

/// The target key, unwrapped outside the token the way an importer would.
fn unwrap(key: &OaepPrivateDecryptingKey, wrapping: WrappingAlgorithm, blob: &[u8]) -> Vec<u8> {
    let alg = if wrapping.oaep_sha1() {
        &OAEP_SHA1_MGF1SHA1
    } else {
        &OAEP_SHA256_MGF1SHA256
    };
    if !wrapping.two_step() {
        return oaep_decrypt(key, alg, blob);
    }
    let k = key.key_size_bytes();
    let ephemeral = oaep_decrypt(key, alg, &blob[..k]);
    assert_eq!(ephemeral.len(), 32, "the ephemeral key is AES-256");
    let kek = KeyEncryptionKey::new(&AES_256, &ephemeral).expect("kek");
    let mut out = vec![0u8; blob.len() - k];
    kek.unwrap_with_padding(&blob[k..], &mut out)
        .expect("independent AES-KWP unwrap")
        .to_vec()
}

#[tokio::test]
async fn byok_token_has_the_mechanisms_it_relies_on() {
    let session = raw_session();
    let ctx = Pkcs11::new(common::hsm().module_path()).expect("load module");
    let slot = keygate_test_backends::softhsm::slot_with_label(&ctx, common::TOKEN)
        .expect("the test token");
    drop(session);
    let list = ctx.get_mechanism_list(slot).expect("C_GetMechanismList");
    assert!(list.contains(&MechanismType::AES_KEY_WRAP_PAD));
    assert!(list.contains(&MechanismType::RSA_PKCS_OAEP));
    // Why the two steps are done one by one (see the provider's wrap module):
    // CKM_RSA_AES_KEY_WRAP is 0x1054.
    assert!(!list.iter().any(|m| **m == 0x1054));
}

#[tokio::test]
async fn byok_wraps_unwrap_independently_to_the_key_the_token_encrypts_with() {
    let provider = common::provider().await;
    let key = provider
        .create_wrappable_key(&spec("byok-wrap-aes", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let at = latest(&key);
    value_is_sensitive("byok-wrap-aes");

    // A blob the token sealed, to open with each independently unwrapped copy.
    let sealed = provider
        .encrypt(&at, &SecretBytes::copy_from(b"byok"), b"aad")
        .await
        .expect("encrypt")
        .value;
    let (importer, spki) = importer(KeySize::Rsa3072);
    for (wrapping, left) in [
        (WrappingAlgorithm::RsaAesKeyWrapSha1, false),
        (WrappingAlgorithm::RsaAesKeyWrapSha256, true),
        (WrappingAlgorithm::RsaOaepSha1, false),
    ] {
        let params = params(wrapping, &spki);
        let out = provider
            .wrap_for_import(&at, &params)
            .await
            .unwrap_or_else(|e| panic!("{wrapping}: {e}"))
            .value;
        assert_eq!(out.ephemeral_left_source, left, "{wrapping}");
        let material = unwrap(&importer, wrapping, out.wrapped.expose());
        assert_eq!(material.len(), 32, "{wrapping}: raw AES-256 bytes");
        let (nonce, body) = sealed.split_at(12);
        let opener = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &material).expect("key"));
        let mut body = body.to_vec();
        let plain = opener
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).expect("nonce"),
                Aad::from(b"aad"),
                &mut body,
            )
            .unwrap_or_else(|_| panic!("{wrapping}: the unwrapped key is not the token's key"));
        assert_eq!(plain, b"byok");
    }
    value_is_sensitive("byok-wrap-aes");
}

#[tokio::test]
async fn byok_wraps_that_would_take_the_key_out_or_use_a_bad_wrapping_key_are_refused() {
    let provider = common::provider().await;
    let key = provider
        .create_wrappable_key(&spec("byok-wrap-refused", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let at = latest(&key);
    let (_, spki) = importer(KeySize::Rsa2048);
    let direct = provider
        .wrap_for_import(&at, &params(WrappingAlgorithm::RsaOaepSha256, &spki))
        .await
        .expect_err("direct SHA-256 OAEP would need the key out of the token");
    assert!(
        matches!(direct, ProviderError::Unsupported { .. }),
        "{direct}"
    );
    let not_rsa = provider
        .wrap_for_import(
            &at,
            &params(WrappingAlgorithm::RsaAesKeyWrapSha1, &[0x30, 0]),
        )
        .await
        .expect_err("not an RSA key");
    assert!(
        not_rsa.to_string().contains("not a DER RSA public key"),
        "{not_rsa}"
    );
    // An ordinary key is not extractable, even under wrap.
    let plain = provider
        .create_key(&spec("byok-wrap-plain", Algorithm::Aes256Gcm))
        .await
        .expect("create")
        .value;
    let (_, spki) = importer(KeySize::Rsa2048);
    let refused = provider
        .wrap_for_import(
            &latest(&plain),
            &params(WrappingAlgorithm::RsaAesKeyWrapSha1, &spki),
        )
        .await
        .expect_err("a non-extractable key cannot be wrapped");
    assert!(
        refused.to_string().to_lowercase().contains("extract")
            || refused.to_string().contains("UNEXTRACTABLE"),
        "{refused}"
    );
}

#[tokio::test]
async fn byok_ec_keys_wrap_as_pkcs8_of_the_token_key() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    let provider = common::provider().await;
    let key = provider
        .create_wrappable_key(&spec("byok-wrap-ec", Algorithm::EcdsaP256))
        .await
        .expect("create")
        .value;
    let at = latest(&key);
    let spki = provider
        .public_key(&at)
        .await
        .expect("public key")
        .value
        .spki_der;
    let (importer, wrapping_spki) = importer(KeySize::Rsa2048);
    for wrapping in [
        WrappingAlgorithm::RsaAesKeyWrapSha1,
        WrappingAlgorithm::RsaAesKeyWrapSha256,
    ] {
        let params = params(wrapping, &wrapping_spki);
        let out = provider
            .wrap_for_import(&at, &params)
            .await
            .unwrap_or_else(|e| panic!("{wrapping}: {e}"))
            .value;
        let pkcs8 = unwrap(&importer, wrapping, out.wrapped.expose());
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
            .unwrap_or_else(|e| panic!("{wrapping}: not a P-256 PKCS#8 key: {e}"));
        // The SPKI ends with the uncompressed point, which is what aws-lc-rs gives.
        assert!(
            spki.ends_with(pair.public_key().as_ref()),
            "{wrapping}: the unwrapped key is not the token's key"
        );
    }
    let refused = provider
        .wrap_for_import(&at, &params(WrappingAlgorithm::RsaOaepSha1, &wrapping_spki))
        .await
        .expect_err("a private key does not fit one RSA block");
    assert!(
        matches!(refused, ProviderError::Unsupported { .. }),
        "{refused}"
    );
}
