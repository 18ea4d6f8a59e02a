//! The Cloud KMS emulator's import jobs, driven through the official `google-cloud-kms-v1`
//! client: key material wrapped independently of the emulator (RSA-OAEP from the `rsa`
//! crate, AES-KWP from `aes-kw`; the emulator unwraps with aws-lc-rs), imported, then used,
//! with the result checked against the material keygate's test holds.

use aes_kw::KekAes256;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use aws_lc_rs::{digest, hmac};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::import_job::{ImportJobState, ImportMethod};
use google_cloud_kms_v1::model::{
    CryptoKey, CryptoKeyVersion, CryptoKeyVersionTemplate, Digest, ImportJob, ProtectionLevel,
    crypto_key, crypto_key_version,
};
use keygate_emulators::gcp::{self, GcpEmulator};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Alg = crypto_key_version::CryptoKeyVersionAlgorithm;
type Purpose = crypto_key::CryptoKeyPurpose;
type State = crypto_key_version::CryptoKeyVersionState;

const LOCATION: &str = "projects/keygate-test/locations/global";

const METHODS: [(ImportMethod, usize); 6] = [
    (ImportMethod::RsaOaep3072Sha1Aes256, 3072),
    (ImportMethod::RsaOaep4096Sha1Aes256, 4096),
    (ImportMethod::RsaOaep3072Sha256Aes256, 3072),
    (ImportMethod::RsaOaep4096Sha256Aes256, 4096),
    (ImportMethod::RsaOaep3072Sha256, 3072),
    (ImportMethod::RsaOaep4096Sha256, 4096),
];

async fn start() -> Result<(GcpEmulator, KeyManagementService, String), Box<dyn std::error::Error>>
{
    let emu = gcp::spawn("127.0.0.1:0").await?;
    let client = KeyManagementService::builder()
        .with_endpoint(emu.url())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .with_retry_policy(NeverRetry)
        .build()
        .await?;
    let ring = client
        .create_key_ring()
        .set_parent(LOCATION)
        .set_key_ring_id("import")
        .send()
        .await?
        .name;
    Ok((emu, client, ring))
}

async fn job(
    client: &KeyManagementService,
    ring: &str,
    id: &str,
    method: ImportMethod,
) -> Result<ImportJob, google_cloud_kms_v1::Error> {
    client
        .create_import_job()
        .set_parent(ring)
        .set_import_job_id(id)
        .set_import_job(
            ImportJob::new()
                .set_import_method(method)
                .set_protection_level(ProtectionLevel::Software),
        )
        .send()
        .await
}

/// An import-only key with no versions yet, as keys meant for imported material are made.
async fn import_only_key(
    client: &KeyManagementService,
    ring: &str,
    id: &str,
    purpose: Purpose,
    alg: Alg,
) -> Result<CryptoKey, google_cloud_kms_v1::Error> {
    client
        .create_crypto_key()
        .set_parent(ring)
        .set_crypto_key_id(id)
        .set_skip_initial_version_creation(true)
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(purpose)
                .set_import_only(true)
                .set_version_template(CryptoKeyVersionTemplate::new().set_algorithm(alg)),
        )
        .send()
        .await
}

async fn import(
    client: &KeyManagementService,
    key: &str,
    job: &str,
    alg: Alg,
    wrapped: Vec<u8>,
) -> Result<CryptoKeyVersion, google_cloud_kms_v1::Error> {
    client
        .import_crypto_key_version()
        .set_parent(key)
        .set_import_job(job)
        .set_algorithm(alg)
        .set_wrapped_key(wrapped)
        .send()
        .await
}

fn wrapping_key(job: &ImportJob) -> Result<RsaPublicKey, Box<dyn std::error::Error>> {
    let pem = &job
        .public_key
        .as_ref()
        .ok_or("the job has no public key")?
        .pem;
    Ok(RsaPublicKey::from_public_key_pem(pem)?)
}

