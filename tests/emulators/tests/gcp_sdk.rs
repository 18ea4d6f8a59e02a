//! Drives the Cloud KMS emulator through the official `google-cloud-kms-v1`
//! client over real HTTP, and cross-checks its cryptography with aws-lc-rs.

use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::{AlwaysRetry, NeverRetry, RetryPolicyExt};
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::{
    CryptoKey, CryptoKeyVersion, CryptoKeyVersionTemplate, Digest, crypto_key, crypto_key_version,
};
use keygate_emulators::gcp::{self, GcpEmulator};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Alg = crypto_key_version::CryptoKeyVersionAlgorithm;
type Purpose = crypto_key::CryptoKeyPurpose;
type State = crypto_key_version::CryptoKeyVersionState;

const LOCATION: &str = "projects/keygate-test/locations/global";

async fn start() -> Result<(GcpEmulator, KeyManagementService), Box<dyn std::error::Error>> {
    let emu = gcp::spawn("127.0.0.1:0").await?;
    // No retries, so each injected failure surfaces as one error.
    let client = make_client(&emu, NeverRetry).await?;
    Ok((emu, client))
}

async fn make_client<P>(
    emu: &GcpEmulator,
    policy: P,
) -> Result<KeyManagementService, Box<dyn std::error::Error>>
where
    P: Into<google_cloud_gax::retry_policy::RetryPolicyArg>,
{
    let backoff = ExponentialBackoffBuilder::new()
        .with_initial_delay(Duration::from_millis(10))
        .with_maximum_delay(Duration::from_millis(50))
        .build()?;
    Ok(KeyManagementService::builder()
        .with_endpoint(emu.url())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .with_retry_policy(policy)
        .with_backoff_policy(backoff)
        .build()
        .await?)
}

async fn ring(
    client: &KeyManagementService,
    id: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let ring = client
        .create_key_ring()
        .set_parent(LOCATION)
        .set_key_ring_id(id)
        .send()
        .await?;
    Ok(ring.name)
}

async fn key(
    client: &KeyManagementService,
    ring: &str,
    id: &str,
    purpose: Purpose,
    alg: Alg,
) -> Result<CryptoKey, Box<dyn std::error::Error>> {
    Ok(client
        .create_crypto_key()
        .set_parent(ring)
        .set_crypto_key_id(id)
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(purpose)
                .set_version_template(CryptoKeyVersionTemplate::new().set_algorithm(alg)),
        )
        .send()
        .await?)
}

fn code<T: std::fmt::Debug>(r: Result<T, google_cloud_kms_v1::Error>) -> Option<Code> {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.status().map(|s| s.code),
    }
}

fn crc(data: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(data))
}

async fn set_state(
    client: &KeyManagementService,
    name: &str,
    state: State,
) -> Result<CryptoKeyVersion, google_cloud_kms_v1::Error> {
    client
        .update_crypto_key_version()
        .set_crypto_key_version(CryptoKeyVersion::new().set_name(name).set_state(state))
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["state"]))
        .send()
        .await
}

#[tokio::test]
async fn key_rings_create_get_list_and_refusals() -> TestResult {
    let (_emu, client) = start().await?;
    let a = ring(&client, "ring-a").await?;
    assert_eq!(a, format!("{LOCATION}/keyRings/ring-a"));
    ring(&client, "ring-b").await?;
    ring(&client, "ring-c").await?;

    let got = client.get_key_ring().set_name(&a).send().await?;
    assert_eq!(got.name, a);
    assert!(got.create_time.is_some());

    let dup = client
        .create_key_ring()
        .set_parent(LOCATION)
        .set_key_ring_id("ring-a")
        .send()
        .await;
    assert_eq!(code(dup), Some(Code::AlreadyExists));
    let bad = client
        .create_key_ring()
        .set_parent(LOCATION)
        .set_key_ring_id("bad id!")
        .send()
        .await;
    assert_eq!(code(bad), Some(Code::InvalidArgument));
    let missing = client
        .get_key_ring()
        .set_name(format!("{LOCATION}/keyRings/nope"))
        .send()
        .await;
    assert_eq!(code(missing), Some(Code::NotFound));

    // Page through two at a time.
    let first = client
        .list_key_rings()
        .set_parent(LOCATION)
        .set_page_size(2)
        .send()
        .await?;
    assert_eq!(first.key_rings.len(), 2);
    assert_eq!(first.total_size, 3);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_key_rings()
        .set_parent(LOCATION)
        .set_page_size(2)
        .set_page_token(first.next_page_token)
        .send()
        .await?;
    assert_eq!(second.key_rings.len(), 1);
    assert!(second.next_page_token.is_empty());
    assert_eq!(
        second.key_rings[0].name,
        format!("{LOCATION}/keyRings/ring-c")
    );
    Ok(())
}

