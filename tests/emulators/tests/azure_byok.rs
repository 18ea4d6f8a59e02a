//! BYOK into the Key Vault emulator through `azure_security_keyvault_keys`: a key exchange
//! key (RSA-HSM, `key_ops: ["import"]`), then a key transfer blob made here with crates
//! independent of the emulator's aws-lc-rs (`rsa` for RSA-OAEP, `aes-kw` for RFC 5649),
//! imported as `key_hsm`. The imported keys are then used by the emulator and the results
//! checked against the material kept here.

mod azure_common;

use aes_kw::KekAes256;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use azure_common::{BoxError, TestResult, client, create, failure, kid};
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, EncryptionAlgorithm, ImportKeyParameters, JsonWebKey, Key,
    KeyOperation, KeyOperationParameters, KeyType, SignParameters, SignatureAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keygate_emulators::azure::{self, Options};
use rsa::rand_core::{OsRng, RngCore};
use rsa::{BigUint, Oaep, RsaPublicKey};
use serde_json::json;

/// A key exchange key: RSA-HSM whose only operation is import.
async fn kek(c: &KeyClient, name: &str) -> Result<Key, BoxError> {
    create(
        c,
        name,
        CreateKeyParameters {
            kty: Some(KeyType::RsaHsm),
            key_size: Some(2048),
            key_ops: Some(vec![KeyOperation::Import]),
            ..Default::default()
        },
    )
    .await
}

/// The key transfer blob for `target` under `kek`: RSA-OAEP (SHA-1 for
/// CKM_RSA_AES_KEY_WRAP, SHA-256 for RSA_AES_KEY_WRAP_256) of a fresh AES-256 key, then
/// the target wrapped with AES-KWP (RFC 5649) under it.
fn transfer_blob(kek: &Key, target: &[u8], enc: &str) -> Result<Vec<u8>, BoxError> {
    let jwk = kek.key.as_ref().ok_or("KEK has no JWK")?;
    let public = RsaPublicKey::new(
        BigUint::from_bytes_be(jwk.n.as_deref().ok_or("no n")?),
        BigUint::from_bytes_be(jwk.e.as_deref().ok_or("no e")?),
    )?;
    let mut aes = [0u8; 32];
    OsRng.fill_bytes(&mut aes);
    let mut ciphertext = match enc {
        "CKM_RSA_AES_KEY_WRAP" => public.encrypt(&mut OsRng, Oaep::new::<sha1::Sha1>(), &aes)?,
        _ => public.encrypt(&mut OsRng, Oaep::new::<sha2::Sha256>(), &aes)?,
    };
    let wrapped = KekAes256::from(aes)
        .wrap_with_padding_vec(target)
        .map_err(|e| format!("AES-KWP: {e:?}"))?;
    ciphertext.extend_from_slice(&wrapped);
    let blob = json!({
        "schema_version": "1.0.0",
        "header": {"kid": kid(kek)?, "alg": "dir", "enc": enc},
        "ciphertext": URL_SAFE_NO_PAD.encode(&ciphertext),
        "generator": "keygate emulator tests",
    });
    Ok(serde_json::to_vec(&blob)?)
}

async fn import(
    c: &KeyClient,
    name: &str,
    kty: KeyType,
    crv: Option<CurveName>,
    key_ops: &[&str],
    blob: Vec<u8>,
) -> azure_core::Result<Key> {
    let params = ImportKeyParameters {
        hsm: Some(true),
        key: Some(JsonWebKey {
            kty: Some(kty),
            crv,
            key_ops: Some(key_ops.iter().map(|s| s.to_string()).collect()),
            t: Some(blob),
            ..Default::default()
        }),
        ..Default::default()
    };
    c.import_key(name, params.try_into()?, None)
        .await?
        .into_model()
}

async fn sign(
    c: &KeyClient,
    name: &str,
    alg: SignatureAlgorithm,
    digest: &[u8],
) -> Result<Vec<u8>, BoxError> {
    let p = SignParameters {
        algorithm: Some(alg),
        value: Some(digest.to_vec()),
    };
    Ok(c.sign(name, p.try_into()?, None)
        .await?
        .into_model()?
        .result
        .ok_or("no signature")?)
}

