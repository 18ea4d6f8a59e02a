//! Bearer tokens and client certificates → principals.
//!
//! Tokens are kept only as HMAC-SHA-256 digests under a key drawn at random when the table is
//! made (once per process): the table never holds a token, a lookup compares digests, and a
//! memory dump of the table gives nothing to test guesses against offline, as a plain hash of
//! a low-entropy token would.

mod certificate;

pub use certificate::{CertificateBinding, PeerIdentity};

use crate::config::{Config, PrincipalKind, SecretRefError};
use aws_lc_rs::hmac;
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
    /// The client certificate identity its token is valid with (mTLS); `None`: any.
    #[serde(skip)]
    pub certificate: Option<CertificateBinding>,
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

pub struct TokenTable {
    /// The per-process key of the token digests.
    key: hmac::Key,
    by_digest: HashMap<[u8; 32], Arc<Principal>>,
    /// Principals that may authenticate by their client certificate alone.
    by_certificate: Vec<Arc<Principal>>,
    /// Every principal and team name, for what a key's owner names.
    owners: HashMap<String, OwnerKind>,
    /// Principals by name (approved requests run for their requester).
    by_name: HashMap<String, Arc<Principal>>,
    /// The Kubernetes KMS plugin's principal (`[kms_plugin]`): it has no token and stands
    /// only for calls on the plugin's socket.
    kms_plugin: Option<Arc<Principal>>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenTable({} tokens)", self.by_digest.len())
    }
}

impl Default for TokenTable {
    fn default() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // The system RNG does not fail on supported platforms; a fixed key would be worse
        // than stopping.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .expect("the system random number generator failed");
        Self {
            key,
            by_digest: HashMap::new(),
            by_certificate: Vec::new(),
            owners: HashMap::new(),
            by_name: HashMap::new(),
            kms_plugin: None,
        }
    }
}

/// Why a presented credential was not accepted. Callers get one message for all of them, so
/// a stolen token's holder cannot tell a bound token from an unknown one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Neither a token nor a certificate that stands for a principal by itself.
    NoCredentials,
    /// An unknown token, or a token bound to another certificate identity.
    BadToken,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Secret(#[from] SecretRefError),
    #[error("tokens[{index}]: the token is shorter than 16 bytes; use a long random value")]
    TooShort { index: usize },
    #[error("tokens[{index}]: the same token is configured for more than one principal")]
    Duplicate { index: usize },
    #[error(
        "tokens[{index}]: principal '{principal}' authenticates by the same certificate identity as '{other}'; one certificate must stand for one principal"
    )]
    SameCertificate {
        index: usize,
        principal: String,
        other: String,
    },
}

impl TokenTable {
    /// Resolves every configured token reference.
    pub fn from_config(config: &Config) -> Result<Self, TokenError> {
        let mut table = TokenTable::default();
        for (index, t) in config.tokens.iter().enumerate() {
            let principal = Principal {
                name: t.principal.clone(),
                kind: t.kind,
                roles: t.roles.clone(),
                team: t.team.clone().unwrap_or_default(),
                environments: t.environments.clone(),
                certificate: t.certificate.as_ref().map(CertificateBinding::from),
            };
            table.note_owner(&principal);
            let principal = Arc::new(principal);
            table
                .by_name
                .insert(principal.name.clone(), principal.clone());
            if t.certificate_alone {
                let binding = principal.certificate.as_ref();
                if let Some(other) = table
                    .by_certificate
                    .iter()
                    .find(|p| p.certificate.as_ref() == binding)
                {
                    return Err(TokenError::SameCertificate {
                        index,
                        principal: principal.name.clone(),
                        other: other.name.clone(),
                    });
                }
                table.by_certificate.push(principal.clone());
            }
            let Some(token) = &t.token else {
                continue;
            };
            let secret = token.resolve(&format!("tokens[{index}].token"))?;
            if secret.len() < MIN_TOKEN_BYTES {
                return Err(TokenError::TooShort { index });
            }
            let digest = table.digest(secret.expose());
            if table.by_digest.insert(digest, principal).is_some() {
                return Err(TokenError::Duplicate { index });
            }
        }
        if let Some(plugin) = &config.kms_plugin {
            let principal = Principal {
                name: plugin.principal.trim().to_string(),
                kind: PrincipalKind::ServiceAccount,
                roles: plugin.roles.clone(),
                team: plugin.team.clone().unwrap_or_default(),
                environments: plugin.environments.clone(),
                certificate: None,
            };
            table.note_owner(&principal);
            let principal = Arc::new(principal);
            table
                .by_name
                .insert(principal.name.clone(), principal.clone());
            table.kms_plugin = Some(principal);
        }
        Ok(table)
    }

    /// The principal calls on the KMS plugin's socket run as, if the plugin is configured.
    pub fn kms_plugin(&self) -> Option<Arc<Principal>> {
        self.kms_plugin.clone()
    }

