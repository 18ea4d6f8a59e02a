//! Bearer tokens → principals.
//!
//! Tokens are kept only as SHA-256 digests: the table never holds a token, and a lookup
//! compares digests, so neither a log line nor a memory dump of the table shows one.

use crate::config::{Config, PrincipalKind, SecretRefError};
use aws_lc_rs::digest;
use std::collections::HashMap;
use std::sync::Arc;

/// Who is calling. Serialised only as part of the decision cache's key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind,
    pub roles: Vec<String>,
    /// Empty when none is configured.
    pub team: String,
    /// The environments it may act in (`*`: all).
    pub environments: Vec<String>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The role of `serve --dev`'s root principal; configuration cannot grant it.
pub const DEV_ROOT_ROLE: &str = "dev-root";

/// What a key's owner names, for the owner rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    User,
    ServiceAccount,
    Team,
    Unknown,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::User => "user",
            OwnerKind::ServiceAccount => "service-account",
            OwnerKind::Team => "team",
            OwnerKind::Unknown => "unknown",
        }
    }
}

#[derive(Default)]
pub struct TokenTable {
    by_digest: HashMap<[u8; 32], Arc<Principal>>,
    /// Every principal and team name, for what a key's owner names.
    owners: HashMap<String, OwnerKind>,
    /// Principals by name (approved requests run for their requester).
    by_name: HashMap<String, Arc<Principal>>,
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
                team: t.team.clone().unwrap_or_default(),
                environments: t.environments.clone(),
            };
            table.note_owner(&principal);
            let principal = Arc::new(principal);
            table
                .by_name
                .insert(principal.name.clone(), principal.clone());
            if table
                .by_digest
                .insert(token_digest(secret.expose()), principal)
                .is_some()
            {
                return Err(TokenError::Duplicate { index });
            }
        }
        Ok(table)
    }

    pub fn insert(&mut self, token: &[u8], principal: Principal) {
        self.note_owner(&principal);
        let principal = Arc::new(principal);
        self.by_name
            .insert(principal.name.clone(), principal.clone());
        self.by_digest.insert(token_digest(token), principal);
    }

    fn note_owner(&mut self, principal: &Principal) {
        if !principal.team.is_empty() {
            self.owners
                .entry(principal.team.clone())
                .or_insert(OwnerKind::Team);
        }
        let kind = match principal.kind {
            PrincipalKind::User => OwnerKind::User,
            PrincipalKind::ServiceAccount => OwnerKind::ServiceAccount,
        };
        self.owners.insert(principal.name.clone(), kind);
    }

    /// How many principals hold `role`.
    pub fn count_with_role(&self, role: &str) -> usize {
        self.by_name.values().filter(|p| p.has_role(role)).count()
    }

    /// The principal configured under `name`.
    pub fn principal(&self, name: &str) -> Option<Arc<Principal>> {
        self.by_name.get(name).cloned()
    }

    /// What `owner` names: a configured principal, a team, or nothing known.
    pub fn owner_kind(&self, owner: &str) -> OwnerKind {
        self.owners
            .get(owner)
            .copied()
            .unwrap_or(OwnerKind::Unknown)
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
