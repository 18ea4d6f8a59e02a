//! Drives the Key Vault emulator through the official
//! `azure_security_keyvault_keys` client over real HTTPS (trusting the test
//! CA), and cross-checks its cryptography with aws-lc-rs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey,
    PublicKeyComponents,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_core::time::{Duration, OffsetDateTime};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, EncryptionAlgorithm, ImportKeyParameters, JsonWebKey, Key,
    KeyAttributes, KeyClientGetKeyOptions, KeyClientListKeyPropertiesOptions,
    KeyClientUpdateKeyPropertiesOptions, KeyOperation, KeyOperationParameters, KeyRotationPolicy,
    KeyRotationPolicyAction, KeyRotationPolicyAttributes, KeyType, LifetimeAction,
    LifetimeActionTrigger, LifetimeActionType, SignParameters, SignatureAlgorithm,
    UpdateKeyPropertiesParameters, VerifyParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use futures::TryStreamExt;
use keygate_emulators::azure::{self, AzureEmulator};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type BoxError = Box<dyn std::error::Error>;

/// Any bearer token will do; the emulator only checks one is present.
#[derive(Debug)]
struct FixedToken;

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "emulator-token",
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

fn http_client(emu: &AzureEmulator) -> Result<reqwest::Client, BoxError> {
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes())?;
    Ok(reqwest::Client::builder().tls_certs_only([ca]).build()?)
}

fn client_with(emu: &AzureEmulator, retry: Option<RetryOptions>) -> Result<KeyClient, BoxError> {
    let mut client_options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http_client(emu)?))),
        ..Default::default()
    };
    if let Some(r) = retry {
        client_options.retry = r;
    }
    let options = KeyClientOptions {
        client_options,
        // The challenge names vault.azure.net, which is not this host.
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    Ok(KeyClient::new(
        &emu.url(),
        Arc::new(FixedToken),
        Some(options),
    )?)
}

async fn start() -> Result<(AzureEmulator, KeyClient), BoxError> {
    let emu = azure::spawn("127.0.0.1:0").await?;
    let client = client_with(&emu, Some(RetryOptions::none()))?;
    Ok((emu, client))
}

fn rsa_params(bits: i32, kty: KeyType) -> CreateKeyParameters {
    CreateKeyParameters {
        kty: Some(kty),
        key_size: Some(bits),
        ..Default::default()
    }
}

fn ec_params(curve: CurveName, kty: KeyType) -> CreateKeyParameters {
    CreateKeyParameters {
        kty: Some(kty),
        curve: Some(curve),
        ..Default::default()
    }
}

async fn create(client: &KeyClient, name: &str, p: CreateKeyParameters) -> Result<Key, BoxError> {
    Ok(client
        .create_key(name, p.try_into()?, None)
        .await?
        .into_model()?)
}

fn kid(key: &Key) -> Result<String, BoxError> {
    Ok(key
        .key
        .as_ref()
        .and_then(|k| k.kid.clone())
        .ok_or("no kid")?)
}

fn version_of(kid: &str) -> String {
    kid.rsplit('/').next().unwrap_or_default().to_string()
}

/// (HTTP status, Key Vault error code) of a failed call.
fn failure<T>(r: azure_core::Result<T>) -> (u16, String) {
    match r {
        Ok(_) => panic!("expected the call to fail"),
        Err(e) => match e.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => (u16::from(*status), error_code.clone().unwrap_or_default()),
            other => panic!("unexpected error kind {other:?}: {e:?}"),
        },
    }
}

fn op_params(alg: EncryptionAlgorithm, value: &[u8]) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(alg),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

#[tokio::test]
async fn unauthenticated_requests_get_the_bearer_challenge() -> TestResult {
    let emu = azure::spawn("127.0.0.1:0").await?;
    let resp = http_client(&emu)?
        .get(format!("{}keys?api-version=7.5", emu.url()))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        challenge.starts_with("Bearer authorization=\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("resource=\"https://vault.azure.net\""),
        "{challenge}"
    );
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "Unauthorized");

    // With a token but without api-version: BadParameter.
    let resp = http_client(&emu)?
        .get(format!("{}keys", emu.url()))
        .bearer_auth("t")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "BadParameter");

    // The SDK answers the challenge and proceeds.
    let client = client_with(&emu, None)?;
    let key = create(&client, "after-challenge", rsa_params(2048, KeyType::Rsa)).await?;
    assert!(kid(&key)?.starts_with(&format!("{}keys/after-challenge/", emu.url())));
    Ok(())
}