#[tokio::test]
async fn symmetric_round_trip_with_checksums_and_aad() -> TestResult {
    let (_emu, client) = start().await?;
    let r = ring(&client, "sym").await?;
    let k = key(
        &client,
        &r,
        "dek",
        Purpose::EncryptDecrypt,
        Alg::GoogleSymmetricEncryption,
    )
    .await?;
    assert_eq!(k.purpose, Purpose::EncryptDecrypt);
    let primary = k.primary.ok_or("no primary")?;
    assert_eq!(
        primary.name,
        format!("{r}/cryptoKeys/dek/cryptoKeyVersions/1")
    );
    assert_eq!(primary.state, State::Enabled);

    let pt = b"card number 4111".to_vec();
    let aad = b"tenant=42".to_vec();
    let enc = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(pt.clone())
        .set_plaintext_crc32c(crc(&pt))
        .set_additional_authenticated_data(aad.clone())
        .set_additional_authenticated_data_crc32c(crc(&aad))
        .send()
        .await?;
    assert_eq!(enc.name, primary.name);
    assert!(enc.verified_plaintext_crc32c);
    assert!(enc.verified_additional_authenticated_data_crc32c);
    assert_eq!(enc.ciphertext_crc32c, Some(crc(&enc.ciphertext)));
    assert_ne!(enc.ciphertext.as_ref(), pt.as_slice());

    let dec = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(enc.ciphertext.clone())
        .set_ciphertext_crc32c(crc(&enc.ciphertext))
        .set_additional_authenticated_data(aad.clone())
        .send()
        .await?;
    assert_eq!(dec.plaintext.as_ref(), pt.as_slice());
    assert!(dec.used_primary);
    assert_eq!(dec.plaintext_crc32c, Some(crc(&pt)));

    // Wrong AAD, a tampered ciphertext and a bad client checksum are refused.
    let wrong_aad = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(enc.ciphertext.clone())
        .set_additional_authenticated_data(b"tenant=43".to_vec())
        .send()
        .await;
    assert_eq!(code(wrong_aad), Some(Code::InvalidArgument));
    let mut tampered = enc.ciphertext.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let bad_ct = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(tampered)
        .set_additional_authenticated_data(aad.clone())
        .send()
        .await;
    assert_eq!(code(bad_ct), Some(Code::InvalidArgument));
    let bad_crc = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(pt.clone())
        .set_plaintext_crc32c(crc(&pt) ^ 1)
        .send()
        .await;
    assert_eq!(code(bad_crc), Some(Code::InvalidArgument));
    let bad_ct_crc = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(enc.ciphertext.clone())
        .set_ciphertext_crc32c(crc(&enc.ciphertext) ^ 1)
        .send()
        .await;
    assert_eq!(code(bad_ct_crc), Some(Code::InvalidArgument));

    // A ciphertext from one key does not open under another.
    let other = key(
        &client,
        &r,
        "other",
        Purpose::EncryptDecrypt,
        Alg::GoogleSymmetricEncryption,
    )
    .await?;
    let cross = client
        .decrypt()
        .set_name(&other.name)
        .set_ciphertext(enc.ciphertext.clone())
        .set_additional_authenticated_data(aad)
        .send()
        .await;
    assert_eq!(code(cross), Some(Code::InvalidArgument));

    let missing = client
        .encrypt()
        .set_name(format!("{r}/cryptoKeys/nope"))
        .set_plaintext(pt)
        .send()
        .await;
    assert_eq!(code(missing), Some(Code::NotFound));
    Ok(())
}

