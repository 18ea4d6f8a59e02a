//! The AWS KMS provider against a real LocalStack: the conformance suite for every key type,
//! discovery of keys keygate did not create, rotation, lifecycle, request ids and bad inputs.
//!
//! One LocalStack serves the whole binary (start-up takes ~20 s), so the checks run in order
//! inside one test; each prints its name as it passes.

mod common;

use aws_sdk_kms::types::{KeySpec as KmsKeySpec, KeyUsageType};
use keygate_provider::conformance::{self, Options};
use keygate_provider::{
    Algorithm, Capabilities, DataKey, DataKeySpec, KeyProvider, KeySpec, KeyUri, KeyVersionInfo,
    Listing, PageRequest, ProviderError, ProviderKey, ProviderKeyState, PublicKeyInfo, Replied,
    Result, SecretBytes, SignInput, VersionRef,
};
use keygate_provider_aws::{AwsKmsProvider, key_uri};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn aws_kms_provider_against_localstack() {
    common::set_dummy_credentials();
    common::runtime().block_on(async {
        let ls = common::start_localstack().await;
        let provider = common::provider("aws-test", common::config(&ls.endpoint())).await;
        conformance_for_every_key_type(&provider).await;
        println!("ok: conformance suite for every key type");
        foreign_keys_are_listed_without_a_keygate_id(&provider).await;
        println!("ok: a key made with the SDK is listed without a keygate id");
        rotation_keeps_old_ciphertexts(&provider).await;
        println!("ok: rotation adds a version; old ciphertexts decrypt");
        rotation_of_asymmetric_keys_is_unsupported(&provider).await;
        println!("ok: rotation of an asymmetric key is unsupported");
        tags_alias_and_description(&provider).await;
        println!("ok: tags, alias and description carry keygate's metadata");
        destruction_lifecycle(&provider).await;
        println!("ok: schedule, cancel and destroy");
        bad_inputs(&provider).await;
        println!("ok: bad inputs are refused with clear messages");
        signing_digests_and_long_messages(&provider).await;
        println!("ok: digests and long messages sign");
        drop(ls);
    });
}

fn spec(name: &str, algorithm: Algorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        key_id: format!("id-{name}"),
        algorithm,
        owner: "team-payments".into(),
        environment: "dev".into(),
        crypto_period: Duration::from_secs(365 * 86_400),
        labels: BTreeMap::new(),
    }
}

fn latest(key: &ProviderKey) -> VersionRef {
    let v = key.versions.last().expect("a key has a version");
    VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    }
}

async fn create(p: &AwsKmsProvider, name: &str, algorithm: Algorithm) -> ProviderKey {
    let reply = p
        .create_key(&spec(name, algorithm))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    assert!(
        reply.request_id.is_some(),
        "create carries the AWS request id"
    );
    reply.value
}

/// KMS rotates only symmetric encryption keys, so the suite checks rotation for those and
/// runs without it for the others (where `rotate` is refused; tested below).
struct NoRotation<'a>(&'a AwsKmsProvider);