#[tokio::test]
async fn keys_of_every_type_with_kid_jwk_and_attributes() -> TestResult {
    let (emu, client) = start().await?;
    let cases = [
        ("rsa2048", rsa_params(2048, KeyType::Rsa), KeyType::Rsa),
        (
            "rsa3072",
            rsa_params(3072, KeyType::RsaHsm),
            KeyType::RsaHsm,
        ),
        ("rsa4096", rsa_params(4096, KeyType::Rsa), KeyType::Rsa),
        ("p256", ec_params(CurveName::P256, KeyType::Ec), KeyType::Ec),
        (
            "p384",
            ec_params(CurveName::P384, KeyType::EcHsm),
            KeyType::EcHsm,
        ),
    ];
    for (name, params, kty) in cases {
        let key = create(&client, name, params).await?;
        let jwk = key.key.clone().ok_or("no jwk")?;
        let kid = jwk.kid.clone().ok_or("no kid")?;
        let version = version_of(&kid);
        assert_eq!(kid, format!("{}keys/{name}/{version}", emu.url()));
        assert_eq!(version.len(), 32, "{kid}");
        assert_eq!(jwk.kty, Some(kty));
        assert!(jwk.d.is_none(), "private material must not leave the vault");
        let attrs = key.attributes.clone().ok_or("no attributes")?;
        assert_eq!(attrs.enabled, Some(true));
        assert!(attrs.created.is_some() && attrs.updated.is_some());
        assert_eq!(
            attrs.recovery_level.map(|l| l.to_string()),
            Some("Recoverable+Purgeable".to_string())
        );
        assert_eq!(attrs.recoverable_days, Some(90));
        match name {
            "rsa2048" | "rsa3072" | "rsa4096" => {
                let bits: usize = name[3..].parse()?;
                assert_eq!(jwk.n.as_ref().map(Vec::len), Some(bits / 8));
                assert_eq!(jwk.e.as_deref(), Some(&[1u8, 0, 1][..]));
                assert_eq!(jwk.key_ops.as_ref().map(Vec::len), Some(6));
            }
            _ => {
                let size = if name == "p256" { 32 } else { 48 };
                assert_eq!(jwk.x.as_ref().map(Vec::len), Some(size));
                assert_eq!(jwk.y.as_ref().map(Vec::len), Some(size));
                assert_eq!(
                    jwk.key_ops,
                    Some(vec!["sign".to_string(), "verify".to_string()])
                );
            }
        }
        // Latest and by version read back the same key.
        let latest = client.get_key(name, None).await?.into_model()?;
        assert_eq!(self::kid(&latest)?, kid);
        let pinned = client
            .get_key(
                name,
                Some(KeyClientGetKeyOptions {
                    key_version: Some(version),
                    ..Default::default()
                }),
            )
            .await?
            .into_model()?;
        assert_eq!(self::kid(&pinned)?, kid);
    }

    let bad_size = client
        .create_key("bad", rsa_params(1024, KeyType::Rsa).try_into()?, None)
        .await;
    assert_eq!(failure(bad_size), (400, "BadParameter".to_string()));
    let bad_name = client
        .create_key("bad_name", rsa_params(2048, KeyType::Rsa).try_into()?, None)
        .await;
    assert_eq!(failure(bad_name), (400, "BadParameter".to_string()));
    let bad_ops = client
        .create_key(
            "ec-encrypt",
            CreateKeyParameters {
                key_ops: Some(vec![KeyOperation::Encrypt]),
                ..ec_params(CurveName::P256, KeyType::Ec)
            }
            .try_into()?,
            None,
        )
        .await;
    assert_eq!(failure(bad_ops), (400, "BadParameter".to_string()));
    let missing = client.get_key("nope", None).await;
    assert_eq!(failure(missing), (404, "KeyNotFound".to_string()));
    let missing_version = client
        .get_key(
            "p256",
            Some(KeyClientGetKeyOptions {
                key_version: Some("0".repeat(32)),
                ..Default::default()
            }),
        )
        .await;
    assert_eq!(failure(missing_version), (404, "KeyNotFound".to_string()));
    Ok(())
}

