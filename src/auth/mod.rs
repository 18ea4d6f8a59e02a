//! Bearer tokens → principals.
//!
//! Tokens are kept only as SHA-256 digests: the table never holds a token, and a lookup
//! compares digests, so neither a log line nor a memory dump of the table shows one.

use crate::config::{Config, PrincipalKind, SecretRefError};
use aws_lc_rs::digest;
use std::collections::HashMap;
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind,
    pub roles: Vec<String>,
}

#[derive(Default)]
pub struct TokenTable {
    by_digest: HashMap<[u8; 32], Arc<Principal>>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenTable({} tokens)", self.by_digest.len())
    }
}

fn token_digest(token: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Secret(#[from] SecretRefError),
    #[error("tokens[{index}]: the token is shorter than 16 bytes; use a long random value")]
    TooShort { index: usize },
    #[error("tokens[{index}]: the same token is configured for more than one principal")]
    Duplicate { index: usize },
}

impl TokenTable {
    /// Resolves every configured token reference.
    pub fn from_config(config: &Config) -> Result<Self, TokenError> {
        let mut table = TokenTable::default();
        for (index, t) in config.tokens.iter().enumerate() {
            let secret = t.token.resolve(&format!("tokens[{index}].token"))?;
            if secret.len() < 16 {
                return Err(TokenError::TooShort { index });
            }
            let principal = Principal {
                name: t.principal.clone(),
                kind: t.kind,
                roles: t.roles.clone(),
            };
            if table
                .by_digest
                .insert(token_digest(secret.expose()), Arc::new(principal))
                .is_some()
            {
                return Err(TokenError::Duplicate { index });
            }
        }
        Ok(table)
    }

    pub fn insert(&mut self, token: &[u8], principal: Principal) {
        self.by_digest
            .insert(token_digest(token), Arc::new(principal));
    }

    pub fn authenticate(&self, token: &[u8]) -> Option<Arc<Principal>> {
        self.by_digest.get(&token_digest(token)).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// A fresh random token for dev mode (URL-safe base64 of 24 random bytes).
pub fn random_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    // The system RNG does not fail on supported platforms; fall back to a time-seeded error
    // rather than a weak token.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        panic!("the system random number generator failed");
    }
    format!(
        "kg_dev_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}