/// CKM_RSA_AES_KEY_WRAP as Cloud KMS documents it: RSA-OAEP(fresh AES-256 key) followed by
/// AES-KWP(material) under that key.
fn rsa_aes_wrap(
    public: &RsaPublicKey,
    sha1: bool,
    material: &[u8],
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut kek = [0u8; 32];
    SystemRandom::new().fill(&mut kek).map_err(|_| "rng")?;
    let mut rng = rsa::rand_core::OsRng;
    let mut out = if sha1 {
        public.encrypt(&mut rng, Oaep::new::<sha1::Sha1>(), &kek)?
    } else {
        public.encrypt(&mut rng, Oaep::new::<sha2::Sha256>(), &kek)?
    };
    let wrapped = KekAes256::from(kek)
        .wrap_with_padding_vec(material)
        .map_err(|e| format!("aes-kw: {e:?}"))?;
    out.extend_from_slice(&wrapped);
    Ok(out)
}

fn crc(data: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(data))
}

#[tokio::test]
async fn import_jobs_are_created_listed_and_refused_when_malformed() -> TestResult {
    let (_emu, client, ring) = start().await?;
    for (i, (method, bits)) in METHODS.into_iter().enumerate() {
        let made = job(&client, &ring, &format!("job-{i}"), method.clone()).await?;
        assert_eq!(made.name, format!("{ring}/importJobs/job-{i}"));
        assert_eq!(made.import_method, method);
        assert_eq!(made.state, ImportJobState::Active);
        assert!(made.expire_time.is_some() && made.create_time.is_some());
        let public = wrapping_key(&made)?;
        assert_eq!(public.n().bits(), bits, "{method:?}");
        let got = client.get_import_job().set_name(&made.name).send().await?;
        assert_eq!(got.public_key, made.public_key);
    }
    let listed = client.list_import_jobs().set_parent(&ring).send().await?;
    assert_eq!(listed.import_jobs.len(), METHODS.len());

    let dup = job(&client, &ring, "job-0", ImportMethod::RsaOaep3072Sha256).await;
    assert_eq!(
        dup.unwrap_err().status().map(|s| s.code),
        Some(Code::AlreadyExists)
    );
    let missing = client
        .get_import_job()
        .set_name(format!("{ring}/importJobs/nope"))
        .send()
        .await;
    assert_eq!(
        missing.unwrap_err().status().map(|s| s.code),
        Some(Code::NotFound)
    );
    let no_method = client
        .create_import_job()
        .set_parent(&ring)
        .set_import_job_id("no-method")
        .set_import_job(ImportJob::new().set_protection_level(ProtectionLevel::Software))
        .send()
        .await;
    assert_eq!(
        no_method.unwrap_err().status().map(|s| s.code),
        Some(Code::InvalidArgument)
    );
    Ok(())
}

#[tokio::test]
async fn wrapped_hmac_and_aes_keys_import_and_are_used() -> TestResult {
    let (_emu, client, ring) = start().await?;
    for (i, (method, sha1)) in [
        (ImportMethod::RsaOaep3072Sha1Aes256, true),
        (ImportMethod::RsaOaep4096Sha256Aes256, false),
    ]
    .into_iter()
    .enumerate()
    {
        let j = job(&client, &ring, &format!("hmac-job-{i}"), method).await?;
        let public = wrapping_key(&j)?;

        // HMAC: the tag Cloud KMS computes is the one the imported bytes give.
        let mut secret = [0u8; 32];
        SystemRandom::new().fill(&mut secret).map_err(|_| "rng")?;
        let key = import_only_key(
            &client,
            &ring,
            &format!("mac-{i}"),
            Purpose::Mac,
            Alg::HmacSha256,
        )
        .await?;
        let v = import(
            &client,
            &key.name,
            &j.name,
            Alg::HmacSha256,
            rsa_aes_wrap(&public, sha1, &secret)?,
        )
        .await?;
        assert_eq!(v.state, State::Enabled, "{v:?}");
        assert_eq!(v.import_job, j.name);
        assert!(v.import_time.is_some());
        let data = b"amount=10".to_vec();
        let tag = client
            .mac_sign()
            .set_name(&v.name)
            .set_data(data.clone())
            .set_data_crc32c(crc(&data))
            .send()
            .await?;
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), &data);
        assert_eq!(
            tag.mac.as_ref(),
            expected.as_ref(),
            "imported HMAC key in use"
        );

        // AES: an import-only key's first imported version becomes primary and round-trips.
        let mut aes = [0u8; 32];
        SystemRandom::new().fill(&mut aes).map_err(|_| "rng")?;
        let key = import_only_key(
            &client,
            &ring,
            &format!("dek-{i}"),
            Purpose::EncryptDecrypt,
            Alg::GoogleSymmetricEncryption,
        )
        .await?;
        let v = import(
            &client,
            &key.name,
            &j.name,
            Alg::GoogleSymmetricEncryption,
            rsa_aes_wrap(&public, sha1, &aes)?,
        )
        .await?;
        assert_eq!(v.state, State::Enabled);
        let key = client.get_crypto_key().set_name(&key.name).send().await?;
        assert_eq!(key.primary.map(|p| p.name), Some(v.name.clone()));
        let sealed = client
            .encrypt()
            .set_name(&key.name)
            .set_plaintext(b"imported".to_vec())
            .send()
            .await?;
        let opened = client
            .decrypt()
            .set_name(&key.name)
            .set_ciphertext(sealed.ciphertext)
            .send()
            .await?;
        assert_eq!(opened.plaintext.as_ref(), b"imported");
    }
    Ok(())
}