#[tokio::test]
async fn versions_rotate_and_follow_the_state_rules() -> TestResult {
    let (_emu, client) = start().await?;
    let r = ring(&client, "rot").await?;
    let k = key(
        &client,
        &r,
        "k",
        Purpose::EncryptDecrypt,
        Alg::GoogleSymmetricEncryption,
    )
    .await?;
    let v1 = format!("{}/cryptoKeyVersions/1", k.name);
    let old = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(b"old".to_vec())
        .send()
        .await?;

    // New version, then make it primary: new encryptions use it, old ones still open.
    let v2 = client
        .create_crypto_key_version()
        .set_parent(&k.name)
        .send()
        .await?;
    assert_eq!(v2.name, format!("{}/cryptoKeyVersions/2", k.name));
    assert_eq!(v2.state, State::Enabled);
    let still = client.get_crypto_key().set_name(&k.name).send().await?;
    assert_eq!(still.primary.ok_or("no primary")?.name, v1);
    let updated = client
        .update_crypto_key_primary_version()
        .set_name(&k.name)
        .set_crypto_key_version_id("2")
        .send()
        .await?;
    assert_eq!(updated.primary.ok_or("no primary")?.name, v2.name);
    let new = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(b"new".to_vec())
        .send()
        .await?;
    assert_eq!(new.name, v2.name);
    let dec = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(old.ciphertext.clone())
        .send()
        .await?;
    assert_eq!(dec.plaintext.as_ref(), b"old");
    assert!(!dec.used_primary);
    // Encrypt with an explicit version name.
    let pinned = client
        .encrypt()
        .set_name(&v1)
        .set_plaintext(b"pinned".to_vec())
        .send()
        .await?;
    assert_eq!(pinned.name, v1);

    // Disabled: no decrypt, cannot become primary; enabled again: works.
    let disabled = set_state(&client, &v1, State::Disabled).await?;
    assert_eq!(disabled.state, State::Disabled);
    let refused = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(old.ciphertext.clone())
        .send()
        .await;
    assert_eq!(code(refused), Some(Code::FailedPrecondition));
    let not_primary = client
        .update_crypto_key_primary_version()
        .set_name(&k.name)
        .set_crypto_key_version_id("1")
        .send()
        .await;
    assert_eq!(code(not_primary), Some(Code::FailedPrecondition));
    let bad_state = set_state(&client, &v1, State::Destroyed).await;
    assert_eq!(code(bad_state), Some(Code::InvalidArgument));

    // Destroy schedules destruction after the key's window; restore brings it back disabled.
    let before = chrono_now();
    let destroyed = client
        .destroy_crypto_key_version()
        .set_name(&v1)
        .send()
        .await?;
    assert_eq!(destroyed.state, State::DestroyScheduled);
    let when = destroyed.destroy_time.ok_or("no destroyTime")?.seconds();
    let window = 30 * 24 * 3600;
    assert!(
        (before + window - 5..=before + window + 5).contains(&when),
        "destroyTime {when}"
    );
    let again = client
        .destroy_crypto_key_version()
        .set_name(&v1)
        .send()
        .await;
    assert_eq!(code(again), Some(Code::FailedPrecondition));
    let enable_scheduled = set_state(&client, &v1, State::Enabled).await;
    assert_eq!(code(enable_scheduled), Some(Code::FailedPrecondition));
    let restored = client
        .restore_crypto_key_version()
        .set_name(&v1)
        .send()
        .await?;
    assert_eq!(restored.state, State::Disabled);
    assert!(restored.destroy_time.is_none());
    let restore_again = client
        .restore_crypto_key_version()
        .set_name(&v1)
        .send()
        .await;
    assert_eq!(code(restore_again), Some(Code::FailedPrecondition));
    set_state(&client, &v1, State::Enabled).await?;
    let dec = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(old.ciphertext)
        .send()
        .await?;
    assert_eq!(dec.plaintext.as_ref(), b"old");

    let listed = client
        .list_crypto_key_versions()
        .set_parent(&k.name)
        .send()
        .await?;
    assert_eq!(listed.crypto_key_versions.len(), 2);
    assert_eq!(listed.total_size, 2);
    let got = client
        .get_crypto_key_version()
        .set_name(&v2.name)
        .send()
        .await?;
    assert_eq!(got.algorithm, Alg::GoogleSymmetricEncryption);
    let missing = client
        .get_crypto_key_version()
        .set_name(format!("{}/cryptoKeyVersions/9", k.name))
        .send()
        .await;
    assert_eq!(code(missing), Some(Code::NotFound));
    Ok(())
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn crypto_keys_patch_list_and_scheduled_rotation() -> TestResult {
    let (_emu, client) = start().await?;
    let r = ring(&client, "patch").await?;
    let k = key(
        &client,
        &r,
        "k",
        Purpose::EncryptDecrypt,
        Alg::GoogleSymmetricEncryption,
    )
    .await?;
    key(
        &client,
        &r,
        "sig",
        Purpose::AsymmetricSign,
        Alg::EcSignP256Sha256,
    )
    .await?;

    let dup = client
        .create_crypto_key()
        .set_parent(&r)
        .set_crypto_key_id("k")
        .set_crypto_key(CryptoKey::new().set_purpose(Purpose::EncryptDecrypt))
        .send()
        .await;
    assert_eq!(code(dup), Some(Code::AlreadyExists));
    let mismatch = client
        .create_crypto_key()
        .set_parent(&r)
        .set_crypto_key_id("bad")
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(Purpose::Mac)
                .set_version_template(
                    CryptoKeyVersionTemplate::new().set_algorithm(Alg::EcSignP256Sha256),
                ),
        )
        .send()
        .await;
    assert_eq!(code(mismatch), Some(Code::InvalidArgument));
    let no_ring = client
        .create_crypto_key()
        .set_parent(format!("{LOCATION}/keyRings/none"))
        .set_crypto_key_id("k")
        .set_crypto_key(CryptoKey::new().set_purpose(Purpose::EncryptDecrypt))
        .send()
        .await;
    assert_eq!(code(no_ring), Some(Code::NotFound));

    let patched = client
        .update_crypto_key()
        .set_crypto_key(
            CryptoKey::new()
                .set_name(&k.name)
                .set_labels([("team", "payments"), ("env", "dev")])
                .set_rotation_period(google_cloud_wkt::Duration::clamp(30 * 86_400, 0))
                .set_next_rotation_time(google_cloud_wkt::Timestamp::clamp(
                    chrono_now() + 86_400,
                    0,
                )),
        )
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths([
            "labels",
            "rotation_period",
            "next_rotation_time",
        ]))
        .send()
        .await?;
    assert_eq!(
        patched.labels.get("team").map(String::as_str),
        Some("payments")
    );
    let period = patched.rotation_period().ok_or("no rotationPeriod")?;
    assert_eq!(period.seconds(), 30 * 86_400);

    // A due rotation time yields a new primary version, as the service's scheduler does.
    let due = client
        .update_crypto_key()
        .set_crypto_key(
            CryptoKey::new()
                .set_name(&k.name)
                .set_next_rotation_time(google_cloud_wkt::Timestamp::clamp(chrono_now() - 10, 0)),
        )
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["next_rotation_time"]))
        .send()
        .await?;
    assert_eq!(
        due.primary.ok_or("no primary")?.name,
        format!("{}/cryptoKeyVersions/2", k.name)
    );
    assert!(due.next_rotation_time.ok_or("no next")?.seconds() > chrono_now());

    let no_mask = client
        .update_crypto_key()
        .set_crypto_key(CryptoKey::new().set_name(&k.name))
        .send()
        .await;
    assert_eq!(code(no_mask), Some(Code::InvalidArgument));

    let listed = client.list_crypto_keys().set_parent(&r).send().await?;
    let names: Vec<_> = listed
        .crypto_keys
        .iter()
        .map(|k| k.name.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["k", "sig"]);
    let sig = &listed.crypto_keys[1];
    assert!(sig.primary.is_none(), "asymmetric keys have no primary");
    assert_eq!(
        sig.version_template.as_ref().map(|t| t.algorithm.clone()),
        Some(Alg::EcSignP256Sha256)
    );
    Ok(())
}

