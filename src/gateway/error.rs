use keygate_provider::ProviderError;

/// Why a call failed. Each variant maps to one gRPC code, in `server::status` (the one place).
/// Messages say what was wrong and never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl GatewayError {
    /// The audit outcome this error stands for.
    pub fn outcome(&self) -> crate::audit::Outcome {
        match self {
            GatewayError::Unauthenticated(_) | GatewayError::PermissionDenied(_) => {
                crate::audit::Outcome::Denied
            }
            _ => crate::audit::Outcome::Error,
        }
    }
}

impl From<sqlx::Error> for GatewayError {
    fn from(e: sqlx::Error) -> Self {
        GatewayError::Unavailable(format!("the catalog database failed: {e}"))
    }
}