#[tokio::test]
async fn rsa_and_ec_keys_imported_from_transfer_blobs_sign_as_the_originals() -> TestResult {
    let emu = azure::spawn("127.0.0.1:0").await?;
    let c = client(&emu)?;
    let kek = kek(&c, "kek").await?;
    // A KEK does nothing but import.
    let p = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(b"x".to_vec()),
        ..Default::default()
    };
    assert_eq!(failure(c.encrypt("kek", p.try_into()?, None).await).0, 403);

    // RSA-2048, CKM_RSA_AES_KEY_WRAP (OAEP SHA-1).
    let original = RsaKeyPair::generate(KeySize::Rsa2048)?;
    let pkcs8 = original.as_der()?;
    let blob = transfer_blob(&kek, pkcs8.as_ref(), "CKM_RSA_AES_KEY_WRAP")?;
    let imported = import(
        &c,
        "byok-rsa",
        KeyType::RsaHsm,
        None,
        &["sign", "verify"],
        blob,
    )
    .await?;
    let jwk = imported.key.clone().ok_or("no jwk")?;
    assert_eq!(jwk.kty, Some(KeyType::RsaHsm));
    assert!(jwk.d.is_none());
    let local_n = original
        .public_key()
        .modulus()
        .big_endian_without_leading_zero()
        .to_vec();
    assert_eq!(jwk.n, Some(local_n), "the vault holds the transferred key");
    let d = digest::digest(&digest::SHA256, b"release v2");
    let sig = sign(&c, "byok-rsa", SignatureAlgorithm::Ps256, d.as_ref()).await?;
    UnparsedPublicKey::new(
        &signature::RSA_PSS_2048_8192_SHA256,
        original.public_key().as_ref(),
    )
    .verify(b"release v2", &sig)
    .map_err(|_| "the imported key's PS256 signature does not verify locally")?;

    // EC P-256, RSA_AES_KEY_WRAP_256 (OAEP SHA-256).
    let doc = EcdsaKeyPair::generate_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &SystemRandom::new(),
    )?;
    let original =
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())?;
    let blob = transfer_blob(&kek, doc.as_ref(), "RSA_AES_KEY_WRAP_256")?;
    let imported = import(
        &c,
        "byok-p256",
        KeyType::EcHsm,
        Some(CurveName::P256),
        &["sign", "verify"],
        blob,
    )
    .await?;
    assert_eq!(
        imported.key.as_ref().and_then(|k| k.kty.clone()),
        Some(KeyType::EcHsm)
    );
    let d = digest::digest(&digest::SHA256, b"artifact");
    let sig = sign(&c, "byok-p256", SignatureAlgorithm::Es256, d.as_ref()).await?;
    UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        original.public_key().as_ref(),
    )
    .verify(b"artifact", &sig)
    .map_err(|_| "the imported key's ES256 signature does not verify locally")?;
    // The curve named must be the curve transferred.
    let blob = transfer_blob(&kek, doc.as_ref(), "RSA_AES_KEY_WRAP_256")?;
    let r = import(
        &c,
        "wrong-curve",
        KeyType::EcHsm,
        Some(CurveName::P384),
        &["sign"],
        blob,
    )
    .await;
    assert_eq!(failure(r).0, 400);
    Ok(())
}