#[async_trait::async_trait]
impl KeyProvider for NoRotation<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rotate: false,
            ..self.0.capabilities()
        }
    }
    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        self.0.create_key(spec).await
    }
    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        self.0.describe(key).await
    }
    async fn list(&self, page: &PageRequest) -> Result<Replied<Listing>> {
        self.0.list(page).await
    }
    async fn encrypt(&self, k: &VersionRef, p: &SecretBytes, a: &[u8]) -> Result<Replied<Vec<u8>>> {
        self.0.encrypt(k, p, a).await
    }
    async fn decrypt(&self, k: &VersionRef, b: &[u8], a: &[u8]) -> Result<Replied<SecretBytes>> {
        self.0.decrypt(k, b, a).await
    }
    async fn generate_data_key(
        &self,
        k: &VersionRef,
        s: DataKeySpec,
        a: &[u8],
    ) -> Result<Replied<DataKey>> {
        self.0.generate_data_key(k, s, a).await
    }
    async fn sign(&self, k: &VersionRef, i: SignInput<'_>) -> Result<Replied<Vec<u8>>> {
        self.0.sign(k, i).await
    }
    async fn verify(&self, k: &VersionRef, i: SignInput<'_>, s: &[u8]) -> Result<Replied<bool>> {
        self.0.verify(k, i, s).await
    }
    async fn public_key(&self, k: &VersionRef) -> Result<Replied<PublicKeyInfo>> {
        self.0.public_key(k).await
    }
    async fn mac(&self, k: &VersionRef, m: &[u8]) -> Result<Replied<Vec<u8>>> {
        self.0.mac(k, m).await
    }
    async fn verify_mac(&self, k: &VersionRef, m: &[u8], t: &[u8]) -> Result<Replied<bool>> {
        self.0.verify_mac(k, m, t).await
    }
    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        self.0.rotate(key).await
    }
    async fn set_enabled(&self, key: &KeyUri, on: bool) -> Result<Replied<()>> {
        self.0.set_enabled(key, on).await
    }
}

async fn conformance_for_every_key_type(p: &AwsKmsProvider) {
    let unknown = key_uri(&format!(
        "arn:aws:kms:{}:000000000000:key/00000000-0000-0000-0000-000000000000",
        common::REGION
    ));
    let mut symmetric = Options::new("conf");
    symmetric.algorithms = vec![Algorithm::Aes256Gcm];
    symmetric.unknown_uri = Some(unknown.clone());
    if let Err(report) = conformance::run(p, &symmetric).await {
        panic!("{report}");
    }
    let mut others = Options::new("conf");
    others.algorithms = keygate_provider_aws::SUPPORTED
        .into_iter()
        .filter(|a| *a != Algorithm::Aes256Gcm && !is_oaep(*a))
        .collect();
    others.unknown_uri = Some(unknown);
    if let Err(report) = conformance::run(&NoRotation(p), &others).await {
        panic!("{report}");
    }
    // LocalStack 4.10 gap: its Encrypt under an RSA key does not do RSA-OAEP; it seals with its
    // own symmetric blob (~100 bytes), and its Decrypt of a blob it cannot parse falls to real
    // RSA-OAEP, which fails on a truncated blob with HTTP 500 InternalError instead of
    // InvalidCiphertextException. Real KMS answers InvalidCiphertextException. So for RSA-OAEP
    // every check must pass except that one.
    let mut oaep = Options::new("conf");
    oaep.algorithms = keygate_provider_aws::SUPPORTED
        .into_iter()
        .filter(|a| is_oaep(*a))
        .collect();
    if let Err(report) = conformance::run(&NoRotation(p), &oaep).await {
        let unexpected: Vec<String> = report
            .failures
            .iter()
            .map(|f| f.to_string())
            .filter(|f| !f.contains("decrypt of a truncated ciphertext gave internal"))
            .collect();
        assert!(unexpected.is_empty(), "{report}");
        println!(
            "   RSA-OAEP: {} known LocalStack gap(s) (truncated ciphertext → InternalError)",
            report.failures.len()
        );
    }
}

fn is_oaep(a: Algorithm) -> bool {
    matches!(
        a,
        Algorithm::Rsa2048Oaep | Algorithm::Rsa3072Oaep | Algorithm::Rsa4096Oaep
    )
}

async fn all_keys(p: &AwsKmsProvider) -> Vec<keygate_provider::ListedKey> {
    let mut page = PageRequest {
        page_size: 5,
        page_token: String::new(),
    };
    let mut keys = Vec::new();
    loop {
        let listing = p.list(&page).await.unwrap_or_else(|e| panic!("list: {e}"));
        assert!(listing.request_id.is_some(), "list carries the request id");
        keys.extend(listing.value.keys);
        if listing.value.next_page_token.is_empty() {
            return keys;
        }
        page.page_token = listing.value.next_page_token;
    }
}