#[tokio::test]
async fn the_direct_rsa_oaep_method_imports_symmetric_material_only() -> TestResult {
    let (_emu, client, ring) = start().await?;
    let j = job(&client, &ring, "direct", ImportMethod::RsaOaep3072Sha256).await?;
    let public = wrapping_key(&j)?;
    let mut secret = [0u8; 32];
    SystemRandom::new().fill(&mut secret).map_err(|_| "rng")?;
    let wrapped = public.encrypt(
        &mut rsa::rand_core::OsRng,
        Oaep::new::<sha2::Sha256>(),
        &secret,
    )?;
    let key = import_only_key(&client, &ring, "mac", Purpose::Mac, Alg::HmacSha256).await?;
    let v = import(&client, &key.name, &j.name, Alg::HmacSha256, wrapped).await?;
    assert_eq!(v.state, State::Enabled);
    let verified = client
        .mac_verify()
        .set_name(&v.name)
        .set_data(b"x".to_vec())
        .set_mac(
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), b"x")
                .as_ref()
                .to_vec(),
        )
        .send()
        .await?;
    assert!(verified.success);

    let ec = import_only_key(
        &client,
        &ring,
        "ec",
        Purpose::AsymmetricSign,
        Alg::EcSignP256Sha256,
    )
    .await?;
    let refused = import(
        &client,
        &ec.name,
        &j.name,
        Alg::EcSignP256Sha256,
        vec![1; 384],
    )
    .await;
    assert_eq!(
        refused.unwrap_err().status().map(|s| s.code),
        Some(Code::InvalidArgument)
    );
    Ok(())
}

