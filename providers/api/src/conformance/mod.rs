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

mod lifecycle;
mod operations;

use crate::{
    Algorithm, KeyProvider, KeyPurpose, KeySpec, KeyUri, ProviderKey, ProviderKeyState, VersionRef,
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
}