#[tokio::test]
async fn transfer_blobs_that_do_not_open_are_refused() -> TestResult {
    let emu = azure::spawn("127.0.0.1:0").await?;
    let c = client(&emu)?;
    let kek = kek(&c, "kek").await?;
    let other_kek = kek_other(&c).await?;
    let target = RsaKeyPair::generate(KeySize::Rsa2048)?
        .as_der()?
        .as_ref()
        .to_vec();

    // Wrapped for one KEK, labelled with another: the RSA-OAEP block does not open.
    let mut blob: serde_json::Value =
        serde_json::from_slice(&transfer_blob(&kek, &target, "CKM_RSA_AES_KEY_WRAP")?)?;
    blob["header"]["kid"] = kid(&other_kek)?.into();
    let r = import(
        &c,
        "k1",
        KeyType::RsaHsm,
        None,
        &["sign"],
        serde_json::to_vec(&blob)?,
    )
    .await;
    assert_eq!(failure(r), (400, "BadParameter".to_string()));

    // A flipped bit in the wrapped target fails RFC 5649's integrity check.
    let mut blob: serde_json::Value =
        serde_json::from_slice(&transfer_blob(&kek, &target, "CKM_RSA_AES_KEY_WRAP")?)?;
    let mut ct = URL_SAFE_NO_PAD.decode(blob["ciphertext"].as_str().ok_or("ct")?)?;
    let last = ct.len() - 1;
    ct[last] ^= 1;
    blob["ciphertext"] = URL_SAFE_NO_PAD.encode(&ct).into();
    let r = import(
        &c,
        "k2",
        KeyType::RsaHsm,
        None,
        &["sign"],
        serde_json::to_vec(&blob)?,
    )
    .await;
    assert_eq!(failure(r).0, 400);

    // The wrong OAEP hash for the `enc` named.
    let mut blob: serde_json::Value =
        serde_json::from_slice(&transfer_blob(&kek, &target, "RSA_AES_KEY_WRAP_256")?)?;
    blob["header"]["enc"] = "CKM_RSA_AES_KEY_WRAP".into();
    let r = import(
        &c,
        "k3",
        KeyType::RsaHsm,
        None,
        &["sign"],
        serde_json::to_vec(&blob)?,
    )
    .await;
    assert_eq!(failure(r).0, 400);

    // A key that is not import-only is no KEK, even if the blob was made for it.
    let general = create(
        &c,
        "general",
        CreateKeyParameters {
            kty: Some(KeyType::RsaHsm),
            key_size: Some(2048),
            ..Default::default()
        },
    )
    .await?;
    let blob = transfer_blob(&general, &target, "CKM_RSA_AES_KEY_WRAP")?;
    let r = import(&c, "k4", KeyType::RsaHsm, None, &["sign"], blob).await;
    assert_eq!(failure(r).0, 400);

    // Not a transfer blob at all.
    let r = import(
        &c,
        "k5",
        KeyType::RsaHsm,
        None,
        &["sign"],
        b"not json".to_vec(),
    )
    .await;
    assert_eq!(failure(r).0, 400);
    // Nothing was imported along the way.
    for name in ["k1", "k2", "k3", "k4", "k5"] {
        assert_eq!(failure(c.get_key(name, None).await).0, 404, "{name}");
    }
    Ok(())
}

async fn kek_other(c: &KeyClient) -> Result<Key, BoxError> {
    kek(c, "kek-other").await
}

#[tokio::test]
async fn an_aes_key_imported_into_a_managed_hsm_encrypts_and_wraps_as_the_original() -> TestResult {
    let emu = azure::spawn_with(
        "127.0.0.1:0",
        Options {
            managed_hsm: true,
            ..Default::default()
        },
    )
    .await?;
    let c = client(&emu)?;
    let kek = kek(&c, "kek").await?;
    let mut material = [0u8; 32];
    OsRng.fill_bytes(&mut material);
    let blob = transfer_blob(&kek, &material, "RSA_AES_KEY_WRAP_256")?;
    let imported = import(
        &c,
        "byok-aes",
        KeyType::OctHsm,
        None,
        &["encrypt", "decrypt", "wrapKey", "unwrapKey"],
        blob,
    )
    .await?;
    assert_eq!(
        imported.key.as_ref().and_then(|k| k.kty.clone()),
        Some(KeyType::OctHsm)
    );

    // The HSM's A256GCM output opens here with the original key.
    let p = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::A256Gcm),
        value: Some(b"card 4111".to_vec()),
        additional_authenticated_data: Some(b"order-9".to_vec()),
        ..Default::default()
    };
    let sealed = c
        .encrypt("byok-aes", p.try_into()?, None)
        .await?
        .into_model()?;
    let iv: [u8; 12] = sealed
        .iv
        .clone()
        .ok_or("no iv")?
        .try_into()
        .map_err(|_| "iv length")?;
    let mut data = sealed.result.clone().ok_or("no ciphertext")?;
    data.extend_from_slice(&sealed.authentication_tag.clone().ok_or("no tag")?);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &material)?);
    let opened = key
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(b"order-9"),
            &mut data,
        )
        .map_err(|_| "the HSM's ciphertext does not open with the original key")?;
    assert_eq!(opened, b"card 4111");

    // The HSM's A256KW output unwraps here (aes-kw, RFC 3394) with the original key.
    let dek = [0x11u8; 32];
    let p = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::A256Kw),
        value: Some(dek.to_vec()),
        ..Default::default()
    };
    let wrapped = c
        .wrap_key("byok-aes", p.try_into()?, None)
        .await?
        .into_model()?
        .result
        .ok_or("no wrapped key")?;
    let unwrapped = KekAes256::from(material)
        .unwrap_vec(&wrapped)
        .map_err(|e| format!("unwrap: {e:?}"))?;
    assert_eq!(unwrapped, dek);
    // An AES key is imported only wrapped: not as a plain JWK `k`.
    let params = ImportKeyParameters {
        key: Some(JsonWebKey {
            kty: Some(KeyType::OctHsm),
            k: Some(material.to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        failure(c.import_key("plain", params.try_into()?, None).await).0,
        400
    );
    Ok(())
}