#[tokio::test]
async fn rsa_encrypt_decrypt_wrap_unwrap_and_a_local_ciphertext() -> TestResult {
    let (_emu, client) = start().await?;
    let key = create(&client, "wrap", rsa_params(3072, KeyType::Rsa)).await?;
    let kid = kid(&key)?;
    let version = version_of(&kid);
    for alg in [
        EncryptionAlgorithm::RsaOaep,
        EncryptionAlgorithm::RsaOaep256,
    ] {
        let enc = client
            .encrypt(
                "wrap",
                op_params(alg.clone(), b"data key").try_into()?,
                None,
            )
            .await?
            .into_model()?;
        assert_eq!(enc.kid.as_deref(), Some(kid.as_str()));
        let ct = enc.result.ok_or("no ciphertext")?;
        assert_eq!(ct.len(), 384);
        let dec = client
            .decrypt(
                "wrap",
                &version,
                op_params(alg.clone(), &ct).try_into()?,
                None,
            )
            .await?
            .into_model()?;
        assert_eq!(dec.result.as_deref(), Some(&b"data key"[..]));

        let wrapped = client
            .wrap_key("wrap", op_params(alg.clone(), &[9u8; 32]).try_into()?, None)
            .await?
            .into_model()?
            .result
            .ok_or("no wrapped key")?;
        let unwrapped = client
            .unwrap_key(
                "wrap",
                &version,
                op_params(alg.clone(), &wrapped).try_into()?,
                None,
            )
            .await?
            .into_model()?;
        assert_eq!(unwrapped.result.as_deref(), Some(&[9u8; 32][..]));
    }

    // A ciphertext made here with the returned public key decrypts in the vault.
    let jwk = key.key.ok_or("no jwk")?;
    let components = PublicKeyComponents {
        n: jwk.n.ok_or("no n")?,
        e: jwk.e.ok_or("no e")?,
    };
    let public: PublicEncryptingKey = components.try_into()?;
    let public = OaepPublicEncryptingKey::new(public)?;
    let mut out = vec![0u8; public.ciphertext_size()];
    let local = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, b"made locally", &mut out, None)?
        .to_vec();
    let dec = client
        .decrypt(
            "wrap",
            &version,
            op_params(EncryptionAlgorithm::RsaOaep256, &local).try_into()?,
            None,
        )
        .await?
        .into_model()?;
    assert_eq!(dec.result.as_deref(), Some(&b"made locally"[..]));

    // The latest version is used when the version is left empty.
    let dec = client
        .decrypt(
            "wrap",
            "",
            op_params(EncryptionAlgorithm::RsaOaep256, &local).try_into()?,
            None,
        )
        .await?
        .into_model()?;
    assert_eq!(dec.result.as_deref(), Some(&b"made locally"[..]));

    let garbage = client
        .decrypt(
            "wrap",
            &version,
            op_params(EncryptionAlgorithm::RsaOaep, &[1u8; 384]).try_into()?,
            None,
        )
        .await;
    assert_eq!(failure(garbage), (400, "BadParameter".to_string()));
    let ec = create(&client, "ec", ec_params(CurveName::P256, KeyType::Ec)).await?;
    let _ = ec;
    let ec_encrypt = client
        .encrypt(
            "ec",
            op_params(EncryptionAlgorithm::RsaOaep, b"x").try_into()?,
            None,
        )
        .await;
    assert_eq!(failure(ec_encrypt), (400, "BadParameter".to_string()));
    Ok(())
}