#[tokio::test]
async fn wrapped_private_keys_import_and_sign_and_decrypt() -> TestResult {
    let (_emu, client, ring) = start().await?;
    let j = job(
        &client,
        &ring,
        "asym",
        ImportMethod::RsaOaep3072Sha256Aes256,
    )
    .await?;
    let public = wrapping_key(&j)?;

    // EC P-256: a signature by the imported version verifies with the test's own public key.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "keygen")?;
    let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| "parse")?;
    let key = import_only_key(
        &client,
        &ring,
        "signer",
        Purpose::AsymmetricSign,
        Alg::EcSignP256Sha256,
    )
    .await?;
    let v = import(
        &client,
        &key.name,
        &j.name,
        Alg::EcSignP256Sha256,
        rsa_aes_wrap(&public, false, pkcs8.as_ref())?,
    )
    .await?;
    assert_eq!(v.state, State::Enabled);
    let message = b"release 1.0";
    let d = digest::digest(&digest::SHA256, message);
    let sig = client
        .asymmetric_sign()
        .set_name(&v.name)
        .set_digest(Digest::new().set_sha256(d.as_ref().to_vec()))
        .send()
        .await?;
    UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        pair.public_key().as_ref(),
    )
    .verify(message, &sig.signature)
    .map_err(|_| "the imported EC key did not make the signature")?;

    // RSA-OAEP-3072: a ciphertext made with the test's own public key decrypts in the emulator.
    let private = aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa3072)
        .map_err(|_| "rsa keygen")?;
    let private_der = private.as_der().map_err(|_| "der")?.as_ref().to_vec();
    let own_public = RsaPublicKey::from_public_key_der(
        private.public_key().as_der().map_err(|_| "der")?.as_ref(),
    )?;
    let key = import_only_key(
        &client,
        &ring,
        "decrypter",
        Purpose::AsymmetricDecrypt,
        Alg::RsaDecryptOaep3072Sha256,
    )
    .await?;
    let v = import(
        &client,
        &key.name,
        &j.name,
        Alg::RsaDecryptOaep3072Sha256,
        rsa_aes_wrap(&public, false, &private_der)?,
    )
    .await?;
    assert_eq!(v.state, State::Enabled);
    let ct = own_public.encrypt(
        &mut rsa::rand_core::OsRng,
        Oaep::new::<sha2::Sha256>(),
        b"for the imported key",
    )?;
    let opened = client
        .asymmetric_decrypt()
        .set_name(&v.name)
        .set_ciphertext(ct)
        .send()
        .await?;
    assert_eq!(opened.plaintext.as_ref(), b"for the imported key");
    Ok(())
}

#[tokio::test]
async fn material_that_does_not_unwrap_is_import_failed_with_a_reason() -> TestResult {
    let (_emu, client, ring) = start().await?;
    let j = job(
        &client,
        &ring,
        "good",
        ImportMethod::RsaOaep3072Sha256Aes256,
    )
    .await?;
    let other = job(
        &client,
        &ring,
        "other",
        ImportMethod::RsaOaep3072Sha256Aes256,
    )
    .await?;
    let key = import_only_key(&client, &ring, "mac", Purpose::Mac, Alg::HmacSha256).await?;

    // Wrapped for another job's key.
    let v = import(
        &client,
        &key.name,
        &j.name,
        Alg::HmacSha256,
        rsa_aes_wrap(&wrapping_key(&other)?, false, &[7; 32])?,
    )
    .await?;
    assert_eq!(v.state, State::ImportFailed);
    assert!(
        v.import_failure_reason.contains("RSA-OAEP"),
        "{}",
        v.import_failure_reason
    );

    // The AES-KWP part altered.
    let mut wrapped = rsa_aes_wrap(&wrapping_key(&j)?, false, &[7; 32])?;
    let last = wrapped.len() - 1;
    wrapped[last] ^= 1;
    let v = import(&client, &key.name, &j.name, Alg::HmacSha256, wrapped).await?;
    assert_eq!(v.state, State::ImportFailed);
    assert!(
        v.import_failure_reason.contains("AES-KWP"),
        "{}",
        v.import_failure_reason
    );

    // Material of the wrong size for the algorithm.
    let v = import(
        &client,
        &key.name,
        &j.name,
        Alg::HmacSha256,
        rsa_aes_wrap(&wrapping_key(&j)?, false, &[7; 16])?,
    )
    .await?;
    assert_eq!(v.state, State::ImportFailed);
    assert!(
        v.import_failure_reason.contains("32 bytes"),
        "{}",
        v.import_failure_reason
    );

    // A failed version cannot be used, and an algorithm of another purpose is refused.
    let used = client
        .mac_sign()
        .set_name(&v.name)
        .set_data(b"x".to_vec())
        .send()
        .await;
    assert_eq!(
        used.unwrap_err().status().map(|s| s.code),
        Some(Code::FailedPrecondition)
    );
    let wrong = import(
        &client,
        &key.name,
        &j.name,
        Alg::GoogleSymmetricEncryption,
        rsa_aes_wrap(&wrapping_key(&j)?, false, &[7; 32])?,
    )
    .await;
    assert_eq!(
        wrong.unwrap_err().status().map(|s| s.code),
        Some(Code::InvalidArgument)
    );
    Ok(())
}