async fn public_key_der(
    client: &KeyManagementService,
    version: &str,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let pk = client.get_public_key().set_name(version).send().await?;
    assert_eq!(pk.pem_crc32c, Some(crc(pk.pem.as_bytes())));
    assert_eq!(pk.name, version);
    let parsed = pem::parse(&pk.pem)?;
    assert_eq!(parsed.tag(), "PUBLIC KEY");
    Ok(parsed.contents().to_vec())
}

#[tokio::test]
async fn asymmetric_signatures_verify_independently() -> TestResult {
    let (_emu, client) = start().await?;
    let r = ring(&client, "sign").await?;
    let msg = b"release v1.2.3";
    let cases: [(
        &str,
        Alg,
        &'static dyn signature::VerificationAlgorithm,
        bool,
    ); 4] = [
        (
            "p256",
            Alg::EcSignP256Sha256,
            &signature::ECDSA_P256_SHA256_ASN1,
            false,
        ),
        (
            "p384",
            Alg::EcSignP384Sha384,
            &signature::ECDSA_P384_SHA384_ASN1,
            true,
        ),
        (
            "pss2048",
            Alg::RsaSignPss2048Sha256,
            &signature::RSA_PSS_2048_8192_SHA256,
            false,
        ),
        (
            "pss3072",
            Alg::RsaSignPss3072Sha256,
            &signature::RSA_PSS_2048_8192_SHA256,
            false,
        ),
    ];
    for (id, alg, verify_alg, sha384) in cases {
        let k = key(&client, &r, id, Purpose::AsymmetricSign, alg.clone()).await?;
        let version = format!("{}/cryptoKeyVersions/1", k.name);
        let der = public_key_der(&client, &version).await?;
        let (d, digest) = if sha384 {
            let d = digest::digest(&digest::SHA384, msg);
            (d, Digest::new().set_sha384(d.as_ref().to_vec()))
        } else {
            let d = digest::digest(&digest::SHA256, msg);
            (d, Digest::new().set_sha256(d.as_ref().to_vec()))
        };
        let resp = client
            .asymmetric_sign()
            .set_name(&version)
            .set_digest(digest)
            .set_digest_crc32c(crc(d.as_ref()))
            .send()
            .await?;
        assert!(resp.verified_digest_crc32c, "{id}");
        assert_eq!(resp.signature_crc32c, Some(crc(&resp.signature)), "{id}");
        UnparsedPublicKey::new(verify_alg, &der)
            .verify(msg, &resp.signature)
            .map_err(|_| format!("{id}: signature does not verify"))?;
        UnparsedPublicKey::new(verify_alg, &der)
            .verify(b"another message", &resp.signature)
            .expect_err("a signature must not verify for other data");
    }

    let p256 = format!("{r}/cryptoKeys/p256/cryptoKeyVersions/1");
    // Wrong digest kind, bad checksum, wrong purpose, disabled version.
    let wrong = client
        .asymmetric_sign()
        .set_name(&p256)
        .set_digest(Digest::new().set_sha384(vec![0u8; 48]))
        .send()
        .await;
    assert_eq!(code(wrong), Some(Code::InvalidArgument));
    let short = client
        .asymmetric_sign()
        .set_name(&p256)
        .set_digest(Digest::new().set_sha256(vec![0u8; 31]))
        .send()
        .await;
    assert_eq!(code(short), Some(Code::InvalidArgument));
    let bad_crc = client
        .asymmetric_sign()
        .set_name(&p256)
        .set_digest(Digest::new().set_sha256(vec![7u8; 32]))
        .set_digest_crc32c(crc(&[7u8; 32]) ^ 1)
        .send()
        .await;
    assert_eq!(code(bad_crc), Some(Code::InvalidArgument));
    let enc = client
        .encrypt()
        .set_name(format!("{r}/cryptoKeys/p256"))
        .set_plaintext(b"x".to_vec())
        .send()
        .await;
    assert_eq!(code(enc), Some(Code::InvalidArgument));
    set_state(&client, &p256, State::Disabled).await?;
    let disabled = client
        .asymmetric_sign()
        .set_name(&p256)
        .set_digest(Digest::new().set_sha256(vec![0u8; 32]))
        .send()
        .await;
    assert_eq!(code(disabled), Some(Code::FailedPrecondition));
    Ok(())
}

