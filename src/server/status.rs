//! The one place gateway errors become gRPC statuses.

use crate::gateway::GatewayError;
use keygate_provider::ProviderError;
use tonic::{Code, Status};

pub fn to_status(e: GatewayError) -> Status {
    let code = match &e {
        GatewayError::Unauthenticated(_) => Code::Unauthenticated,
        GatewayError::PermissionDenied(_) => Code::PermissionDenied,
        GatewayError::NotFound(_) => Code::NotFound,
        GatewayError::InvalidArgument(_) => Code::InvalidArgument,
        GatewayError::FailedPrecondition(_) => Code::FailedPrecondition,
        GatewayError::AlreadyExists(_) => Code::AlreadyExists,
        GatewayError::Unavailable(_) => Code::Unavailable,
        GatewayError::Internal(_) => Code::Internal,
        GatewayError::Provider(p) => match p {
            ProviderError::NotFound { .. } => Code::NotFound,
            ProviderError::AlreadyExists { .. } => Code::AlreadyExists,
            ProviderError::Unsupported { .. } | ProviderError::FailedPrecondition { .. } => {
                Code::FailedPrecondition
            }
            ProviderError::InvalidInput { .. } | ProviderError::AuthenticationFailed { .. } => {
                Code::InvalidArgument
            }
            ProviderError::BackendDenied { .. } => Code::PermissionDenied,
            ProviderError::Throttled { .. } => Code::ResourceExhausted,
            ProviderError::Unavailable { .. } => Code::Unavailable,
            ProviderError::Internal { .. } => Code::Internal,
        },
    };
    Status::new(code, e.to_string())
}