    fn digest(&self, token: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.key, token);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    pub fn insert(&mut self, token: &[u8], principal: Principal) {
        self.note_owner(&principal);
        let principal = Arc::new(principal);
        self.by_name
            .insert(principal.name.clone(), principal.clone());
        let digest = self.digest(token);
        self.by_digest.insert(digest, principal);
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

    /// Every configured principal, by name.
    pub fn principals(&self) -> Vec<Arc<Principal>> {
        let mut all: Vec<_> = self.by_name.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
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

    /// The principal a token stands for, presented with the client certificate `peer` (if
    /// any). A token bound to a certificate identity is accepted only with that identity.
    pub fn authenticate(
        &self,
        token: &[u8],
        peer: Option<&PeerIdentity>,
    ) -> Result<Arc<Principal>, Refusal> {
        let principal = self
            .by_digest
            .get(&self.digest(token))
            .ok_or(Refusal::BadToken)?;
        match &principal.certificate {
            None => Ok(principal.clone()),
            Some(binding) if peer.is_some_and(|p| p.matches(binding)) => Ok(principal.clone()),
            Some(_) => Err(Refusal::BadToken),
        }
    }

    /// The principal configured to authenticate by `peer`'s certificate alone. A certificate
    /// that carries the identities of two principals (one's CN, another's SAN URI) stands for
    /// neither: guessing which one would hand out one of them at random.
    pub fn authenticate_certificate(&self, peer: &PeerIdentity) -> Result<Arc<Principal>, Refusal> {
        let mut matching = self
            .by_certificate
            .iter()
            .filter(|p| p.certificate.as_ref().is_some_and(|b| peer.matches(b)));
        let first = matching.next().ok_or(Refusal::NoCredentials)?;
        if matching.any(|p| p.name != first.name) {
            return Err(Refusal::NoCredentials);
        }
        Ok(first.clone())
    }

    /// No principal can authenticate at all.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty() && self.by_certificate.is_empty()
    }
}

/// The shortest token accepted, configured or given with `--dev-token`.
pub const MIN_TOKEN_BYTES: usize = 16;

/// A fresh random token for dev mode (URL-safe base64 of 24 random bytes), in a buffer that
/// is wiped when dropped.
pub fn random_token() -> zeroize::Zeroizing<String> {
    use base64::Engine as _;
    let mut bytes = zeroize::Zeroizing::new([0u8; 24]);
    // The system RNG does not fail on supported platforms; stopping beats a weak token.
    if aws_lc_rs::rand::fill(bytes.as_mut()).is_err() {
        panic!("the system random number generator failed");
    }
    let mut token = zeroize::Zeroizing::new(String::with_capacity(7 + 32));
    token.push_str("kg_dev_");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut token);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str, certificate: Option<CertificateBinding>) -> Principal {
        Principal {
            name: name.into(),
            kind: PrincipalKind::User,
            roles: Vec::new(),
            team: String::new(),
            environments: Vec::new(),
            certificate,
        }
    }

    #[test]
    fn digests_are_keyed_per_table() {
        let (a, b) = (TokenTable::default(), TokenTable::default());
        let token = b"kg_same_token_0123456789";
        // Not a plain hash: the same token digests differently under each table's key.
        assert_ne!(a.digest(token), b.digest(token));
        let plain = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
        assert_ne!(a.digest(token).as_slice(), plain.as_ref());
        assert_eq!(a.digest(token), a.digest(token));
    }

    #[test]
    fn a_bound_token_needs_its_certificate() {
        let mut table = TokenTable::default();
        let bound = CertificateBinding::Uri("spiffe://test/svc".into());
        table.insert(b"kg_bound_token_0123456789", principal("svc", Some(bound)));
        table.insert(b"kg_free_token_0123456789", principal("alice", None));
        let right = PeerIdentity::for_tests(&["spiffe://test/svc"], &[]);
        let wrong = PeerIdentity::for_tests(&["spiffe://test/other"], &["svc"]);
        assert!(
            table
                .authenticate(b"kg_bound_token_0123456789", Some(&right))
                .is_ok()
        );
        assert_eq!(
            table
                .authenticate(b"kg_bound_token_0123456789", Some(&wrong))
                .unwrap_err(),
            Refusal::BadToken
        );
        assert!(
            table
                .authenticate(b"kg_bound_token_0123456789", None)
                .is_err()
        );
        assert!(
            table
                .authenticate(b"kg_free_token_0123456789", Some(&wrong))
                .is_ok()
        );
        // Only principals configured for it authenticate by the certificate alone.
        assert!(table.authenticate_certificate(&right).is_err());
    }

    #[test]
    fn a_certificate_naming_two_principals_stands_for_neither() {
        let mut table = TokenTable::default();
        let by_uri = principal(
            "svc-a",
            Some(CertificateBinding::Uri("spiffe://test/a".into())),
        );
        let by_cn = principal("svc-b", Some(CertificateBinding::CommonName("b".into())));
        table.by_certificate.push(Arc::new(by_uri));
        table.by_certificate.push(Arc::new(by_cn));
        let a = PeerIdentity::for_tests(&["spiffe://test/a"], &["someone"]);
        assert_eq!(
            table.authenticate_certificate(&a).map(|p| p.name.clone()),
            Ok("svc-a".into())
        );
        let both = PeerIdentity::for_tests(&["spiffe://test/a"], &["b"]);
        assert_eq!(
            table.authenticate_certificate(&both).unwrap_err(),
            Refusal::NoCredentials
        );
    }

    #[test]
    fn dev_tokens_are_long_enough() {
        assert!(random_token().len() >= MIN_TOKEN_BYTES);
    }
}
