/// What went wrong in a backend, typed so the gateway can map each kind to one gRPC code.
///
/// Messages name the provider, the key URI and the operation, never key material, plaintext
/// or credentials.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The key (or version) does not exist in the backend.
    #[error("{provider}: {what} not found")]
    NotFound { provider: String, what: String },

    /// The key already exists in the backend.
    #[error("{provider}: {what} already exists")]
    AlreadyExists { provider: String, what: String },

    /// The backend lacks this operation or algorithm.
    #[error("provider '{provider}' does not support {what}")]
    Unsupported { provider: String, what: String },

    /// The key exists but is not usable for this operation (wrong purpose, disabled in the
    /// backend, version destroyed, …).
    #[error("{provider}: {reason}")]
    FailedPrecondition { provider: String, reason: String },

    /// The caller's input is malformed for this backend (bad signature length, oversized
    /// plaintext, …).
    #[error("{provider}: {reason}")]
    InvalidInput { provider: String, reason: String },

    /// A ciphertext or MAC failed authentication: it was altered, truncated, made under
    /// another key, or the associated data differs. Deliberately says no more than that.
    #[error(
        "{provider}: ciphertext failed authentication (corrupted, truncated, made under another key, or different associated data)"
    )]
    AuthenticationFailed { provider: String },

    /// The backend refused the credentials keygate used (its own access control, not
    /// keygate's policy).
    #[error("{provider} refused the request: {reason}")]
    BackendDenied { provider: String, reason: String },

    /// The backend throttled keygate (or keygate's own rate limit for it was reached) and
    /// retrying within the deadline did not help.
    #[error("{provider} is throttling requests: {reason}")]
    Throttled { provider: String, reason: String },

    /// The backend cannot be reached, is sealed, or timed out.
    #[error("{provider} is unavailable: {reason}")]
    Unavailable { provider: String, reason: String },

    /// A change (create, rotate, destroy, import) was sent but no answer came within the
    /// deadline: the backend may or may not have carried it out. Never retried; the event
    /// says so, and the key's state in the backend is to be checked (`describe`).
    #[error("{provider}: {reason}; whether the backend carried it out is unknown")]
    OutcomeUnknown { provider: String, reason: String },

    /// Anything else; the message says what was attempted.
    #[error("{provider}: {reason}")]
    Internal { provider: String, reason: String },

    /// An end-to-end integrity check failed (Cloud KMS's CRC32C checksums): the request or
    /// the reply was corrupted on the way, and the result was discarded, never used. Worth
    /// another attempt, as Google advises.
    #[error("{provider}: integrity check failed: {reason}")]
    IntegrityFailed { provider: String, reason: String },
}

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

impl ProviderError {
    pub fn not_found(provider: &str, what: impl Into<String>) -> Self {
        Self::NotFound {
            provider: provider.into(),
            what: what.into(),
        }
    }

    pub fn unsupported(provider: &str, what: impl Into<String>) -> Self {
        Self::Unsupported {
            provider: provider.into(),
            what: what.into(),
        }
    }

    pub fn precondition(provider: &str, reason: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            provider: provider.into(),
            reason: reason.into(),
        }
    }

    pub fn invalid(provider: &str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            provider: provider.into(),
            reason: reason.into(),
        }
    }

    pub fn auth_failed(provider: &str) -> Self {
        Self::AuthenticationFailed {
            provider: provider.into(),
        }
    }

    pub fn unavailable(provider: &str, reason: impl Into<String>) -> Self {
        Self::Unavailable {
            provider: provider.into(),
            reason: reason.into(),
        }
    }

    pub fn throttled(provider: &str, reason: impl Into<String>) -> Self {
        Self::Throttled {
            provider: provider.into(),
            reason: reason.into(),
        }
    }

    /// Worth another attempt: the backend was unreachable, too slow or throttling, or a
    /// reply arrived corrupted. Whether an attempt is made also depends on the operation (see
    /// [`crate::kit::Op::is_idempotent`]).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Throttled { .. } | Self::IntegrityFailed { .. }
        )
    }

    pub fn integrity(provider: &str, reason: impl Into<String>) -> Self {
        Self::IntegrityFailed {
            provider: provider.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(provider: &str, reason: impl Into<String>) -> Self {
        Self::Internal {
            provider: provider.into(),
            reason: reason.into(),
        }
    }

    /// A short, stable name of the error kind, for audit events and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Unsupported { .. } => "unsupported",
            Self::FailedPrecondition { .. } => "failed_precondition",
            Self::InvalidInput { .. } => "invalid_input",
            Self::AuthenticationFailed { .. } => "authentication_failed",
            Self::BackendDenied { .. } => "backend_denied",
            Self::Throttled { .. } => "throttled",
            Self::Unavailable { .. } => "unavailable",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
            Self::Internal { .. } => "internal",
            Self::IntegrityFailed { .. } => "integrity_failed",
        }
    }
}