#[tokio::test]
async fn signatures_verify_in_the_vault_and_locally() -> TestResult {
    let (_emu, client) = start().await?;
    create(&client, "es256", ec_params(CurveName::P256, KeyType::Ec)).await?;
    create(&client, "es384", ec_params(CurveName::P384, KeyType::Ec)).await?;
    create(&client, "rsa", rsa_params(2048, KeyType::Rsa)).await?;
    let msg = b"artifact sha";
    let cases = [
        ("es256", SignatureAlgorithm::Es256, &digest::SHA256),
        ("es384", SignatureAlgorithm::Es384, &digest::SHA384),
        ("rsa", SignatureAlgorithm::Ps256, &digest::SHA256),
        ("rsa", SignatureAlgorithm::Rs256, &digest::SHA256),
    ];
    for (name, alg, dalg) in cases {
        let d = digest::digest(dalg, msg).as_ref().to_vec();
        let signed = client
            .sign(
                name,
                SignParameters {
                    algorithm: Some(alg.clone()),
                    value: Some(d.clone()),
                }
                .try_into()?,
                None,
            )
            .await?
            .into_model()?;
        let sig = signed.result.ok_or("no signature")?;
        let version = version_of(signed.kid.as_deref().ok_or("no kid")?);
        let verify = |digest: Vec<u8>, signature: Vec<u8>| VerifyParameters {
            algorithm: Some(alg.clone()),
            digest: Some(digest),
            signature: Some(signature),
        };
        let ok = client
            .verify(
                name,
                &version,
                verify(d.clone(), sig.clone()).try_into()?,
                None,
            )
            .await?
            .into_model()?;
        assert_eq!(ok.value, Some(true), "{name} {alg:?}");
        let mut other = d.clone();
        other[0] ^= 1;
        let bad = client
            .verify(name, &version, verify(other, sig.clone()).try_into()?, None)
            .await?
            .into_model()?;
        assert_eq!(bad.value, Some(false), "{name} {alg:?}");

        // Independent check with the public key the vault returned.
        let jwk = client
            .get_key(name, None)
            .await?
            .into_model()?
            .key
            .ok_or("no jwk")?;
        match alg {
            SignatureAlgorithm::Es256 | SignatureAlgorithm::Es384 => {
                let mut point = vec![4u8];
                point.extend(jwk.x.ok_or("no x")?);
                point.extend(jwk.y.ok_or("no y")?);
                let valg: &dyn signature::VerificationAlgorithm =
                    if alg == SignatureAlgorithm::Es256 {
                        &signature::ECDSA_P256_SHA256_FIXED
                    } else {
                        &signature::ECDSA_P384_SHA384_FIXED
                    };
                UnparsedPublicKey::new(valg, &point)
                    .verify(msg, &sig)
                    .map_err(|_| format!("{name}: signature does not verify locally"))?;
            }
            _ => {
                let params = if alg == SignatureAlgorithm::Ps256 {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                PublicKeyComponents {
                    n: jwk.n.ok_or("no n")?,
                    e: jwk.e.ok_or("no e")?,
                }
                .verify(params, msg, &sig)
                .map_err(|_| format!("{name} {alg:?}: signature does not verify locally"))?;
            }
        }
    }
    let d = digest::digest(&digest::SHA256, msg).as_ref().to_vec();
    let wrong_curve = client
        .sign(
            "es384",
            SignParameters {
                algorithm: Some(SignatureAlgorithm::Es256),
                value: Some(d.clone()),
            }
            .try_into()?,
            None,
        )
        .await;
    assert_eq!(failure(wrong_curve), (400, "BadParameter".to_string()));
    let short = client
        .sign(
            "es256",
            SignParameters {
                algorithm: Some(SignatureAlgorithm::Es256),
                value: Some(d[..20].to_vec()),
            }
            .try_into()?,
            None,
        )
        .await;
    assert_eq!(failure(short), (400, "BadParameter".to_string()));
    Ok(())
}

async fn try_encrypt(
    client: &KeyClient,
) -> azure_core::Result<
    azure_core::http::Response<azure_security_keyvault_keys::models::KeyOperationResult>,
> {
    let p = op_params(EncryptionAlgorithm::RsaOaep256, b"x");
    client.encrypt("gate", p.try_into()?, None).await
}

#[tokio::test]
async fn updates_gate_operations_by_state_ops_and_dates() -> TestResult {
    let (_emu, client) = start().await?;
    let key = create(&client, "gate", rsa_params(2048, KeyType::Rsa)).await?;
    let version = version_of(&kid(&key)?);
    let update = |p: UpdateKeyPropertiesParameters| -> Result<_, BoxError> { Ok(p.try_into()?) };

    let disabled = client
        .update_key_properties(
            "gate",
            update(UpdateKeyPropertiesParameters {
                key_attributes: Some(KeyAttributes {
                    enabled: Some(false),
                    ..Default::default()
                }),
                tags: Some(HashMap::from([(
                    "owner".to_string(),
                    "payments".to_string(),
                )])),
                ..Default::default()
            })?,
            Some(KeyClientUpdateKeyPropertiesOptions {
                key_version: Some(version.clone()),
                ..Default::default()
            }),
        )
        .await?
        .into_model()?;
    assert_eq!(disabled.attributes.and_then(|a| a.enabled), Some(false));
    assert_eq!(
        disabled
            .tags
            .and_then(|t| t.get("owner").cloned())
            .as_deref(),
        Some("payments")
    );
    assert_eq!(
        failure(try_encrypt(&client).await),
        (403, "Forbidden".to_string())
    );

    client
        .update_key_properties(
            "gate",
            update(UpdateKeyPropertiesParameters {
                key_attributes: Some(KeyAttributes {
                    enabled: Some(true),
                    ..Default::default()
                }),
                key_ops: Some(vec![KeyOperation::Verify, KeyOperation::Decrypt]),
                ..Default::default()
            })?,
            None,
        )
        .await?;
    assert_eq!(
        failure(try_encrypt(&client).await),
        (403, "Forbidden".to_string())
    );
    let sign = client
        .sign(
            "gate",
            SignParameters {
                algorithm: Some(SignatureAlgorithm::Ps256),
                value: Some(vec![0u8; 32]),
            }
            .try_into()?,
            None,
        )
        .await;
    assert_eq!(failure(sign), (403, "Forbidden".to_string()));

    let now = OffsetDateTime::now_utc();
    client
        .update_key_properties(
            "gate",
            update(UpdateKeyPropertiesParameters {
                key_attributes: Some(KeyAttributes {
                    expires: Some(now - Duration::hours(1)),
                    ..Default::default()
                }),
                key_ops: Some(vec![KeyOperation::Encrypt, KeyOperation::Decrypt]),
                ..Default::default()
            })?,
            None,
        )
        .await?;
    assert_eq!(
        failure(try_encrypt(&client).await),
        (403, "Forbidden".to_string())
    );
    let valid_later = client
        .update_key_properties(
            "gate",
            update(UpdateKeyPropertiesParameters {
                key_attributes: Some(KeyAttributes {
                    expires: Some(now + Duration::days(30)),
                    not_before: Some(now + Duration::days(1)),
                    ..Default::default()
                }),
                ..Default::default()
            })?,
            None,
        )
        .await?
        .into_model()?;
    let attrs = valid_later.attributes.ok_or("no attributes")?;
    assert_eq!(
        attrs.expires.map(|t| t.unix_timestamp()),
        Some((now + Duration::days(30)).unix_timestamp())
    );
    assert_eq!(
        failure(try_encrypt(&client).await),
        (403, "Forbidden".to_string())
    );
    client
        .update_key_properties(
            "gate",
            update(UpdateKeyPropertiesParameters {
                key_attributes: Some(KeyAttributes {
                    not_before: Some(now - Duration::days(1)),
                    ..Default::default()
                }),
                ..Default::default()
            })?,
            None,
        )
        .await?;
    try_encrypt(&client).await?;
    Ok(())
}

#[tokio::test]
async fn listing_pages_rotation_and_rotation_policy() -> TestResult {
    let (_emu, client) = start().await?;
    for i in 0..5 {
        create(
            &client,
            &format!("k{i}"),
            ec_params(CurveName::P256, KeyType::Ec),
        )
        .await?;
    }
    // Pages of two: the pager follows nextLink until every key is seen.
    let pager = client.list_key_properties(Some(KeyClientListKeyPropertiesOptions {
        maxresults: Some(2),
        ..Default::default()
    }))?;
    let pages: Vec<_> = pager.into_pages().try_collect().await?;
    assert_eq!(pages.len(), 3);
    let items: Vec<_> = client.list_key_properties(None)?.try_collect().await?;
    let kids: Vec<_> = items.iter().filter_map(|k| k.kid.clone()).collect();
    assert_eq!(kids.len(), 5);
    assert!(kids[0].ends_with("/keys/k0"), "{kids:?}");

    // Rotation policy: the default, then one with an expiry that rotation applies.
    let default = client
        .get_key_rotation_policy("k0", None)
        .await?
        .into_model()?;
    assert!(
        default
            .id
            .as_deref()
            .is_some_and(|id| id.ends_with("/keys/k0/rotationpolicy"))
    );
    let policy = KeyRotationPolicy {
        attributes: Some(KeyRotationPolicyAttributes {
            expiry_time: Some("P90D".into()),
            ..Default::default()
        }),
        lifetime_actions: Some(vec![LifetimeAction {
            action: Some(LifetimeActionType {
                type_prop: Some(KeyRotationPolicyAction::Rotate),
            }),
            trigger: Some(LifetimeActionTrigger {
                time_after_create: Some("P60D".into()),
                ..Default::default()
            }),
        }]),
        ..Default::default()
    };
    let stored = client
        .update_key_rotation_policy("k0", policy.try_into()?, None)
        .await?
        .into_model()?;
    assert_eq!(
        stored.attributes.and_then(|a| a.expiry_time).as_deref(),
        Some("P90D")
    );
    let got = client
        .get_key_rotation_policy("k0", None)
        .await?
        .into_model()?;
    let action = got
        .lifetime_actions
        .and_then(|a| a.into_iter().next())
        .ok_or("no action")?;
    assert_eq!(
        action.action.and_then(|a| a.type_prop),
        Some(KeyRotationPolicyAction::Rotate)
    );
    assert_eq!(
        action.trigger.and_then(|t| t.time_after_create).as_deref(),
        Some("P60D")
    );
    let too_short = KeyRotationPolicy {
        attributes: Some(KeyRotationPolicyAttributes {
            expiry_time: Some("P1D".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let refused = client
        .update_key_rotation_policy("k0", too_short.try_into()?, None)
        .await;
    assert_eq!(failure(refused), (400, "BadParameter".to_string()));

    let first = client.get_key("k0", None).await?.into_model()?;
    let rotated = client.rotate_key("k0", None).await?.into_model()?;
    assert_ne!(kid(&first)?, kid(&rotated)?);
    let exp = rotated
        .attributes
        .clone()
        .and_then(|a| a.expires)
        .ok_or("rotation applied no expiry")?;
    let expected = OffsetDateTime::now_utc() + Duration::days(90);
    assert!((exp - expected).whole_seconds().abs() < 10);
    let latest = client.get_key("k0", None).await?.into_model()?;
    assert_eq!(kid(&latest)?, kid(&rotated)?);
    let versions: Vec<_> = client
        .list_key_properties_versions("k0", None)?
        .try_collect()
        .await?;
    let mut vkids: Vec<_> = versions.iter().filter_map(|v| v.kid.clone()).collect();
    vkids.sort();
    let mut want = vec![kid(&first)?, kid(&rotated)?];
    want.sort();
    assert_eq!(vkids, want);

    // The old version still signs.
    let d = digest::digest(&digest::SHA256, b"m").as_ref().to_vec();
    let old = version_of(&kid(&first)?);
    let signed = client
        .sign(
            "k0",
            SignParameters {
                algorithm: Some(SignatureAlgorithm::Es256),
                value: Some(d),
            }
            .try_into()?,
            Some(azure_security_keyvault_keys::models::KeyClientSignOptions {
                key_version: Some(old.clone()),
                ..Default::default()
            }),
        )
        .await?
        .into_model()?;
    assert_eq!(signed.kid.map(|k| version_of(&k)), Some(old));
    Ok(())
}

#[tokio::test]
async fn soft_delete_recover_and_purge() -> TestResult {
    let (emu, client) = start().await?;
    let key = create(&client, "gone", rsa_params(2048, KeyType::Rsa)).await?;
    let deleted = client.delete_key("gone", None).await?.into_model()?;
    assert_eq!(
        deleted.recovery_id.as_deref(),
        Some(format!("{}deletedkeys/gone", emu.url()).as_str())
    );
    let when = deleted.deleted_date.ok_or("no deletedDate")?;
    let purge = deleted
        .scheduled_purge_date
        .ok_or("no scheduledPurgeDate")?;
    assert_eq!((purge - when).whole_days(), 90);
    assert_eq!(deleted.key.and_then(|k| k.kid), key.key.and_then(|k| k.kid));

    assert_eq!(
        failure(client.get_key("gone", None).await),
        (404, "KeyNotFound".to_string())
    );
    let reuse = client
        .create_key("gone", rsa_params(2048, KeyType::Rsa).try_into()?, None)
        .await;
    assert_eq!(failure(reuse), (409, "Conflict".to_string()));
    let listed: Vec<_> = client
        .list_deleted_key_properties(None)?
        .try_collect()
        .await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].recovery_id.as_deref(),
        Some(format!("{}deletedkeys/gone", emu.url()).as_str())
    );
    client.get_deleted_key("gone", None).await?;

    let recovered = client
        .recover_deleted_key("gone", None)
        .await?
        .into_model()?;
    assert!(recovered.key.is_some());
    client.get_key("gone", None).await?;
    assert_eq!(
        failure(client.get_deleted_key("gone", None).await),
        (404, "KeyNotFound".to_string())
    );

    client.delete_key("gone", None).await?;
    client.purge_deleted_key("gone", None).await?;
    assert_eq!(
        failure(client.get_deleted_key("gone", None).await),
        (404, "KeyNotFound".to_string())
    );
    assert_eq!(
        failure(client.recover_deleted_key("gone", None).await),
        (404, "KeyNotFound".to_string())
    );
    create(&client, "gone", rsa_params(2048, KeyType::Rsa)).await?;
    assert_eq!(
        failure(client.delete_key("never", None).await),
        (404, "KeyNotFound".to_string())
    );
    Ok(())
}

/// Minimal DER reader for the test's own PKCS#8 RSA key: returns the
/// INTEGER contents of the inner RSAPrivateKey, in order.
fn rsa_private_integers(pkcs8: &[u8]) -> Result<Vec<Vec<u8>>, BoxError> {
    fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), BoxError> {
        let tag = *b.first().ok_or("short")?;
        let first = *b.get(1).ok_or("short")?;
        let (len, hdr) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *b.get(2 + i).ok_or("short")? as usize;
            }
            (len, 2 + n)
        };
        let body = b.get(hdr..hdr + len).ok_or("short")?;
        Ok((tag, body, &b[hdr + len..]))
    }
    let (_, info, _) = tlv(pkcs8)?;
    let (_, _version, rest) = tlv(info)?;
    let (_, _alg, rest) = tlv(rest)?;
    let (tag, octets, _) = tlv(rest)?;
    assert_eq!(tag, 0x04);
    let (_, mut seq, _) = tlv(octets)?;
    let mut ints = Vec::new();
    while !seq.is_empty() {
        let (tag, body, rest) = tlv(seq)?;
        assert_eq!(tag, 0x02);
        ints.push(body.to_vec());
        seq = rest;
    }
    Ok(ints)
}