#[tokio::test]
async fn rsa_oaep_ciphertext_made_locally_decrypts_in_the_emulator() -> TestResult {
    let (_emu, client) = start().await?;
    let r = ring(&client, "oaep").await?;
    let k = key(
        &client,
        &r,
        "k",
        Purpose::AsymmetricDecrypt,
        Alg::RsaDecryptOaep3072Sha256,
    )
    .await?;
    let version = format!("{}/cryptoKeyVersions/1", k.name);
    let der = public_key_der(&client, &version).await?;
    let public = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(&der)?)?;
    let mut out = vec![0u8; public.ciphertext_size()];
    let ct = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, b"wrapped dek", &mut out, None)?
        .to_vec();
    let resp = client
        .asymmetric_decrypt()
        .set_name(&version)
        .set_ciphertext(ct.clone())
        .set_ciphertext_crc32c(crc(&ct))
        .send()
        .await?;
    assert_eq!(resp.plaintext.as_ref(), b"wrapped dek");
    assert!(resp.verified_ciphertext_crc32c);
    assert_eq!(resp.plaintext_crc32c, Some(crc(b"wrapped dek")));
    let garbage = client
        .asymmetric_decrypt()
        .set_name(&version)
        .set_ciphertext(vec![1u8; 384])
        .send()
        .await;
    assert_eq!(code(garbage), Some(Code::InvalidArgument));
    Ok(())
}

