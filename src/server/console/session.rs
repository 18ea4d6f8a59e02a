//! Sign-in sessions: the token a person signs in with, sealed in an HTTP-only cookie, and
//! the CSRF token every form carries.
//!
//! - The cookie holds the token sealed (AES-256-GCM) under a key drawn when the console
//!   starts, with the principal's name and when the session ends: the browser never holds
//!   the token in the clear (a cookie copied from a profile is useless once the process
//!   restarts or the session ends), and the end is enforced here, not by the browser.
//! - Each page runs its reads as the token's principal, authenticated again on every call,
//!   so a token removed from the configuration ends its sessions at once.
//! - The CSRF token is an HMAC of the cookie under a second key: a page from another origin
//!   can make the browser send the cookie (SameSite=Strict aside) but cannot read the token
//!   to put in the form.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::Duration;
use zeroize::Zeroizing;

/// The cookie over HTTPS: `__Host-` makes browsers refuse it unless Secure, host-only and
/// for `/`, so a sibling subdomain cannot plant one.
pub const SECURE_COOKIE: &str = "__Host-keygate_console";
/// The cookie over plain HTTP (loopback, or behind a proxy).
pub const PLAIN_COOKIE: &str = "keygate_console";
/// Bound on a token given to the sign-in form (tokens are far shorter).
pub const MAX_TOKEN: usize = 1024;
const AAD: &[u8] = b"keygate console session v1";

/// An open session.
pub struct Session {
    pub token: Zeroizing<Vec<u8>>,
    pub principal: String,
    /// The form field every POST must carry.
    pub csrf: String,
    /// Drawn at sign-in: what sign-out revokes.
    pub id: [u8; 16],
    pub ends_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the system random source failed")]
    Random,
    #[error("the token is empty or longer than {MAX_TOKEN} bytes")]
    TokenSize,
    #[error("the principal's name is longer than a session holds")]
    NameSize,
    #[error("the session could not be sealed")]
    Seal,
}

pub struct Sessions {
    seal: LessSafeKey,
    csrf: hmac::Key,
    rng: SystemRandom,
    pub length: Duration,
    /// Sessions signed out before their end, with that end (then they are dropped).
    revoked: std::sync::Mutex<std::collections::HashMap<[u8; 16], i64>>,
}

impl Sessions {
    pub fn new(length: Duration) -> Result<Self, SessionError> {
        let rng = SystemRandom::new();
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill(key.as_mut()).map_err(|_| SessionError::Random)?;
        let seal = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| SessionError::Random)?,
        );
        let csrf =
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| SessionError::Random)?;
        Ok(Sessions {
            seal,
            csrf,
            rng,
            length,
            revoked: Default::default(),
        })
    }

    /// The cookie value for a new session of `principal` with `token`.
    pub fn seal(&self, token: &[u8], principal: &str, now_ms: i64) -> Result<String, SessionError> {
        if token.is_empty() || token.len() > MAX_TOKEN {
            return Err(SessionError::TokenSize);
        }
        let ends = now_ms.saturating_add(i64::try_from(self.length.as_millis()).unwrap_or(0));
        let name = principal.as_bytes();
        let name_len = u16::try_from(name.len()).map_err(|_| SessionError::NameSize)?;
        let mut id = [0u8; 16];
        self.rng.fill(&mut id).map_err(|_| SessionError::Random)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(26 + name.len() + token.len()));
        plain.extend_from_slice(&ends.to_be_bytes());
        plain.extend_from_slice(&id);
        plain.extend_from_slice(&name_len.to_be_bytes());
        plain.extend_from_slice(name);
        plain.extend_from_slice(token);
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| SessionError::Random)?;
        let mut sealed = Vec::from(plain.as_slice());
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut sealed,
            )
            .map_err(|_| SessionError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The session a cookie value stands for, if it is ours and has not ended.
    pub fn open(&self, cookie: &str, now_ms: i64) -> Option<Session> {
        let raw = URL_SAFE_NO_PAD.decode(cookie.as_bytes()).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(AAD), buf.as_mut_slice())
            .ok()?;
        let ends_ms = i64::from_be_bytes(plain.get(..8)?.try_into().ok()?);
        if now_ms >= ends_ms {
            return None;
        }
        let id: [u8; 16] = plain.get(8..24)?.try_into().ok()?;
        if self.is_revoked(&id) {
            return None;
        }
        let name_len = usize::from(u16::from_be_bytes(plain.get(24..26)?.try_into().ok()?));
        let principal = String::from_utf8(plain.get(26..26 + name_len)?.to_vec()).ok()?;
        let token = Zeroizing::new(plain.get(26 + name_len..)?.to_vec());
        Some(Session {
            token,
            principal,
            csrf: self.csrf_for(cookie),
            id,
            ends_ms,
        })
    }

    /// Ends `session` now, for every copy of its cookie (sign-out). Kept until its own end.
    pub fn revoke(&self, session: &Session, now_ms: i64) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, ends| *ends > now_ms);
        revoked.insert(session.id, session.ends_ms);
    }

    fn is_revoked(&self, id: &[u8; 16]) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    fn csrf_for(&self, cookie: &str) -> String {
        hex::encode(hmac::sign(&self.csrf, cookie.as_bytes()).as_ref())
    }

    /// Whether `given` is the CSRF token of the session in `cookie`.
    pub fn csrf_matches(&self, cookie: &str, given: &str) -> bool {
        match hex::decode(given) {
            Ok(tag) => hmac::verify(&self.csrf, cookie.as_bytes(), &tag).is_ok(),
            Err(_) => false,
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_until_it_ends_and_only_with_its_own_key() {
        let sessions = Sessions::new(Duration::from_secs(60)).unwrap();
        let cookie = sessions.seal(b"s3cret-token", "alice", 1_000).unwrap();
        assert!(!cookie.contains("s3cret"));
        let open = sessions.open(&cookie, 2_000).unwrap();
        assert_eq!(open.token.as_slice(), b"s3cret-token");
        assert_eq!(open.principal, "alice");
        assert!(sessions.csrf_matches(&cookie, &open.csrf));
        assert!(!sessions.csrf_matches(&cookie, "00"));
        assert!(!sessions.csrf_matches(&cookie, "not hex"));
        assert!(sessions.open(&cookie, 61_000).is_none(), "ended");
        let other = Sessions::new(Duration::from_secs(60)).unwrap();
        assert!(
            other.open(&cookie, 2_000).is_none(),
            "another process's key"
        );
        let mut raw = URL_SAFE_NO_PAD.decode(cookie.as_bytes()).unwrap();
        let middle = raw.len() / 2;
        raw[middle] ^= 1;
        assert!(
            sessions
                .open(&URL_SAFE_NO_PAD.encode(&raw), 2_000)
                .is_none()
        );
        sessions.revoke(&open, 2_000);
        assert!(sessions.open(&cookie, 3_000).is_none(), "signed out");
        let again = sessions.seal(b"s3cret-token", "alice", 3_000).unwrap();
        assert!(sessions.open(&again, 4_000).is_some(), "a new sign-in");
        assert!(sessions.open("", 2_000).is_none());
        assert!(sessions.open("%%%", 2_000).is_none());
        assert!(sessions.seal(b"", "alice", 0).is_err());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let header = "a=1; keygate_console=xyz; b=2";
        assert_eq!(cookie(header, PLAIN_COOKIE), Some("xyz"));
        assert_eq!(cookie(header, "c"), None);
    }
}
