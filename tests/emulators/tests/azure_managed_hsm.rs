//! The Key Vault emulator in Managed HSM mode, driven through `azure_security_keyvault_keys`:
//! `oct-HSM` AES keys with A256GCM encryption (the HSM draws the IV; the tag comes back
//! separately and must go back for decryption) and A256KW wrapping, versions after rotation,
//! and the key types a Managed HSM refuses.

mod azure_common;

use azure_common::{BoxError, TestResult, client, create, failure, kid, version_of};
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, EncryptionAlgorithm, KeyClientEncryptOptions, KeyClientWrapKeyOptions,
    KeyOperationParameters, KeyOperationResult, KeyType,
};
use keygate_emulators::azure::{self, Options};

fn enc_opts(version: &str) -> KeyClientEncryptOptions<'static> {
    KeyClientEncryptOptions {
        key_version: Some(version.to_string()),
        ..Default::default()
    }
}

fn wrap_opts(version: &str) -> KeyClientWrapKeyOptions<'static> {
    KeyClientWrapKeyOptions {
        key_version: Some(version.to_string()),
        ..Default::default()
    }
}

fn oct(bits: i32) -> CreateKeyParameters {
    CreateKeyParameters {
        kty: Some(KeyType::OctHsm),
        key_size: Some(bits),
        ..Default::default()
    }
}

fn params(
    alg: EncryptionAlgorithm,
    value: &[u8],
    iv: Option<Vec<u8>>,
    tag: Option<Vec<u8>>,
    aad: Option<Vec<u8>>,
) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(alg),
        value: Some(value.to_vec()),
        iv,
        authentication_tag: tag,
        additional_authenticated_data: aad,
    }
}

async fn encrypt(
    c: &KeyClient,
    name: &str,
    version: &str,
    pt: &[u8],
    aad: &[u8],
) -> Result<KeyOperationResult, BoxError> {
    let p = params(
        EncryptionAlgorithm::A256Gcm,
        pt,
        None,
        None,
        Some(aad.to_vec()),
    );
    Ok(c.encrypt(name, p.try_into()?, Some(enc_opts(version)))
        .await?
        .into_model()?)
}

async fn decrypt(
    c: &KeyClient,
    name: &str,
    version: &str,
    sealed: &KeyOperationResult,
    aad: &[u8],
) -> azure_core::Result<Vec<u8>> {
    let p = params(
        EncryptionAlgorithm::A256Gcm,
        sealed.result.as_deref().unwrap_or_default(),
        sealed.iv.clone(),
        sealed.authentication_tag.clone(),
        Some(aad.to_vec()),
    );
    let r = c.decrypt(name, version, p.try_into()?, None).await?;
    Ok(r.into_model()?.result.unwrap_or_default())
}

