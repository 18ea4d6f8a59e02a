//! The provider conformance suite.
//!
//! Given any [`KeyProvider`], [`run`] exercises every operation its [`Capabilities`] claim, for
//! every algorithm it claims: round trips, independent verification of signatures with
//! aws-lc-rs, versioning after rotate, wrong-purpose and unknown-key errors, disabled keys and
//! listing. A provider crate calls it from its own tests against its real backend:
//!
//! ```ignore
//! keygate_provider::conformance::run(&provider, &Options::new("conf")).await.unwrap();
//! ```
//!
//! Each failed expectation is reported as a [`Failure`] naming the algorithm and the check.

use crate::{
    Algorithm, DataKeySpec, KeyProvider, KeyPurpose, KeySpec, KeyUri, PageRequest, ProviderError,
    ProviderKey, ProviderKeyState, SecretBytes, SignInput, VersionRef,
};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How to run the suite.
pub struct Options {
    /// Prefix for the names of keys the suite creates; make it unique per run.
    pub name_prefix: String,
    /// Algorithms to test; empty means every one the provider claims.
    pub algorithms: Vec<Algorithm>,
    /// A URI in the provider's scheme that names no key, for the not-found check.
    pub unknown_uri: Option<KeyUri>,
}

impl Options {
    pub fn new(name_prefix: impl Into<String>) -> Self {
        Self {
            name_prefix: name_prefix.into(),
            algorithms: Vec::new(),
            unknown_uri: None,
        }
    }
}

/// One failed expectation.
#[derive(Debug)]
pub struct Failure {
    pub algorithm: Option<Algorithm>,
    pub check: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm {
            Some(a) => write!(f, "[{a}] {}", self.check),
            None => write!(f, "{}", self.check),
        }
    }
}

/// Every failure of a run, printed one per line.
#[derive(Debug)]
pub struct Report {
    pub provider: String,
    pub failures: Vec<Failure>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "provider '{}' failed {} conformance check(s):",
            self.provider,
            self.failures.len()
        )?;
        for failure in &self.failures {
            writeln!(f, "  - {failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

/// Runs the suite; `Ok` when every check passed.
pub async fn run(provider: &dyn KeyProvider, options: &Options) -> Result<(), Report> {
    let mut suite = Suite {
        provider,
        options,
        failures: Vec::new(),
    };
    suite.run_all().await;
    if suite.failures.is_empty() {
        Ok(())
    } else {
        Err(Report {
            provider: provider.name().to_string(),
            failures: suite.failures,
        })
    }
}

struct Suite<'a> {
    provider: &'a dyn KeyProvider,
    options: &'a Options,
    failures: Vec<Failure>,
}

fn version_ref(key: &ProviderKey, index: usize) -> VersionRef {
    let v = &key.versions[index];
    VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    }
}

fn latest(key: &ProviderKey) -> VersionRef {
    version_ref(key, key.versions.len() - 1)
}

