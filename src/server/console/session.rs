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

pub const COOKIE: &str = "keygate_console";
/// Bound on a token given to the sign-in form (tokens are far shorter).
pub const MAX_TOKEN: usize = 1024;
const AAD: &[u8] = b"keygate console session v1";

/// An open session.
pub struct Session {
    pub token: Zeroizing<Vec<u8>>,
    pub principal: String,
    /// The form field every POST must carry.
    pub csrf: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the system random source failed")]
    Random,
    #[error("the token is empty or longer than {MAX_TOKEN} bytes")]
    TokenSize,
}

pub struct Sessions {
    seal: LessSafeKey,
    csrf: hmac::Key,
    rng: SystemRandom,
    pub length: Duration,
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
        })
    }

    /// The cookie value for a new session of `principal` with `token`.
    pub fn seal(&self, token: &[u8], principal: &str, now_ms: i64) -> Result<String, SessionError> {
        if token.is_empty() || token.len() > MAX_TOKEN {
            return Err(SessionError::TokenSize);
        }
        let ends = now_ms.saturating_add(i64::try_from(self.length.as_millis()).unwrap_or(0));
        let name = principal.as_bytes();
        let name_len = u16::try_from(name.len()).map_err(|_| SessionError::TokenSize)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(10 + name.len() + token.len()));
        plain.extend_from_slice(&ends.to_be_bytes());
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
            .map_err(|_| SessionError::Random)?;
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
        let ends = i64::from_be_bytes(plain.get(..8)?.try_into().ok()?);
        if now_ms >= ends {
            return None;
        }
        let name_len = usize::from(u16::from_be_bytes(plain.get(8..10)?.try_into().ok()?));
        let principal = String::from_utf8(plain.get(10..10 + name_len)?.to_vec()).ok()?;
        let token = Zeroizing::new(plain.get(10 + name_len..)?.to_vec());
        Some(Session {
            token,
            principal,
            csrf: self.csrf_for(cookie),
        })
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
        let mut tampered = cookie.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            sessions
                .open(std::str::from_utf8(&tampered).unwrap(), 2_000)
                .is_none()
        );
        assert!(sessions.open("", 2_000).is_none());
        assert!(sessions.open("%%%", 2_000).is_none());
        assert!(sessions.seal(b"", "alice", 0).is_err());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let header = "a=1; keygate_console=xyz; b=2";
        assert_eq!(cookie(header, COOKIE), Some("xyz"));
        assert_eq!(cookie(header, "c"), None);
    }
}