#[tokio::test]
async fn hmac_sign_and_verify() -> TestResult {
    let (_emu, client) = start().await?;
    let r = ring(&client, "mac").await?;
    let k = key(&client, &r, "k", Purpose::Mac, Alg::HmacSha256).await?;
    let version = format!("{}/cryptoKeyVersions/1", k.name);
    let data = b"webhook body".to_vec();
    let signed = client
        .mac_sign()
        .set_name(&version)
        .set_data(data.clone())
        .set_data_crc32c(crc(&data))
        .send()
        .await?;
    assert_eq!(signed.mac.len(), 32);
    assert!(signed.verified_data_crc32c);
    assert_eq!(signed.mac_crc32c, Some(crc(&signed.mac)));
    let ok = client
        .mac_verify()
        .set_name(&version)
        .set_data(data.clone())
        .set_mac(signed.mac.clone())
        .set_mac_crc32c(crc(&signed.mac))
        .send()
        .await?;
    assert!(ok.success && ok.verified_success_integrity && ok.verified_mac_crc32c);
    let mut bad_mac = signed.mac.to_vec();
    bad_mac[0] ^= 1;
    let bad = client
        .mac_verify()
        .set_name(&version)
        .set_data(data.clone())
        .set_mac(bad_mac)
        .send()
        .await?;
    assert!(!bad.success);
    let other = client
        .mac_verify()
        .set_name(&version)
        .set_data(b"other".to_vec())
        .set_mac(signed.mac)
        .send()
        .await?;
    assert!(!other.success);
    let wrong_purpose = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(data)
        .send()
        .await;
    assert_eq!(code(wrong_purpose), Some(Code::InvalidArgument));
    let no_pk = client.get_public_key().set_name(&version).send().await;
    assert_eq!(code(no_pk), Some(Code::InvalidArgument));
    Ok(())
}

#[tokio::test]
async fn hooks_inject_throttling_and_corrupt_checksums() -> TestResult {
    let (emu, client) = start().await?;
    let r = ring(&client, "hooks").await?;
    let k = key(
        &client,
        &r,
        "k",
        Purpose::EncryptDecrypt,
        Alg::GoogleSymmetricEncryption,
    )
    .await?;

    emu.hooks().fail_next(1, 429);
    let throttled = client.get_crypto_key().set_name(&k.name).send().await;
    let err = throttled.expect_err("throttled");
    assert_eq!(err.http_status_code(), Some(429));
    assert_eq!(err.status().map(|s| s.code), Some(Code::ResourceExhausted));
    emu.hooks().fail_next(1, 503);
    let unavailable = client.get_crypto_key().set_name(&k.name).send().await;
    assert_eq!(code(unavailable), Some(Code::Unavailable));
    client.get_crypto_key().set_name(&k.name).send().await?;

    // A retrying client rides through two injected 503s.
    let retrying = make_client(&emu, AlwaysRetry.with_attempt_limit(4)).await?;
    emu.hooks().fail_next(2, 503);
    retrying.get_crypto_key().set_name(&k.name).send().await?;
    assert_eq!(emu.hooks().pending_failures(), 0);

    // The admin endpoint drives the same hooks for a server started by hand.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!(
            "{}/_emulator/fail-next?count=1&status=429",
            emu.url()
        ))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    let err = client
        .get_crypto_key()
        .set_name(&k.name)
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.http_status_code(), Some(429));

    emu.hooks().corrupt_next_checksums(1);
    let enc = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(b"x".to_vec())
        .send()
        .await?;
    assert_ne!(enc.ciphertext_crc32c, Some(crc(&enc.ciphertext)));
    let enc = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(b"x".to_vec())
        .send()
        .await?;
    assert_eq!(enc.ciphertext_crc32c, Some(crc(&enc.ciphertext)));
    let resp = http
        .post(format!("{}/_emulator/corrupt-checksums?count=1", emu.url()))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    let dec = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(enc.ciphertext)
        .send()
        .await?;
    assert_ne!(dec.plaintext_crc32c, Some(crc(b"x")));
    Ok(())
}

