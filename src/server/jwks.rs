//! The JWKS endpoint (`[jwks]`): the public keys of the signing keys the configuration lists,
//! as RFC 7517 JWK Sets over plain HTTP, for JWT verifiers that do not speak gRPC.
//!
//! - `GET /keys/{key}/jwks.json` (the key's name or id as `[jwks] keys` writes it,
//!   URL-encoded: `release%2Fsigning`; a literal `/` is taken too) and, for the one key or
//!   the configured default, `GET /.well-known/jwks.json`.
//! - The endpoint answers anyone, so it publishes only the keys the configuration lists: any
//!   other name is answered 404 with the same body as a listed key that does not exist, so
//!   nothing tells whether a key exists. Only GET is served.
//! - The document is `GetPublicKeySet`'s `jwks` (same keys, order and `kid`s,
//!   `{key id}:v{version}`), built through [`Gateway::run`] as the system task
//!   [`SystemTask::JwksPublication`]: authorized for that one action on a listed key
//!   (Cedar does not decide for system actors: the operator's list is the authority),
//!   lifecycle-checked and audited like any call, with the fetching client's address and the
//!   actor `keygate:jwks`.
//! - Each key's document stands for `[jwks] cache` (30 s by default) and is served from
//!   memory meanwhile: an audit event and a provider call per key at most every 30 s however
//!   often verifiers fetch, instead of one per fetch, which an unauthenticated endpoint
//!   would let anyone turn into a flood of the audit log. `Cache-Control: max-age` is what is
//!   left of that time, so a staged version reaches verifiers within one `cache` of its
//!   staging (keep `lifecycle.signing_propagation_delay` well above it). A failed build
//!   stands for at most [`FAILURE_STANDS`]. Every response carries the request id of the
//!   audited build it comes from (`x-request-id`).