#[tokio::test]
async fn oct_hsm_keys_encrypt_with_gcm_and_wrap_with_kw() -> TestResult {
    let emu = azure::spawn_with(
        "127.0.0.1:0",
        Options {
            managed_hsm: true,
            ..Default::default()
        },
    )
    .await?;
    assert!(emu.is_managed_hsm());
    let c = client(&emu)?;
    let key = create(&c, "aes", oct(256)).await?;
    let jwk = key.key.clone().ok_or("no jwk")?;
    assert_eq!(jwk.kty, Some(KeyType::OctHsm));
    assert!(
        jwk.k.is_none(),
        "symmetric key material must not leave the HSM"
    );
    assert_eq!(
        jwk.key_ops,
        Some(
            ["encrypt", "decrypt", "wrapKey", "unwrapKey"]
                .map(String::from)
                .to_vec()
        )
    );
    let v1 = version_of(&kid(&key)?);

    // A256GCM: the HSM draws a 12-byte IV and returns a 16-byte tag apart from the ciphertext.
    let sealed = encrypt(&c, "aes", &v1, b"attack at dawn", b"order-7").await?;
    let ct = sealed.result.clone().ok_or("no ciphertext")?;
    assert_eq!(ct.len(), 14, "GCM ciphertext is as long as the plaintext");
    assert_eq!(sealed.iv.as_ref().map(Vec::len), Some(12));
    assert_eq!(sealed.authentication_tag.as_ref().map(Vec::len), Some(16));
    assert_ne!(ct, b"attack at dawn");
    let again = encrypt(&c, "aes", &v1, b"attack at dawn", b"order-7").await?;
    assert_ne!(again.iv, sealed.iv, "each encryption gets a fresh IV");
    assert_eq!(
        decrypt(&c, "aes", &v1, &sealed, b"order-7").await?,
        b"attack at dawn"
    );

    // Tag, IV, ciphertext and AAD are all authenticated.
    let (status, code) = failure(decrypt(&c, "aes", &v1, &sealed, b"order-8").await);
    assert_eq!((status, code.as_str()), (400, "BadParameter"));
    let mut bad_tag = sealed.clone();
    if let Some(t) = bad_tag.authentication_tag.as_mut() {
        t[0] ^= 1;
    }
    assert_eq!(
        failure(decrypt(&c, "aes", &v1, &bad_tag, b"order-7").await).0,
        400
    );
    let mut no_tag = sealed.clone();
    no_tag.authentication_tag = None;
    assert_eq!(
        failure(decrypt(&c, "aes", &v1, &no_tag, b"order-7").await).0,
        400
    );
    // The caller does not choose a GCM IV.
    let p = params(
        EncryptionAlgorithm::A256Gcm,
        b"x",
        Some(vec![0; 12]),
        None,
        None,
    );
    assert_eq!(
        failure(c.encrypt("aes", p.try_into()?, Some(enc_opts(&v1))).await).0,
        400
    );
    // RSA algorithms make no sense for an AES key.
    let p = params(EncryptionAlgorithm::RsaOaep256, b"x", None, None, None);
    assert_eq!(
        failure(c.encrypt("aes", p.try_into()?, Some(enc_opts(&v1))).await).0,
        400
    );

    // A256KW wraps a 32-byte key into 40 bytes and back; a flipped bit does not unwrap.
    let dek = [0x5au8; 32];
    let p = params(EncryptionAlgorithm::A256Kw, &dek, None, None, None);
    let wrapped = c
        .wrap_key("aes", p.try_into()?, Some(wrap_opts(&v1)))
        .await?
        .into_model()?
        .result
        .ok_or("no wrapped key")?;
    assert_eq!(wrapped.len(), 40);
    let p = params(EncryptionAlgorithm::A256Kw, &wrapped, None, None, None);
    let unwrapped = c
        .unwrap_key("aes", &v1, p.try_into()?, None)
        .await?
        .into_model()?
        .result;
    assert_eq!(unwrapped.as_deref(), Some(&dek[..]));
    let mut tampered = wrapped.clone();
    tampered[5] ^= 1;
    let p = params(EncryptionAlgorithm::A256Kw, &tampered, None, None, None);
    assert_eq!(
        failure(c.unwrap_key("aes", &v1, p.try_into()?, None).await).0,
        400
    );
    // GCM is for encrypt/decrypt, KW for wrap/unwrap.
    let p = params(EncryptionAlgorithm::A256Gcm, &dek, None, None, None);
    assert_eq!(
        failure(c.wrap_key("aes", p.try_into()?, Some(wrap_opts(&v1))).await).0,
        400
    );

    // Rotation: a new key; version 1's ciphertexts open with version 1 only.
    let rotated = c.rotate_key("aes", None).await?.into_model()?;
    let v2 = version_of(&kid(&rotated)?);
    assert_ne!(v1, v2);
    assert_eq!(
        decrypt(&c, "aes", &v1, &sealed, b"order-7").await?,
        b"attack at dawn"
    );
    assert_eq!(
        failure(decrypt(&c, "aes", &v2, &sealed, b"order-7").await).0,
        400
    );
    let newer = encrypt(&c, "aes", "", b"dusk", b"").await?;
    assert_eq!(newer.kid.as_deref().map(version_of), Some(v2.clone()));
    assert_eq!(decrypt(&c, "aes", &v2, &newer, b"").await?, b"dusk");

    // A 128-bit key takes A128GCM, not A256GCM.
    create(&c, "aes128", oct(128)).await?;
    let p = params(EncryptionAlgorithm::A256Gcm, b"x", None, None, None);
    assert_eq!(
        failure(c.encrypt("aes128", p.try_into()?, None).await).0,
        400
    );
    let p = params(EncryptionAlgorithm::A128Gcm, b"x", None, None, None);
    c.encrypt("aes128", p.try_into()?, None).await?;
    Ok(())
}

#[tokio::test]
async fn key_types_follow_the_service() -> TestResult {
    let hsm = azure::spawn_with(
        "127.0.0.1:0",
        Options {
            managed_hsm: true,
            ..Default::default()
        },
    )
    .await?;
    let c = client(&hsm)?;
    // A Managed HSM holds HSM keys only.
    let software = CreateKeyParameters {
        kty: Some(KeyType::Rsa),
        key_size: Some(2048),
        ..Default::default()
    };
    let r = c.create_key("rsa", software.try_into()?, None).await;
    assert_eq!(failure(r), (400, "BadParameter".to_string()));
    let hsm_rsa = CreateKeyParameters {
        kty: Some(KeyType::RsaHsm),
        key_size: Some(2048),
        ..Default::default()
    };
    create(&c, "rsa", hsm_rsa).await?;
    assert_eq!(
        failure(c.create_key("odd", oct(192).try_into()?, None).await).0,
        400
    );

    // A key vault has no symmetric keys.
    let vault = azure::spawn("127.0.0.1:0").await?;
    assert!(!vault.is_managed_hsm());
    let c = client(&vault)?;
    let r = c.create_key("aes", oct(256).try_into()?, None).await;
    assert_eq!(failure(r), (400, "BadParameter".to_string()));
    Ok(())
}