#[tokio::test]
async fn imported_keys_work_with_their_local_halves() -> TestResult {
    let (_emu, client) = start().await?;
    // EC: import a key made here, sign in the vault, verify here.
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    let local =
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())?;
    let point = local.public_key().as_ref().to_vec();
    let d: aws_lc_rs::encoding::EcPrivateKeyBin<'_> = local.private_key().as_be_bytes()?;
    let jwk = JsonWebKey {
        kty: Some(KeyType::Ec),
        crv: Some(CurveName::P256),
        d: Some(d.as_ref().to_vec()),
        x: Some(point[1..33].to_vec()),
        y: Some(point[33..].to_vec()),
        ..Default::default()
    };
    let imported = client
        .import_key(
            "imported-ec",
            ImportKeyParameters {
                key: Some(jwk),
                hsm: Some(true),
                ..Default::default()
            }
            .try_into()?,
            None,
        )
        .await?
        .into_model()?;
    assert_eq!(
        imported.key.as_ref().and_then(|k| k.kty.clone()),
        Some(KeyType::EcHsm)
    );
    assert!(imported.key.as_ref().is_some_and(|k| k.d.is_none()));
    let dg = digest::digest(&digest::SHA256, b"imported")
        .as_ref()
        .to_vec();
    let sig = client
        .sign(
            "imported-ec",
            SignParameters {
                algorithm: Some(SignatureAlgorithm::Es256),
                value: Some(dg),
            }
            .try_into()?,
            None,
        )
        .await?
        .into_model()?
        .result
        .ok_or("no signature")?;
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(b"imported", &sig)
        .map_err(|_| "imported EC signature does not verify")?;

    // RSA: import a key made here, encrypt here, decrypt in the vault.
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048)?;
    let pkcs8 = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&rsa)?;
    let ints = rsa_private_integers(pkcs8.as_ref())?;
    let [_, n, e, d, p, q, dp, dq, qi] = ints.as_slice() else {
        return Err("unexpected RSAPrivateKey shape".into());
    };
    let jwk = JsonWebKey {
        kty: Some(KeyType::Rsa),
        n: Some(n.clone()),
        e: Some(e.clone()),
        d: Some(d.clone()),
        p: Some(p.clone()),
        q: Some(q.clone()),
        dp: Some(dp.clone()),
        dq: Some(dq.clone()),
        qi: Some(qi.clone()),
        key_ops: Some(vec!["decrypt".into(), "encrypt".into()]),
        ..Default::default()
    };
    let imported = client
        .import_key(
            "imported-rsa",
            ImportKeyParameters {
                key: Some(jwk),
                ..Default::default()
            }
            .try_into()?,
            None,
        )
        .await?
        .into_model()?;
    let returned_n = imported
        .key
        .as_ref()
        .and_then(|k| k.n.clone())
        .ok_or("no n")?;
    let strip = |b: &[u8]| {
        b.iter()
            .skip_while(|x| **x == 0)
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&returned_n), strip(n));
    let public = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(
        aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der<'_>>::as_der(
            rsa.public_key(),
        )?
        .as_ref(),
    )?)?;
    let mut out = vec![0u8; public.ciphertext_size()];
    let ct = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, b"byok", &mut out, None)?
        .to_vec();
    let dec = client
        .decrypt(
            "imported-rsa",
            "",
            op_params(EncryptionAlgorithm::RsaOaep256, &ct).try_into()?,
            None,
        )
        .await?
        .into_model()?;
    assert_eq!(dec.result.as_deref(), Some(&b"byok"[..]));
    // Its key_ops allow no signing.
    let sign = client
        .sign(
            "imported-rsa",
            SignParameters {
                algorithm: Some(SignatureAlgorithm::Rs256),
                value: Some(vec![0u8; 32]),
            }
            .try_into()?,
            None,
        )
        .await;
    assert_eq!(failure(sign), (403, "Forbidden".to_string()));
    let public_only = JsonWebKey {
        kty: Some(KeyType::Rsa),
        n: Some(n.clone()),
        e: Some(e.clone()),
        ..Default::default()
    };
    let refused = client
        .import_key(
            "public-only",
            ImportKeyParameters {
                key: Some(public_only),
                ..Default::default()
            }
            .try_into()?,
            None,
        )
        .await;
    assert_eq!(failure(refused), (400, "BadParameter".to_string()));
    Ok(())
}