#[tokio::test]
async fn scheduled_destruction_completes_after_the_window() -> TestResult {
    let (_emu, client) = start().await?;
    let r = ring(&client, "short").await?;
    // A one-second window (the emulator allows windows shorter than the
    // service's 24-hour minimum so tests need not wait).
    let k = client
        .create_crypto_key()
        .set_parent(&r)
        .set_crypto_key_id("k")
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(Purpose::EncryptDecrypt)
                .set_destroy_scheduled_duration(google_cloud_wkt::Duration::clamp(1, 0)),
        )
        .send()
        .await?;
    let v1 = format!("{}/cryptoKeyVersions/1", k.name);
    let ct = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(b"short-lived".to_vec())
        .send()
        .await?
        .ciphertext;
    let scheduled = client
        .destroy_crypto_key_version()
        .set_name(&v1)
        .send()
        .await?;
    assert_eq!(scheduled.state, State::DestroyScheduled);
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let gone = client.get_crypto_key_version().set_name(&v1).send().await?;
    assert_eq!(gone.state, State::Destroyed);
    assert!(gone.destroy_event_time.is_some());
    let restore = client
        .restore_crypto_key_version()
        .set_name(&v1)
        .send()
        .await;
    assert_eq!(code(restore), Some(Code::FailedPrecondition));
    let decrypt = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(ct)
        .send()
        .await;
    assert_eq!(code(decrypt), Some(Code::FailedPrecondition));
    let encrypt = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(b"x".to_vec())
        .send()
        .await;
    assert_eq!(code(encrypt), Some(Code::FailedPrecondition));

    // DER public keys on request, with their own checksum.
    let sig = key(
        &client,
        &r,
        "sig",
        Purpose::AsymmetricSign,
        Alg::EcSignP256Sha256,
    )
    .await?;
    let der = client
        .get_public_key()
        .set_name(format!("{}/cryptoKeyVersions/1", sig.name))
        .set_public_key_format(google_cloud_kms_v1::model::public_key::PublicKeyFormat::Der)
        .send()
        .await?;
    let data = der.public_key.ok_or("no publicKey")?;
    assert_eq!(data.crc32c_checksum, Some(crc(&data.data)));
    assert_eq!(pem::parse(&der.pem)?.contents(), data.data.as_ref());
    Ok(())
}

#[tokio::test]
async fn a_stopped_emulator_refuses_connections_and_restarts_with_its_keys() -> TestResult {
    let (mut emu, client) = start().await?;
    let r = ring(&client, "outage").await?;
    let k = key(
        &client,
        &r,
        "dek",
        Purpose::EncryptDecrypt,
        Alg::GoogleSymmetricEncryption,
    )
    .await?;
    let sealed = client
        .encrypt()
        .set_name(&k.name)
        .set_plaintext(b"before".to_vec())
        .send()
        .await?;
    emu.stop().await;
    assert!(!emu.is_running());
    // The client's pooled connection was closed too: the next call cannot reach the server.
    let down = client.get_crypto_key().set_name(&k.name).send().await;
    let err = down.expect_err("a stopped emulator answered");
    assert!(err.status().is_none(), "{err:?}");
    emu.restart().await?;
    let opened = client
        .decrypt()
        .set_name(&k.name)
        .set_ciphertext(sealed.ciphertext)
        .send()
        .await?;
    assert_eq!(opened.plaintext.as_ref(), b"before");
    Ok(())
}