impl Suite<'_> {
    fn fail(&mut self, algorithm: Option<Algorithm>, check: impl Into<String>) {
        self.failures.push(Failure {
            algorithm,
            check: check.into(),
        });
    }

    fn check(&mut self, algorithm: Algorithm, ok: bool, check: &str) {
        if !ok {
            self.fail(Some(algorithm), check.to_string());
        }
    }

    async fn run_all(&mut self) {
        let caps = self.provider.capabilities();
        let algorithms: Vec<Algorithm> = if self.options.algorithms.is_empty() {
            caps.algorithms.clone()
        } else {
            self.options.algorithms.clone()
        };
        if algorithms.is_empty() {
            self.fail(None, "provider claims no algorithms");
        }
        for algorithm in algorithms {
            if !caps.supports(algorithm) {
                self.fail(
                    Some(algorithm),
                    "asked to test an algorithm the provider does not claim",
                );
                continue;
            }
            self.run_algorithm(algorithm, &caps).await;
        }
        self.unknown_key().await;
    }

    async fn create(&mut self, algorithm: Algorithm) -> Option<ProviderKey> {
        let spec = KeySpec {
            name: format!(
                "{}-{}",
                self.options.name_prefix,
                algorithm.as_str().replace('-', "")
            ),
            key_id: format!("conformance-{}", algorithm.as_str()),
            algorithm,
            owner: "conformance-suite".into(),
            environment: "dev".into(),
            crypto_period: Duration::from_secs(90 * 86_400),
            labels: BTreeMap::new(),
        };
        match self.provider.create_key(&spec).await {
            Ok(reply) => {
                let key = reply.value;
                if key.algorithm != algorithm {
                    self.fail(Some(algorithm), "created key reports another algorithm");
                }
                if key.versions.len() != 1 {
                    self.fail(
                        Some(algorithm),
                        format!("new key has {} versions, expected 1", key.versions.len()),
                    );
                    return None;
                }
                if key.state != ProviderKeyState::Enabled {
                    self.fail(Some(algorithm), "new key is not enabled");
                }
                Some(key)
            }
            Err(e) => {
                self.fail(Some(algorithm), format!("create_key failed: {e}"));
                None
            }
        }
    }

    async fn run_algorithm(&mut self, algorithm: Algorithm, caps: &crate::Capabilities) {
        let Some(key) = self.create(algorithm).await else {
            return;
        };
        match self.provider.describe(&key.uri).await {
            Ok(d) => self.check(
                algorithm,
                d.value.uri == key.uri && d.value.versions == key.versions,
                "describe returns the created key and its versions",
            ),
            Err(e) => self.fail(Some(algorithm), format!("describe failed: {e}")),
        }
        let v1 = latest(&key);
        match algorithm.purpose() {
            KeyPurpose::Encrypt => self.encryption(&v1).await,
            KeyPurpose::Sign => self.signing(&v1).await,
            KeyPurpose::Mac => self.macs(&v1).await,
        }
        self.wrong_purpose(&v1).await;
        if caps.rotate {
            self.rotation(&key).await;
        }
        if caps.disable {
            self.disabling(&key).await;
        }
        if caps.list {
            self.listing(&key.uri, algorithm).await;
            self.foreign_page_token(algorithm).await;
        }
    }

    async fn encryption(&mut self, v: &VersionRef) {
        let a = v.algorithm;
        let plaintext = SecretBytes::copy_from(b"conformance plaintext \x00\x01\x02");
        let aad: &[u8] = if a.rsa_bits().is_some() {
            b""
        } else {
            b"context"
        };
        let blob = match self.provider.encrypt(v, &plaintext, aad).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("encrypt failed: {e}")),
        };
        self.check(
            a,
            !blob
                .windows(plaintext.len())
                .any(|w| w == plaintext.expose()),
            "ciphertext does not contain the plaintext",
        );
        match self.provider.decrypt(v, &blob, aad).await {
            Ok(r) => self.check(
                a,
                r.value.expose() == plaintext.expose(),
                "decrypt returns the plaintext",
            ),
            Err(e) => self.fail(Some(a), format!("decrypt failed: {e}")),
        }
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        self.expect_auth_failure(v, &tampered, aad, "a tampered ciphertext")
            .await;
        self.expect_auth_failure(v, &blob[..blob.len() / 2], aad, "a truncated ciphertext")
            .await;
        if !aad.is_empty() {
            self.expect_auth_failure(v, &blob, b"other context", "different associated data")
                .await;
        }
        if a.is_symmetric() {
            match self
                .provider
                .generate_data_key(v, DataKeySpec { len: 32 }, aad)
                .await
            {
                Ok(r) => {
                    let dk = r.value;
                    self.check(a, dk.plaintext.len() == 32, "data key is 32 bytes");
                    match self.provider.decrypt(v, &dk.sealed, aad).await {
                        Ok(p) => self.check(
                            a,
                            p.value.expose() == dk.plaintext.expose(),
                            "sealed data key decrypts to its plaintext",
                        ),
                        Err(e) => self.fail(Some(a), format!("decrypting a data key failed: {e}")),
                    }
                }
                Err(e) => self.fail(Some(a), format!("generate_data_key failed: {e}")),
            }
        }
    }

    async fn expect_auth_failure(&mut self, v: &VersionRef, blob: &[u8], aad: &[u8], what: &str) {
        match self.provider.decrypt(v, blob, aad).await {
            Ok(_) => self.fail(Some(v.algorithm), format!("decrypt accepted {what}")),
            Err(
                ProviderError::AuthenticationFailed { .. } | ProviderError::InvalidInput { .. },
            ) => {}
            Err(e) => self.fail(
                Some(v.algorithm),
                format!(
                    "decrypt of {what} gave {} instead of authentication_failed: {e}",
                    e.kind()
                ),
            ),
        }
    }

    async fn signing(&mut self, v: &VersionRef) {
        let a = v.algorithm;
        let message = b"conformance message to sign";
        let signature = match self.provider.sign(v, SignInput::Message(message)).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("sign failed: {e}")),
        };
        match self
            .provider
            .verify(v, SignInput::Message(message), &signature)
            .await
        {
            Ok(r) => self.check(a, r.value, "verify accepts the signature"),
            Err(e) => self.fail(Some(a), format!("verify failed: {e}")),
        }
        match self
            .provider
            .verify(v, SignInput::Message(b"another message"), &signature)
            .await
        {
            Ok(r) => self.check(
                a,
                !r.value,
                "verify rejects a signature over another message",
            ),
            Err(ProviderError::InvalidInput { .. }) => {}
            Err(e) => self.fail(Some(a), format!("verify of a wrong message errored: {e}")),
        }
        match self.provider.public_key(v).await {
            Ok(r) => self.check(
                a,
                independent::verify(a, &r.value.spki_der, message, &signature),
                "signature verifies independently (aws-lc-rs) with the returned public key",
            ),
            Err(e) => self.fail(Some(a), format!("public_key failed: {e}")),
        }
    }

    async fn macs(&mut self, v: &VersionRef) {
        let a = v.algorithm;
        let message = b"conformance message to mac";
        let tag = match self.provider.mac(v, message).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("mac failed: {e}")),
        };
        self.check(a, tag.len() == 32, "HMAC-SHA-256 tag is 32 bytes");
        match self.provider.verify_mac(v, message, &tag).await {
            Ok(r) => self.check(a, r.value, "verify_mac accepts the tag"),
            Err(e) => self.fail(Some(a), format!("verify_mac failed: {e}")),
        }
        match self.provider.verify_mac(v, b"another message", &tag).await {
            Ok(r) => self.check(a, !r.value, "verify_mac rejects a tag over another message"),
            Err(e) => self.fail(
                Some(a),
                format!("verify_mac of a wrong message errored: {e}"),
            ),
        }
    }

    async fn wrong_purpose(&mut self, v: &VersionRef) {
        let a = v.algorithm;
        let result = match a.purpose() {
            KeyPurpose::Encrypt | KeyPurpose::Mac => self
                .provider
                .sign(v, SignInput::Message(b"x"))
                .await
                .map(|_| ()),
            KeyPurpose::Sign => self
                .provider
                .encrypt(v, &SecretBytes::copy_from(b"x"), b"")
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => self.fail(Some(a), "a wrong-purpose operation succeeded"),
            Err(ProviderError::FailedPrecondition { .. } | ProviderError::Unsupported { .. }) => {}
            Err(e) => self.fail(
                Some(a),
                format!(
                    "wrong-purpose operation gave {} instead of failed_precondition: {e}",
                    e.kind()
                ),
            ),
        }
    }

    async fn rotation(&mut self, key: &ProviderKey) {
        let a = key.algorithm;
        let v1 = latest(key);
        // Something made under v1 to check after rotation.
        let before = self.produce(&v1).await;
        let new_version = match self.provider.rotate(&key.uri).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("rotate failed: {e}")),
        };
        self.check(a, new_version.number == 2, "rotation adds version 2");
        let described = match self.provider.describe(&key.uri).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("describe after rotate failed: {e}")),
        };
        self.check(
            a,
            described.versions.len() == 2 && described.versions[1] == new_version,
            "describe lists both versions, the new one last",
        );
        if described.versions.len() != 2 {
            return;
        }
        let v2 = version_ref(&described, 1);
        let after = self.produce(&v2).await;
        if let (Some(before), Some(after)) = (&before, &after) {
            self.check(
                a,
                before != after,
                "the new version produces different output",
            );
        }
        if let Some(before) = before {
            self.consume(
                &v1,
                &before,
                "output of version 1 still works after rotation",
            )
            .await;
        }
        if let Some(after) = after {
            self.consume(&v2, &after, "output of version 2 works").await;
        }
    }

    /// Output made with a version that `consume` can check with the same version.
    async fn produce(&mut self, v: &VersionRef) -> Option<Vec<u8>> {
        let a = v.algorithm;
        let result = match a.purpose() {
            KeyPurpose::Encrypt => self
                .provider
                .encrypt(v, &SecretBytes::copy_from(b"rotation"), b"")
                .await
                .map(|r| r.value),
            KeyPurpose::Sign => self
                .provider
                .sign(v, SignInput::Message(b"rotation"))
                .await
                .map(|r| r.value),
            KeyPurpose::Mac => self.provider.mac(v, b"rotation").await.map(|r| r.value),
        };
        match result {
            Ok(out) => Some(out),
            Err(e) => {
                self.fail(
                    Some(a),
                    format!("operation with version {} failed: {e}", v.version),
                );
                None
            }
        }
    }

    async fn consume(&mut self, v: &VersionRef, output: &[u8], check: &str) {
        let a = v.algorithm;
        let ok = match a.purpose() {
            KeyPurpose::Encrypt => self
                .provider
                .decrypt(v, output, b"")
                .await
                .map(|r| r.value.expose() == b"rotation"),
            KeyPurpose::Sign => self
                .provider
                .verify(v, SignInput::Message(b"rotation"), output)
                .await
                .map(|r| r.value),
            KeyPurpose::Mac => self
                .provider
                .verify_mac(v, b"rotation", output)
                .await
                .map(|r| r.value),
        };
        match ok {
            Ok(ok) => self.check(a, ok, check),
            Err(e) => self.fail(Some(a), format!("{check}: {e}")),
        }
    }

    async fn disabling(&mut self, key: &ProviderKey) {
        let a = key.algorithm;
        if let Err(e) = self.provider.set_enabled(&key.uri, false).await {
            return self.fail(Some(a), format!("disable failed: {e}"));
        }
        match self.provider.describe(&key.uri).await {
            Ok(r) => self.check(
                a,
                r.value.state == ProviderKeyState::Disabled,
                "describe shows a disabled key as disabled",
            ),
            Err(e) => self.fail(Some(a), format!("describe of a disabled key failed: {e}")),
        }
        let v = latest(key);
        let v = match self.provider.describe(&key.uri).await {
            Ok(r) => latest(&r.value),
            Err(_) => v,
        };
        match self.produce_quiet(&v).await {
            Ok(()) => self.fail(Some(a), "a disabled key was usable"),
            Err(ProviderError::FailedPrecondition { .. }) => {}
            Err(e) => self.fail(
                Some(a),
                format!(
                    "using a disabled key gave {} instead of failed_precondition: {e}",
                    e.kind()
                ),
            ),
        }
        if let Err(e) = self.provider.set_enabled(&key.uri, true).await {
            return self.fail(Some(a), format!("re-enable failed: {e}"));
        }
        if let Err(e) = self.produce_quiet(&v).await {
            self.fail(Some(a), format!("a re-enabled key is not usable: {e}"));
        }
    }

    async fn produce_quiet(&self, v: &VersionRef) -> Result<(), ProviderError> {
        match v.algorithm.purpose() {
            KeyPurpose::Encrypt => self
                .provider
                .encrypt(v, &SecretBytes::copy_from(b"x"), b"")
                .await
                .map(|_| ()),
            KeyPurpose::Sign => self
                .provider
                .sign(v, SignInput::Message(b"x"))
                .await
                .map(|_| ()),
            KeyPurpose::Mac => self.provider.mac(v, b"x").await.map(|_| ()),
        }
    }

    async fn listing(&mut self, uri: &KeyUri, algorithm: Algorithm) {
        let mut page = PageRequest {
            page_size: 100,
            page_token: String::new(),
        };
        for _ in 0..1000 {
            match self.provider.list(&page).await {
                Ok(r) => {
                    if r.value.keys.iter().any(|k| &k.uri == uri) {
                        return;
                    }
                    if r.value.next_page_token.is_empty() {
                        break;
                    }
                    page.page_token = r.value.next_page_token;
                }
                Err(e) => return self.fail(Some(algorithm), format!("list failed: {e}")),
            }
        }
        self.fail(Some(algorithm), "list does not include the created key");
    }

    /// A page token the provider never issued is refused, not taken for the first page.
    async fn foreign_page_token(&mut self, algorithm: Algorithm) {
        let page = PageRequest {
            page_size: 10,
            page_token: "not-a-token-this-provider-issued".into(),
        };
        match self.provider.list(&page).await {
            Err(ProviderError::InvalidInput { .. }) => {}
            Ok(_) => self.fail(Some(algorithm), "list accepted a foreign page token"),
            Err(e) => self.fail(
                Some(algorithm),
                format!(
                    "list with a foreign page token gave {} instead of invalid_input: {e}",
                    e.kind()
                ),
            ),
        }
    }

    async fn unknown_key(&mut self) {
        let Some(uri) = self.options.unknown_uri.clone() else {
            return;
        };
        match self.provider.describe(&uri).await {
            Ok(_) => self.fail(None, format!("describe of unknown key {uri} succeeded")),
            Err(ProviderError::NotFound { .. }) => {}
            Err(e) => self.fail(
                None,
                format!(
                    "describe of unknown key gave {} instead of not_found: {e}",
                    e.kind()
                ),
            ),
        }
    }
}

/// Signature checks with aws-lc-rs, independent of the provider under test.
mod independent {
    use crate::Algorithm;
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

    pub fn verify(algorithm: Algorithm, spki_der: &[u8], message: &[u8], sig: &[u8]) -> bool {
        let alg: &'static dyn VerificationAlgorithm = match algorithm {
            Algorithm::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
            Algorithm::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::Rsa2048Pss | Algorithm::Rsa3072Pss | Algorithm::Rsa4096Pss => {
                &signature::RSA_PSS_2048_8192_SHA256
            }
            Algorithm::Rsa2048Pkcs1 | Algorithm::Rsa3072Pkcs1 | Algorithm::Rsa4096Pkcs1 => {
                &signature::RSA_PKCS1_2048_8192_SHA256
            }
            _ => return false,
        };
        let Some(raw) = crate::spki::spki_public_key_bits(spki_der) else {
            return false;
        };
        UnparsedPublicKey::new(alg, raw)
            .verify(message, sig)
            .is_ok()
    }
}