#[tokio::test]
async fn throttling_hook_answers_429_with_retry_after() -> TestResult {
    let (emu, client) = start().await?;
    create(&client, "t", ec_params(CurveName::P256, KeyType::Ec)).await?;

    // Without retries the 429 surfaces with Key Vault's body.
    emu.hooks().fail_next(1, 429);
    assert_eq!(
        failure(client.get_key("t", None).await),
        (429, "Throttled".to_string())
    );

    // Raw: the header a client should honour.
    emu.hooks().fail_next(1, 429);
    emu.hooks().set_retry_after(2);
    let resp = http_client(&emu)?
        .get(format!("{}keys/t?api-version=7.5", emu.url()))
        .bearer_auth("t")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );

    // The SDK's default retry policy waits Retry-After and then succeeds.
    emu.hooks().set_retry_after(1);
    emu.hooks().fail_next(2, 429);
    let retrying = client_with(&emu, None)?;
    let started = Instant::now();
    retrying.get_key("t", None).await?;
    assert_eq!(emu.hooks().pending_failures(), 0);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );

    // The admin endpoint needs no token.
    let resp = http_client(&emu)?
        .post(format!(
            "{}_emulator/fail-next?count=1&status=429",
            emu.url()
        ))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        failure(client.get_key("t", None).await),
        (429, "Throttled".to_string())
    );
    Ok(())
}