use crate::config::JwksConfig;
use crate::gateway::ops::public_keys::GetPublicKeySet;
use crate::gateway::{Call, Credentials, Gateway, GatewayError, SystemTask};
use crate::server::plain_http::{self, Request, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Code;

pub const CONTENT_TYPE: &str = "application/jwk-set+json";
/// The path of the default key's document.
pub const WELL_KNOWN: &str = "/.well-known/jwks.json";
/// How long a failed build stands (when `[jwks] cache` is longer).
pub const FAILURE_STANDS: Duration = Duration::from_secs(5);
/// What an unlisted key and a listed one that is not there are both answered.
const NOT_FOUND: &str = "no such key set\n";

/// A build's outcome.
#[derive(Clone)]
enum Outcome {
    Published {
        jwks: Arc<str>,
        request_id: String,
    },
    /// Not there, not a signing key, or not usable: answered as an unlisted key is.
    NotFound,
    /// The provider or the gateway could not answer now.
    Unavailable,
}

struct Built {
    at: Instant,
    stands: Duration,
    outcome: Outcome,
}

pub struct Jwks {
    gateway: Arc<Gateway>,
    /// One slot per listed key; held while building, so fetches at once share one build.
    documents: HashMap<String, tokio::sync::Mutex<Option<Built>>>,
    well_known: Option<String>,
    cache: Duration,
    request_timeout: Duration,
}

impl Jwks {
    pub fn new(
        gateway: Arc<Gateway>,
        config: &JwksConfig,
        cache: Duration,
        request_timeout: Duration,
    ) -> Self {
        Jwks {
            gateway,
            documents: config
                .keys
                .iter()
                .map(|k| (k.clone(), tokio::sync::Mutex::new(None)))
                .collect(),
            well_known: config.well_known().map(str::to_string),
            cache,
            request_timeout,
        }
    }

    pub async fn answer(&self, request: &Request) -> Response {
        if request.method != b"GET" {
            let mut response = Response::text("405 Method Not Allowed", "GET only\n");
            response.headers.push(("Allow", "GET".into()));
            return response;
        }
        let key = match request.path.as_slice() {
            path if path == WELL_KNOWN.as_bytes() => self.well_known.clone(),
            path => key_in_path(path),
        };
        let Some(slot) = key
            .as_deref()
            .and_then(|k| self.documents.get(k).map(|s| (k, s)))
        else {
            return not_found();
        };
        let client = request
            .peer
            .map(|p| p.to_string())
            .unwrap_or_else(|| "unknown".into());
        match tokio::time::timeout(self.request_timeout, self.document(slot, client)).await {
            Ok((outcome, left)) => respond(outcome, left),
            Err(_) => respond(Outcome::Unavailable, Duration::ZERO),
        }
    }

    /// The key's document while it stands, else a new build's; with how long it stands yet.
    async fn document(
        &self,
        (key, slot): (&str, &tokio::sync::Mutex<Option<Built>>),
        client: String,
    ) -> (Outcome, Duration) {
        let mut built = slot.lock().await;
        if let Some(b) = built.as_ref() {
            let left = b.stands.saturating_sub(b.at.elapsed());
            if !left.is_zero() {
                return (b.outcome.clone(), left);
            }
        }
        let outcome = self.build(key, client).await;
        let stands = match outcome {
            Outcome::Published { .. } => self.cache,
            _ => self.cache.min(FAILURE_STANDS),
        };
        *built = Some(Built {
            at: Instant::now(),
            stands,
            outcome: outcome.clone(),
        });
        (outcome, stands)
    }

    async fn build(&self, key: &str, client: String) -> Outcome {
        let call = Call {
            request_id: crate::gateway::new_request_id(),
            client_address: client,
            credentials: Credentials::System(SystemTask::JwksPublication),
        };
        let request_id = call.request_id.clone();
        let op = GetPublicKeySet {
            key: key.to_string(),
        };
        match self.gateway.run(call, op).await {
            Ok(set) => Outcome::Published {
                jwks: set.jwks.into(),
                request_id,
            },
            Err(e) => failed(key, &request_id, &e),
        }
    }
}

/// How a failed build is answered; logged, since the client is told nothing.
fn failed(key: &str, request_id: &str, e: &GatewayError) -> Outcome {
    match super::status::code(e) {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Cancelled
        | Code::Internal
        | Code::Unknown => {
            tracing::warn!(key, request_id, reason = e.reason(), error = %e, "jwks: the key set could not be built");
            Outcome::Unavailable
        }
        _ => {
            tracing::warn!(key, request_id, reason = e.reason(), error = %e, "jwks: a key [jwks] lists is not published");
            Outcome::NotFound
        }
    }
}

fn respond(outcome: Outcome, left: Duration) -> Response {
    match outcome {
        Outcome::Published { jwks, request_id } => Response {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            headers: vec![
                (
                    "Cache-Control",
                    format!("public, max-age={}", left.as_secs()),
                ),
                ("X-Request-Id", request_id),
            ],
            body: jwks.to_string(),
        },
        Outcome::NotFound => not_found(),
        Outcome::Unavailable => {
            let mut response = Response::text(
                "503 Service Unavailable",
                "the key set is not available now\n",
            );
            response.headers.push(("Cache-Control", "no-store".into()));
            response
                .headers
                .push(("Retry-After", left.as_secs().max(1).to_string()));
            response
        }
    }
}

fn not_found() -> Response {
    let mut response = Response::text("404 Not Found", NOT_FOUND);
    response.headers.push(("Cache-Control", "no-store".into()));
    response
}

/// The key of `/keys/{key}/jwks.json`, percent-decoded; `None` for any other path or a key
/// that does not decode to UTF-8.
fn key_in_path(path: &[u8]) -> Option<String> {
    let encoded = path.strip_prefix(b"/keys/")?.strip_suffix(b"/jwks.json")?;
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.iter();
    while let Some(&b) = bytes.next() {
        if b == b'%' {
            let hex = [*bytes.next()?, *bytes.next()?];
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            decoded.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            decoded.push(b);
        }
    }
    String::from_utf8(decoded).ok().filter(|k| !k.is_empty())
}

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, jwks: Arc<Jwks>, stop: CancellationToken) {
    plain_http::serve(listener, stop, "jwks", move |request| {
        let jwks = jwks.clone();
        async move { jwks.answer(&request).await }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_paths_are_percent_decoded() {
        assert_eq!(
            key_in_path(b"/keys/release%2Fsigning/jwks.json").as_deref(),
            Some("release/signing")
        );
        assert_eq!(
            key_in_path(b"/keys/release%2fsigning/jwks.json").as_deref(),
            Some("release/signing")
        );
        assert_eq!(
            key_in_path(b"/keys/release/signing/jwks.json").as_deref(),
            Some("release/signing")
        );
        assert_eq!(key_in_path(b"/keys//jwks.json"), None);
        assert_eq!(key_in_path(b"/keys/a%2/jwks.json"), None);
        assert_eq!(key_in_path(b"/keys/a%zz/jwks.json"), None);
        assert_eq!(key_in_path(b"/keys/a%+1/jwks.json"), None);
        assert_eq!(key_in_path(b"/keys/%ff/jwks.json"), None);
        assert_eq!(key_in_path(b"/keys/a/jwks"), None);
        assert_eq!(key_in_path(b"/other/a/jwks.json"), None);
    }
}
