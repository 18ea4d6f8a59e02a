//! `[jwks]`: the JWKS endpoint `serve` runs beside its gRPC listener (src/server/jwks.rs),
//! publishing the public keys of the signing keys listed here, unauthenticated, for JWT
//! verifiers.

use super::{Config, ConfigError};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// Address of the endpoint, e.g. `127.0.0.1:8443`. Plain HTTP: relying parties elsewhere
    /// should reach it through a TLS-terminating proxy, since a JWKS tells them which
    /// signatures to trust.
    pub listen: String,
    /// The signing keys (names or ids, as written in the URL) whose public keys are published,
    /// at `/keys/{key, URL-encoded}/jwks.json`. Any other key is answered 404, whether it
    /// exists or not.
    #[serde(default)]
    pub keys: Vec<String>,
    /// The key also published at `/.well-known/jwks.json`; unset: the only key of `keys` when
    /// there is one, else none.
    #[serde(default)]
    pub default: Option<String>,
    /// How long a key's document is served from memory before it is built again (through
    /// the gateway, audited); responses' `Cache-Control: max-age` is what is left of it.
    #[serde(default = "default_cache")]
    pub cache: String,
}

fn default_cache() -> String {
    "30s".into()
}

/// The longest `[jwks] cache`: a staged version must reach verifiers well before the
/// propagation delay promotes it.
pub const MAX_CACHE: std::time::Duration = std::time::Duration::from_secs(600);

impl JwksConfig {
    /// The key served at `/.well-known/jwks.json`, if any.
    pub fn well_known(&self) -> Option<&str> {
        match (&self.default, self.keys.as_slice()) {
            (Some(key), _) => Some(key),
            (None, [only]) => Some(only),
            _ => None,
        }
    }

    pub(super) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let invalid =
            |setting: &str, reason: String| Config::invalid(format!("jwks.{setting}"), reason);
        if self.listen.trim().is_empty() {
            return Err(invalid("listen", "is empty".into()));
        }
        if self.keys.is_empty() {
            return Err(invalid(
                "keys",
                "lists no key: the endpoint would publish nothing; list the signing keys to publish, or remove [jwks]".into(),
            ));
        }
        for (i, key) in self.keys.iter().enumerate() {
            if key.trim().is_empty() || key.trim() != key {
                return Err(invalid(
                    "keys",
                    format!("entry {i} is empty or has spaces around it"),
                ));
            }
            if self.keys[..i].contains(key) {
                return Err(invalid("keys", format!("'{key}' is listed twice")));
            }
        }
        if let Some(default) = &self.default
            && !self.keys.contains(default)
        {
            return Err(invalid(
                "default",
                format!("'{default}' is not among jwks.keys"),
            ));
        }
        let cache = config.duration("jwks.cache", &self.cache)?;
        if cache > MAX_CACHE {
            return Err(invalid(
                "cache",
                format!(
                    "is longer than {} s: verifiers would learn of a staged version too late",
                    MAX_CACHE.as_secs()
                ),
            ));
        }
        Ok(())
    }
}
