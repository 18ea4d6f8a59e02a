//! The one place gateway errors become gRPC statuses: a code, the human message, and a
//! `google.rpc.ErrorInfo` with the stable reason (plus a `BadRequest` field violation for bad
//! input), which generated clients in every language can read.

use crate::gateway::GatewayError;
use keygate_provider::ProviderError;
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// `ErrorInfo.domain` of every keygate error.
pub const ERROR_DOMAIN: &str = "keygate.v1";

pub fn code(e: &GatewayError) -> Code {
    use GatewayError as E;
    match e {
        E::NoToken | E::BadToken => Code::Unauthenticated,
        E::PolicyDenied { .. } => Code::PermissionDenied,
        E::KeyNotFound(_)
        | E::VersionNotFound { .. }
        | E::ProviderUnknown { .. }
        | E::PrincipalUnknown(_) => Code::NotFound,
        E::KeyExists(_) => Code::AlreadyExists,
        E::NoKeyGiven { .. }
        | E::InvalidField { .. }
        | E::TooLarge { .. }
        | E::CiphertextMalformed(_)
        | E::CiphertextForeign(_)
        | E::CiphertextVersionUnknown { .. }
        | E::CiphertextOtherKey { .. }
        | E::ProviderNotConfigured { .. } => Code::InvalidArgument,
        E::ApprovalPending { .. }
        | E::RequesterUnknown(_)
        | E::PolicyInvalid(_)
        | E::KeyDisabled(_)
        | E::KeyPendingDestruction(_)
        | E::KeyDestroyed(_)
        | E::NotPendingDestruction { .. }
        | E::AlreadyPendingDestruction(_)
        | E::WrongPurpose { .. }
        | E::AlgorithmUnsupported { .. }
        | E::DataKeyNeedsSymmetricKey { .. }
        | E::KmsCiphertextTooLarge { .. }
        | E::NotDueForRotation { .. }
        | E::RotationLeftToProvider { .. }
        | E::NotDueForDestruction(_)
        | E::DestructionNotApproved(_)
        | E::VersionRetired { .. }
        | E::VersionInUse { .. }
        | E::KmsPluginKeyRetirement { .. }
        | E::KeyInUse { .. }
        | E::KeyWrapsMasterKey { .. } => Code::FailedPrecondition,
        E::CallerGone => Code::Cancelled,
        E::Overloaded { .. } | E::TailLimit { .. } => Code::ResourceExhausted,
        E::CallTimedOut { .. } => Code::DeadlineExceeded,
        E::ProviderMissing { .. } | E::Audit(_) | E::ShuttingDown => Code::Unavailable,
        E::Catalog(crate::catalog::CatalogError::Conflict { .. }) => Code::Aborted,
        E::Catalog(crate::catalog::CatalogError::NameTaken(_)) => Code::AlreadyExists,
        E::Catalog(crate::catalog::CatalogError::Missing(_)) => Code::Internal,
        E::Catalog(crate::catalog::CatalogError::ProviderKeyTaken { .. }) => Code::AlreadyExists,
        E::Catalog(_) => Code::Unavailable,
        E::Posture(crate::posture::PostureError::NotFound(_)) => Code::NotFound,
        E::Posture(crate::posture::PostureError::Closed(_)) => Code::FailedPrecondition,
        E::Posture(crate::posture::PostureError::Store(_)) => Code::Unavailable,
        E::AlreadyManaged { .. } => Code::AlreadyExists,
        E::Internal(_) => Code::Internal,
        E::Concealed { shown, .. } => code(shown),
        E::Approval(a) => {
            use crate::approvals::ApprovalError as A;
            match a {
                A::NotFound(_) => Code::NotFound,
                A::Closed { .. } | A::Expired { .. } | A::DigestMismatch { .. } => {
                    Code::FailedPrecondition
                }
                A::AlreadyApproved { .. } => Code::AlreadyExists,
                A::SelfApproval { .. } | A::NotRequester { .. } => Code::PermissionDenied,
                A::Tampered { .. } => Code::DataLoss,
                A::Store(_) | A::Corrupt(_) => Code::Unavailable,
            }
        }
        E::Provider(p) => match p {
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
            ProviderError::Unavailable { .. } | ProviderError::OutcomeUnknown { .. } => {
                Code::Unavailable
            }
            ProviderError::Internal { .. } => Code::Internal,
            // Corrupted on the way (a checksum that does not match): DATA_LOSS, so clients
            // can tell it from a bug in the gateway.
            ProviderError::IntegrityFailed { .. } => Code::DataLoss,
        },
    }
}

pub fn to_status(e: &GatewayError) -> Status {
    let mut metadata = HashMap::new();
    if let GatewayError::Provider(p) = e {
        metadata.insert("provider_error".to_string(), p.kind().to_string());
    }
    // Issue 13: what a client acts on without parsing the message.
    match e {
        GatewayError::ApprovalPending { id, .. } => {
            metadata.insert("approval_id".to_string(), id.clone());
        }
        GatewayError::PolicyDenied { policies, .. } if !policies.is_empty() => {
            metadata.insert("policies".to_string(), policies.join(","));
        }
        _ => {}
    }
    let mut details = ErrorDetails::with_error_info(e.reason(), ERROR_DOMAIN, metadata);
    if let Some(field) = e.field() {
        details.add_bad_request_violation(field, e.to_string());
    }
    Status::with_error_details(code(e), e.to_string(), details)
}
