//! Maps SDK errors to typed [`ProviderError`]s, so the guard can tell what to retry
//! (`Unavailable`, `Throttled`, `IntegrityFailed`) from what to report at once. Messages name
//! the provider, the operation, the key and keygate's request id (the one Cloud Audit Logs
//! record, see `user_agent.rs`); never credentials, plaintext or key material.

use google_cloud_gax::error::Error as SdkError;
use google_cloud_gax::error::rpc::Code;
use keygate_provider::ProviderError;

/// What was attempted, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Attempt<'a> {
    pub provider: &'a str,
    pub op: &'static str,
    pub key: &'a str,
    pub request_id: &'a str,
}

impl Attempt<'_> {
    pub fn what(&self) -> String {
        if self.key.is_empty() {
            self.op.to_string()
        } else {
            format!("{} on {}", self.op, self.key)
        }
    }

    fn request(&self) -> String {
        if self.request_id.is_empty() {
            String::new()
        } else {
            format!(" (request id {})", self.request_id)
        }
    }

    /// A reply that lacks something the operation needs, or says something impossible.
    pub fn bad_reply(&self, what: impl std::fmt::Display) -> ProviderError {
        ProviderError::internal(
            self.provider,
            format!("{}: {what}{}", self.what(), self.request()),
        )
    }

    /// A CRC32C that does not match, or a `verified_*` flag that says Cloud KMS did not check
    /// what keygate sent: the data was corrupted on the way, and the result is discarded.
    pub fn integrity(&self, what: impl std::fmt::Display) -> ProviderError {
        ProviderError::integrity(
            self.provider,
            format!(
                "{}: {what}; the reply was discarded{}",
                self.what(),
                self.request()
            ),
        )
    }
}

/// An SDK error as keygate's error kind. The SDK does not retry (see `client.rs`):
/// throttling and outages come here at once, for the guard to retry.
pub(crate) fn from_sdk(at: Attempt<'_>, err: &SdkError) -> ProviderError {
    let provider = at.provider;
    let request = at.request();
    if let Some(status) = err.status() {
        let retry_after = err
            .http_headers()
            .and_then(|h| h.get("retry-after"))
            .and_then(|v| v.to_str().ok())
            .map(|s| format!(" (Retry-After: {s}s)"))
            .unwrap_or_default();
        return from_status(at, status.code, &status.message, &retry_after);
    }
    if err.is_timeout() {
        return ProviderError::unavailable(provider, format!("{} timed out{request}", at.what()));
    }
    if err.is_connect() || err.is_io() || err.is_transport() {
        return ProviderError::unavailable(
            provider,
            format!(
                "{} could not reach Cloud KMS{request}: {}",
                at.what(),
                keygate_provider::kit::error_chain(err)
            ),
        );
    }
    if err.is_authentication() {
        let transient = std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<google_cloud_gax::error::CredentialsError>())
            .is_some_and(|c| c.is_transient());
        let reason = format!(
            "{} could not get credentials for Cloud KMS{request}: {}",
            at.what(),
            keygate_provider::kit::error_chain(err)
        );
        return if transient {
            ProviderError::unavailable(provider, reason)
        } else {
            ProviderError::BackendDenied {
                provider: provider.into(),
                reason,
            }
        };
    }
    if let Some(code) = err.http_status_code() {
        // An HTTP error without Google's error body (a proxy, a load balancer).
        let reason = format!("{} failed with HTTP {code}{request}", at.what());
        return match code {
            429 => ProviderError::throttled(provider, reason),
            502..=504 => ProviderError::unavailable(provider, reason),
            401 | 403 => ProviderError::BackendDenied {
                provider: provider.into(),
                reason,
            },
            _ => ProviderError::internal(provider, reason),
        };
    }
    ProviderError::internal(
        provider,
        format!(
            "{} failed{request}: {}",
            at.what(),
            keygate_provider::kit::error_chain(err)
        ),
    )
}

/// A canonical status from Cloud KMS as keygate's error kind.
pub(crate) fn from_status(
    at: Attempt<'_>,
    code: Code,
    message: &str,
    retry_after: &str,
) -> ProviderError {
    let provider = at.provider.to_string();
    let what = at.what();
    let request = at.request();
    let reason = format!("{what} failed: {code:?}: {message}{retry_after}{request}");
    match code {
        Code::NotFound => ProviderError::NotFound {
            provider,
            what: format!("{} ({}: {message}{request})", at.key, at.op),
        },
        Code::AlreadyExists => ProviderError::AlreadyExists {
            provider,
            what: format!("{what}: {message}{request}"),
        },
        // Cloud KMS checks the CRC32Cs keygate sends and refuses a request whose data does
        // not match them: it was corrupted on the way there.
        Code::InvalidArgument if message.to_ascii_lowercase().contains("checksum") => {
            ProviderError::integrity(
                &provider,
                format!("{what}: Cloud KMS found the request corrupted: {message}{request}"),
            )
        }
        Code::InvalidArgument | Code::OutOfRange => {
            ProviderError::InvalidInput { provider, reason }
        }
        Code::FailedPrecondition => ProviderError::FailedPrecondition { provider, reason },
        Code::PermissionDenied | Code::Unauthenticated => {
            ProviderError::BackendDenied { provider, reason }
        }
        Code::ResourceExhausted => ProviderError::Throttled { provider, reason },
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted => {
            ProviderError::Unavailable { provider, reason }
        }
        Code::Unimplemented => ProviderError::Unsupported {
            provider,
            what: format!("{what}: {message}{request}"),
        },
        _ => ProviderError::Internal { provider, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Attempt<'static> {
        Attempt {
            provider: "gcp-test",
            op: "decrypt",
            key: "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k",
            request_id: "req-1",
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        let kind = |code, msg: &str| from_status(at(), code, msg, "").kind();
        assert_eq!(kind(Code::NotFound, "m"), "not_found");
        assert_eq!(kind(Code::FailedPrecondition, "m"), "failed_precondition");
        assert_eq!(kind(Code::InvalidArgument, "m"), "invalid_input");
        assert_eq!(
            kind(
                Code::InvalidArgument,
                "The checksum in field plaintext_crc32c did not match the data in field plaintext."
            ),
            "integrity_failed"
        );
        assert_eq!(kind(Code::PermissionDenied, "m"), "backend_denied");
        assert_eq!(kind(Code::ResourceExhausted, "m"), "throttled");
        assert_eq!(kind(Code::Unavailable, "m"), "unavailable");
        assert_eq!(kind(Code::Unimplemented, "m"), "unsupported");
        assert_eq!(kind(Code::DataLoss, "m"), "internal");
    }

    #[test]
    fn messages_name_provider_op_key_and_request_id() {
        let msg =
            from_status(at(), Code::ResourceExhausted, "quota", " (Retry-After: 1s)").to_string();
        for part in [
            "gcp-test",
            "decrypt",
            "cryptoKeys/k",
            "req-1",
            "Retry-After",
        ] {
            assert!(msg.contains(part), "{part} missing from {msg}");
        }
    }
}