async fn foreign_keys_are_listed_without_a_keygate_id(p: &AwsKmsProvider) {
    let out = p
        .client()
        .create_key()
        .key_spec(KmsKeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description("made outside keygate")
        .send()
        .await
        .unwrap_or_else(|e| panic!("SDK CreateKey: {e:?}"));
    let arn = out
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("CreateKey returns the ARN")
        .to_string();
    let ours = create(p, "listed/ours", Algorithm::Aes256Gcm).await;
    let keys = all_keys(p).await;
    let foreign = keys
        .iter()
        .find(|k| k.uri == key_uri(&arn))
        .unwrap_or_else(|| panic!("{arn} is not listed"));
    assert_eq!(foreign.keygate_id, None);
    assert_eq!(foreign.algorithm, Some(Algorithm::EcdsaP256));
    assert_eq!(foreign.state, ProviderKeyState::Enabled);
    let mine = keys
        .iter()
        .find(|k| k.uri == ours.uri)
        .expect("keygate's key is listed");
    assert_eq!(mine.keygate_id.as_deref(), Some("id-listed/ours"));
    // A foreign key is usable through its URI like any other.
    let described = p
        .describe(&key_uri(&arn))
        .await
        .expect("describe foreign key");
    assert_eq!(described.value.algorithm, Algorithm::EcdsaP256);
}

async fn rotation_keeps_old_ciphertexts(p: &AwsKmsProvider) {
    let key = create(p, "rotation/dek", Algorithm::Aes256Gcm).await;
    assert_eq!(key.versions.len(), 1);
    let v1 = latest(&key);
    let secret = SecretBytes::copy_from(b"card number 4111 1111 1111 1111");
    let before = p
        .encrypt(&v1, &secret, b"order-42")
        .await
        .expect("encrypt v1")
        .value;
    let rotated = p.rotate(&key.uri).await.expect("rotate");
    assert!(rotated.request_id.is_some());
    assert_eq!(rotated.value.number, 2);
    let described = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(described.versions.len(), 2, "{:?}", described.versions);
    assert_eq!(described.versions[0].provider_version, "original");
    assert_eq!(described.versions[1], rotated.value);
    println!("   versions after one rotation: {:?}", described.versions);
    let plain = p
        .decrypt(&v1, &before, b"order-42")
        .await
        .expect("old ciphertext decrypts");
    assert_eq!(plain.value.expose(), secret.expose());
    let v2 = latest(&described);
    let after = p
        .encrypt(&v2, &secret, b"")
        .await
        .expect("encrypt v2")
        .value;
    let plain = p
        .decrypt(&v2, &after, b"")
        .await
        .expect("new ciphertext decrypts");
    assert_eq!(plain.value.expose(), secret.expose());
    // A second rotation makes three versions, in order.
    p.rotate(&key.uri).await.expect("rotate again");
    let described = p.describe(&key.uri).await.expect("describe").value;
    let numbers: Vec<u32> = described.versions.iter().map(|v| v.number).collect();
    assert_eq!(numbers, [1, 2, 3]);
}

async fn rotation_of_asymmetric_keys_is_unsupported(p: &AwsKmsProvider) {
    let key = create(p, "rotation/signer", Algorithm::EcdsaP384).await;
    match p.rotate(&key.uri).await {
        Err(ProviderError::Unsupported { what, .. }) => {
            assert!(what.contains("symmetric"), "{what}")
        }
        other => panic!("rotating an ECC key gave {other:?}"),
    }
}

async fn tags_alias_and_description(p: &AwsKmsProvider) {
    let key = create(p, "payments/card-dek", Algorithm::Aes256Gcm).await;
    let arn = key
        .uri
        .as_str()
        .trim_start_matches("awskms:///")
        .to_string();
    let tags = p
        .client()
        .list_resource_tags()
        .key_id(&arn)
        .send()
        .await
        .expect("ListResourceTags");
    let tag = |k: &str| {
        tags.tags()
            .iter()
            .find(|t| t.tag_key() == k)
            .map(|t| t.tag_value().to_string())
    };
    assert_eq!(
        tag("keygate:key-id").as_deref(),
        Some("id-payments/card-dek")
    );
    assert_eq!(tag("keygate:owner").as_deref(), Some("team-payments"));
    assert_eq!(tag("keygate:purpose").as_deref(), Some("encrypt"));
    assert_eq!(tag("keygate:environment").as_deref(), Some("dev"));
    assert_eq!(tag("keygate:crypto-period-days").as_deref(), Some("365"));
    let alias = p
        .client()
        .describe_key()
        .key_id("alias/keygate/payments/card-dek")
        .send()
        .await
        .expect("the alias resolves");
    let metadata = alias.key_metadata().expect("metadata");
    assert_eq!(metadata.arn(), Some(arn.as_str()));
    assert!(
        metadata
            .description()
            .is_some_and(|d| d.contains("payments/card-dek") && d.contains("team-payments")),
        "{:?}",
        metadata.description()
    );
    let status = p
        .client()
        .get_key_rotation_status()
        .key_id(&arn)
        .send()
        .await
        .expect("GetKeyRotationStatus");
    assert!(status.key_rotation_enabled());
    println!(
        "   rotation period: {:?} days",
        status.rotation_period_in_days()
    );
    // The same name twice is refused, not silently given a second key.
    match p
        .create_key(&spec("payments/card-dek", Algorithm::Aes256Gcm))
        .await
    {
        Err(ProviderError::AlreadyExists { .. }) => {}
        other => panic!("a second key under the same alias gave {other:?}"),
    }
    // An alias URI resolves to the same key.
    let by_alias = p
        .describe(&KeyUri::new("awskms:///alias/keygate/payments/card-dek"))
        .await
        .expect("describe by alias");
    assert_eq!(by_alias.value.uri, key.uri);
}

async fn destruction_lifecycle(p: &AwsKmsProvider) {
    let key = create(p, "lifecycle/doomed", Algorithm::HmacSha256).await;
    let v = latest(&key);
    match p
        .schedule_destroy(&key.uri, Duration::from_secs(3 * 86_400))
        .await
    {
        Err(ProviderError::InvalidInput { reason, .. }) => {
            assert!(reason.contains("7 to 30"), "{reason}")
        }
        other => panic!("a 3-day window gave {other:?}"),
    }
    match p.destroy(&key.uri).await {
        Err(ProviderError::FailedPrecondition { .. }) => {}
        other => panic!("destroy before schedule gave {other:?}"),
    }
    let r = p
        .schedule_destroy(&key.uri, Duration::from_secs(7 * 86_400))
        .await
        .expect("schedule");
    assert!(r.request_id.is_some());
    let d = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(d.state, ProviderKeyState::PendingDestruction);
    match p.mac(&v, b"m").await {
        Err(ProviderError::FailedPrecondition { reason, .. }) => {
            println!("   pending deletion: {reason}")
        }
        other => panic!("MAC with a key pending deletion gave {other:?}"),
    }
    p.destroy(&key.uri)
        .await
        .expect("destroy after schedule is a no-op");
    p.cancel_destroy(&key.uri).await.expect("cancel");
    // A cancelled destruction leaves the key disabled; using it again is a second step.
    let d = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(d.state, ProviderKeyState::Disabled);
    p.cancel_destroy(&key.uri)
        .await
        .expect("a second cancel (a retry) succeeds");
    p.set_enabled(&key.uri, true).await.expect("enable");
    p.mac(&v, b"m")
        .await
        .expect("usable again after cancel and enable");
}

async fn bad_inputs(p: &AwsKmsProvider) {
    let key = create(p, "bad/inputs", Algorithm::Aes256Gcm).await;
    let v = latest(&key);
    let big = SecretBytes::new(vec![7; 4097]);
    match p.encrypt(&v, &big, b"").await {
        Err(ProviderError::InvalidInput { reason, .. }) => {
            assert!(
                reason.contains("4096") && reason.contains("4097"),
                "{reason}"
            )
        }
        other => panic!("4097-byte plaintext gave {other:?}"),
    }
    let rsa = create(p, "bad/rsa", Algorithm::Rsa2048Oaep).await;
    let rv = latest(&rsa);
    match p.encrypt(&rv, &SecretBytes::new(vec![1; 191]), b"").await {
        Err(ProviderError::InvalidInput { reason, .. }) => {
            assert!(reason.contains("190"), "{reason}")
        }
        other => panic!("191 bytes under RSA-2048-OAEP gave {other:?}"),
    }
    match p.encrypt(&rv, &SecretBytes::new(vec![1; 10]), b"aad").await {
        Err(ProviderError::InvalidInput { .. }) => {}
        other => panic!("AAD with RSA gave {other:?}"),
    }
    let arn = key.uri.as_str().trim_start_matches("awskms:///");
    let other_region = arn.replace(":us-east-1:", ":eu-west-1:");
    let mut wrong = v.clone();
    wrong.uri = key_uri(&other_region);
    match p.encrypt(&wrong, &SecretBytes::copy_from(b"x"), b"").await {
        Err(ProviderError::InvalidInput { reason, .. }) => {
            assert!(
                reason.contains("eu-west-1") && reason.contains("us-east-1"),
                "{reason}"
            )
        }
        other => panic!("another region's ARN gave {other:?}"),
    }
    wrong.uri = key_uri(&arn.replace(":000000000000:", ":111122223333:"));
    match p.encrypt(&wrong, &SecretBytes::copy_from(b"x"), b"").await {
        Err(ProviderError::InvalidInput { reason, .. }) => assert!(
            reason.contains("111122223333") && reason.contains("000000000000"),
            "{reason}"
        ),
        other => panic!("another account's ARN gave {other:?}"),
    }
    // A ciphertext of another key fails authentication, it is not decrypted.
    let other = create(p, "bad/other", Algorithm::Aes256Gcm).await;
    let blob = p
        .encrypt(&latest(&other), &SecretBytes::copy_from(b"x"), b"")
        .await
        .expect("encrypt")
        .value;
    match p.decrypt(&v, &blob, b"").await {
        Err(ProviderError::AuthenticationFailed { .. }) => {}
        other => panic!("decrypting another key's ciphertext gave {other:?}"),
    }
    // Errors never echo the plaintext.
    let secret = SecretBytes::new(b"TOP-SECRET-PLAINTEXT".repeat(300));
    let err = p
        .encrypt(&v, &secret, b"")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!err.contains("TOP-SECRET"), "{err}");
    // Data keys: KMS's range is 1..=1024 bytes.
    match p.generate_data_key(&v, DataKeySpec { len: 0 }, b"").await {
        Err(ProviderError::InvalidInput { .. }) => {}
        other => panic!("a 0-byte data key gave {other:?}"),
    }
}

async fn signing_digests_and_long_messages(p: &AwsKmsProvider) {
    let key = create(p, "sign/digest", Algorithm::Rsa3072Pkcs1).await;
    // Described again, the key is still PKCS#1 (from its algorithm tag), not PSS.
    let described = p.describe(&key.uri).await.expect("describe").value;
    assert_eq!(described.algorithm, Algorithm::Rsa3072Pkcs1);
    let v = latest(&key);
    let long = vec![b'a'; 10_000];
    let sig = p
        .sign(&v, SignInput::Message(&long))
        .await
        .expect("sign long")
        .value;
    assert!(
        p.verify(&v, SignInput::Message(&long), &sig)
            .await
            .expect("verify")
            .value
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &long);
    assert!(
        p.verify(&v, SignInput::Digest(digest.as_ref()), &sig)
            .await
            .expect("verify digest")
            .value
    );
    match p.sign(&v, SignInput::Digest(&[0; 20])).await {
        Err(ProviderError::InvalidInput { reason, .. }) => {
            assert!(reason.contains("32"), "{reason}")
        }
        other => panic!("a 20-byte digest gave {other:?}"),
    }
}
