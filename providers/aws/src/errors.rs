//! Maps SDK errors to typed [`ProviderError`]s. Messages name the provider, the operation and
//! the key (plus the AWS request id when there was a reply); never credentials or plaintext.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;
use aws_smithy_runtime_api::http::Response;
use keygate_provider::ProviderError;

/// What was attempted, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Attempt<'a> {
    pub provider: &'a str,
    pub op: &'static str,
    pub key: &'a str,
}

impl Attempt<'_> {
    /// A reply without a field the operation needs.
    pub fn missing(&self, field: &str) -> ProviderError {
        ProviderError::internal(
            self.provider,
            format!("{}: the reply has no {field}", self.what()),
        )
    }

    pub fn what(&self) -> String {
        if self.key.is_empty() {
            self.op.to_string()
        } else {
            format!("{} on key {}", self.op, self.key)
        }
    }
}

/// An SDK error as keygate's error kind. The SDK does not retry (see `client.rs`): throttling
/// and outages come here at once, as `Throttled` and `Unavailable`, for the guard to retry.
pub(crate) fn from_sdk<E>(at: Attempt<'_>, err: SdkError<E, Response>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let provider = at.provider;
    // A failed call's request id joins CloudTrail's record of it to keygate's event.
    if let Some(id) = err.request_id() {
        keygate_provider::context::note_backend_request_id(id);
    }
    let request = err
        .request_id()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default();
    match &err {
        SdkError::TimeoutError(_) => {
            ProviderError::unavailable(provider, format!("{} timed out{request}", at.what()))
        }
        SdkError::DispatchFailure(d) => ProviderError::unavailable(
            provider,
            format!(
                "{} could not reach AWS KMS{}: {}",
                at.what(),
                if d.is_timeout() { " (timeout)" } else { "" },
                chain(&err)
            ),
        ),
        SdkError::ResponseError(_) => ProviderError::unavailable(
            provider,
            format!(
                "{} got an unreadable reply{request}: {}",
                at.what(),
                chain(&err)
            ),
        ),
        SdkError::ConstructionFailure(_) => ProviderError::internal(
            provider,
            format!(
                "{} could not be sent (credentials or configuration): {}",
                at.what(),
                chain(&err)
            ),
        ),
        SdkError::ServiceError(service) => {
            let e = service.err();
            from_code(
                at,
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or(""),
                &request,
            )
        }
        _ => ProviderError::internal(
            provider,
            format!("{} failed{request}: {}", at.what(), chain(&err)),
        ),
    }
}

/// The error and its sources, one line (the SDK's own Display says only "dispatch failure").
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    keygate_provider::kit::error_chain(err)
}

/// A KMS error code as keygate's error kind.
pub(crate) fn from_code(
    at: Attempt<'_>,
    code: &str,
    message: &str,
    request: &str,
) -> ProviderError {
    let provider = at.provider.to_string();
    let what = at.what();
    let reason = format!("{what} failed: {code}: {message}{request}");
    match code {
        "NotFoundException" => ProviderError::NotFound {
            provider,
            what: format!("key {} ({}{request})", at.key, at.op),
        },
        "AlreadyExistsException" => ProviderError::AlreadyExists {
            provider,
            what: format!("{what}: {message}{request}"),
        },
        "DisabledException" => ProviderError::FailedPrecondition {
            provider,
            reason: format!("{what}: the key is disabled in AWS KMS{request}"),
        },
        "KMSInvalidStateException"
        | "KeyUnavailableException"
        | "InvalidKeyUsageException"
        | "IncorrectKeySpecException" => ProviderError::FailedPrecondition { provider, reason },
        "InvalidCiphertextException" | "IncorrectKeyException" => {
            ProviderError::AuthenticationFailed { provider }
        }
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => ProviderError::BackendDenied { provider, reason },
        "ThrottlingException" | "LimitExceededException" | "TooManyRequestsException" => {
            ProviderError::Throttled { provider, reason }
        }
        "UnsupportedOperationException" => ProviderError::Unsupported {
            provider,
            what: format!("{what}: {message}{request}"),
        },
        "DependencyTimeoutException"
        | "KMSInternalException"
        | "ServiceUnavailable"
        | "InternalFailure" => ProviderError::Unavailable { provider, reason },
        "ValidationException"
        | "InvalidArnException"
        | "InvalidAliasNameException"
        | "InvalidMarkerException"
        | "InvalidGrantTokenException"
        | "SerializationException"
        | "TagException" => ProviderError::InvalidInput { provider, reason },
        _ => ProviderError::Internal { provider, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Attempt<'static> {
        Attempt {
            provider: "aws-test",
            op: "decrypt",
            key: "awskms:///arn:aws:kms:us-east-1:000000000000:key/k",
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        let kind = |code| from_code(at(), code, "m", "").kind();
        assert_eq!(kind("NotFoundException"), "not_found");
        assert_eq!(kind("DisabledException"), "failed_precondition");
        assert_eq!(kind("KMSInvalidStateException"), "failed_precondition");
        assert_eq!(kind("InvalidCiphertextException"), "authentication_failed");
        assert_eq!(kind("AccessDeniedException"), "backend_denied");
        assert_eq!(kind("ThrottlingException"), "throttled");
        assert_eq!(kind("LimitExceededException"), "throttled");
        assert_eq!(kind("SomethingNew"), "internal");
    }

    #[test]
    fn messages_name_provider_op_and_key() {
        let msg =
            from_code(at(), "ThrottlingException", "slow down", " (request id r1)").to_string();
        assert!(msg.contains("aws-test") && msg.contains("decrypt") && msg.contains("key/k"));
        assert!(msg.contains("r1"));
    }
}
