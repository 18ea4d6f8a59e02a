//! Maps SDK errors to typed [`ProviderError`]s. Messages name the provider, the operation,
//! the key and Key Vault's error code and request id; never credentials or plaintext.
//!
//! The SDK's own `Display` says little ("HttpResponse(…)" or "error sending request"), so
//! messages carry the cause chain. A `Retry-After` on a 429 or 503 is handed to the guard
//! ([`keygate_provider::kit::backend_asked_to_wait`]), which waits at least that long before
//! retrying, within the call's deadline.

use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, Headers};
use keygate_provider::ProviderError;
use keygate_provider::kit::{backend_asked_to_wait, error_chain};
use std::time::Duration;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");

/// What was attempted, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Attempt<'a> {
    pub provider: &'a str,
    pub op: &'static str,
    pub key: &'a str,
}

impl Attempt<'_> {
    pub fn what(&self) -> String {
        if self.key.is_empty() {
            self.op.to_string()
        } else {
            format!("{} on key {}", self.op, self.key)
        }
    }

    /// A reply without a field the operation needs.
    pub fn missing(&self, field: &str, request_id: Option<&str>) -> ProviderError {
        ProviderError::internal(
            self.provider,
            format!(
                "{}: the reply has no {field}{}",
                self.what(),
                rid(request_id)
            ),
        )
    }
}

/// The service's request id in a reply's headers.
pub(crate) fn request_id(headers: &Headers) -> Option<String> {
    headers.get_optional_str(&REQUEST_ID).map(str::to_string)
}

fn rid(request_id: Option<&str>) -> String {
    request_id
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}

/// The wait a 429/503 asks for: `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After`
/// (seconds; an HTTP date counts as one second, the shortest sensible wait).
fn retry_after(headers: &Headers) -> Option<Duration> {
    for name in [&RETRY_AFTER_MS, &X_MS_RETRY_AFTER_MS] {
        if let Some(ms) = headers
            .get_optional_str(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = headers.get_optional_str(&RETRY_AFTER)?.trim();
    Some(
        value
            .parse::<u64>()
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1)),
    )
}

/// An SDK error as keygate's error kind. The SDK does not retry (see `client.rs`):
/// throttling and outages come here at once, as `Throttled` and `Unavailable`, for the guard.
pub(crate) fn from_sdk(at: Attempt<'_>, err: azure_core::Error) -> ProviderError {
    let provider = at.provider;
    let what = at.what();
    match err.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let headers = raw_response.as_ref().map(|r| r.headers());
            let request = rid(headers.and_then(request_id).as_deref());
            let code = error_code.as_deref().unwrap_or("");
            let status = u16::from(*status);
            if matches!(status, 429 | 503)
                && let Some(wait) = headers.and_then(retry_after)
            {
                backend_asked_to_wait(wait);
            }
            from_status(at, status, code, &err.to_string(), &request)
        }
        ErrorKind::Io | ErrorKind::Connection => ProviderError::unavailable(
            provider,
            format!("{what} could not reach Key Vault: {}", error_chain(&err)),
        ),
        ErrorKind::Credential => ProviderError::BackendDenied {
            provider: provider.into(),
            reason: format!(
                "{what}: no token from the configured credential: {}",
                error_chain(&err)
            ),
        },
        ErrorKind::DataConversion => ProviderError::internal(
            provider,
            format!("{what} got an unreadable reply: {}", error_chain(&err)),
        ),
        _ => ProviderError::internal(provider, format!("{what} failed: {}", error_chain(&err))),
    }
}

/// A Key Vault HTTP status and error code as keygate's error kind.
pub(crate) fn from_status(
    at: Attempt<'_>,
    status: u16,
    code: &str,
    message: &str,
    request: &str,
) -> ProviderError {
    let provider = at.provider.to_string();
    let what = at.what();
    let reason = format!("{what} failed: HTTP {status} {code}: {message}{request}");
    match (status, code) {
        (404, _) => ProviderError::NotFound {
            provider,
            what: format!("key {} ({}: {code}{request})", at.key, at.op),
        },
        (409, _) => ProviderError::AlreadyExists {
            provider,
            what: reason,
        },
        (401, _) => ProviderError::BackendDenied { provider, reason },
        // Key Vault's 403 is both "the principal may not" and "the key may not now"
        // (disabled, outside nbf/exp, an operation outside key_ops): the latter is the key's
        // state, which keygate reports as a precondition.
        (403, _) if message.contains("disabled") || message.contains("not permitted") => {
            ProviderError::FailedPrecondition { provider, reason }
        }
        (403, _) => ProviderError::BackendDenied { provider, reason },
        (429, _) => ProviderError::Throttled { provider, reason },
        (500..=599, _) | (408, _) => ProviderError::Unavailable { provider, reason },
        // A ciphertext or wrapped key that does not open is Key Vault's 400 BadParameter.
        (400, _) if matches!(at.op, "decrypt" | "unwrap key") => {
            ProviderError::AuthenticationFailed { provider }
        }
        (400, _) => ProviderError::InvalidInput { provider, reason },
        _ => ProviderError::Internal { provider, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(op: &'static str) -> Attempt<'static> {
        Attempt {
            provider: "kv-test",
            op,
            key: "azurekms://127.0.0.1:1/keys/k",
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        let kind =
            |op, status, message: &str| from_status(at(op), status, "Code", message, "").kind();
        assert_eq!(kind("describe", 404, "m"), "not_found");
        assert_eq!(
            kind(
                "encrypt",
                403,
                "Operation encrypt is not allowed on a disabled key."
            ),
            "failed_precondition"
        );
        assert_eq!(
            kind("encrypt", 403, "Caller is not authorized"),
            "backend_denied"
        );
        assert_eq!(kind("encrypt", 429, "m"), "throttled");
        assert_eq!(kind("encrypt", 503, "m"), "unavailable");
        assert_eq!(kind("decrypt", 400, "m"), "authentication_failed");
        assert_eq!(kind("encrypt", 400, "m"), "invalid_input");
        assert_eq!(kind("create key", 409, "m"), "already_exists");
    }

    #[test]
    fn messages_name_provider_op_key_and_request() {
        let msg = from_status(
            at("sign"),
            429,
            "Throttled",
            "slow down",
            " (request id r1)",
        )
        .to_string();
        assert!(
            msg.contains("kv-test") && msg.contains("sign") && msg.contains("keys/k"),
            "{msg}"
        );
        assert!(msg.contains("r1") && msg.contains("Throttled"), "{msg}");
    }
}
