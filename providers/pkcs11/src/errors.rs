//! Errors: start-up failures that name the setting at fault, and the mapping of PKCS#11
//! return values onto keygate's typed [`ProviderError`].

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use keygate_provider::ProviderError;
use std::path::PathBuf;

/// Why [`crate::Pkcs11Provider::connect`] failed. Each message names the config setting.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("pkcs11 provider '{provider}': setting `module`: {} does not exist", path.display())]
    ModuleMissing { provider: String, path: PathBuf },

    #[error(
        "pkcs11 provider '{provider}': setting `module`: {} could not be loaded and initialised as a PKCS#11 module: {reason}",
        path.display()
    )]
    ModuleLoad {
        provider: String,
        path: PathBuf,
        reason: String,
    },

    #[error(
        "pkcs11 provider '{provider}': setting `token`: no token with {selector} (tokens present: {present})"
    )]
    TokenNotFound {
        provider: String,
        selector: String,
        present: String,
    },

    #[error(
        "pkcs11 provider '{provider}': setting `user_pin`: the token refused the user PIN ({reason})"
    )]
    PinRejected { provider: String, reason: String },

    #[error("pkcs11 provider '{provider}': setting `session_pool_size`: must be at least 1")]
    InvalidPoolSize { provider: String },

    #[error("pkcs11 provider '{provider}': {what} failed: {reason}")]
    Backend {
        provider: String,
        what: String,
        reason: String,
    },
}

impl From<OpenError> for ProviderError {
    fn from(e: OpenError) -> Self {
        let reason = e.to_string();
        match e {
            OpenError::PinRejected { provider, .. } => {
                ProviderError::BackendDenied { provider, reason }
            }
            OpenError::InvalidPoolSize { provider } => {
                ProviderError::InvalidInput { provider, reason }
            }
            OpenError::ModuleMissing { provider, .. }
            | OpenError::ModuleLoad { provider, .. }
            | OpenError::TokenNotFound { provider, .. }
            | OpenError::Backend { provider, .. } => {
                ProviderError::Unavailable { provider, reason }
            }
        }
    }
}

/// A failure inside a call on a session, before the provider adds its name and the operation.
#[derive(Debug)]
pub enum OpError {
    Ck(CkError),
    NotFound(String),
    AlreadyExists(String),
    Unsupported(String),
    AuthFailed,
    Internal(String),
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Errors after which the session cannot be trusted again: the pool drops it and opens a new
/// one on next use.
pub fn is_session_level(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
                | RvError::OperationActive
                | RvError::OperationNotInitialized
        )
    )
}

/// Whether the error came from C_Decrypt itself (not C_DecryptInit).
pub fn from_c_decrypt(e: &CkError) -> bool {
    matches!(e, CkError::Pkcs11(_, Function::Decrypt))
}

/// Whether C_DecryptInit refused the mechanism or its parameters.
pub fn mechanism_refused(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::ArgumentsBad | RvError::MechanismParamInvalid | RvError::MechanismInvalid,
            Function::DecryptInit
        )
    )
}

pub fn is_rv(e: &CkError, wanted: RvError) -> bool {
    rv(e) == Some(wanted)
}

impl OpError {
    /// The typed error, naming the provider and what was attempted (`what` carries the key
    /// URI and operation).
    pub fn into_provider(self, provider: &str, what: &str) -> ProviderError {
        match self {
            OpError::NotFound(thing) => ProviderError::not_found(provider, thing),
            OpError::AlreadyExists(thing) => ProviderError::AlreadyExists {
                provider: provider.into(),
                what: thing,
            },
            OpError::Unsupported(thing) => ProviderError::unsupported(provider, thing),
            OpError::AuthFailed => ProviderError::auth_failed(provider),
            OpError::Internal(reason) => {
                ProviderError::internal(provider, format!("{what}: {reason}"))
            }
            OpError::Ck(e) => map_ck(provider, what, &e),
        }
    }
}

fn map_ck(provider: &str, what: &str, e: &CkError) -> ProviderError {
    let reason = format!("{what}: {e}");
    let Some(code) = rv(e) else {
        return match e {
            CkError::LibraryLoading(_)
            | CkError::NullFunctionPointer
            | CkError::MissingSymbol(_) => ProviderError::unavailable(provider, reason),
            _ => ProviderError::internal(provider, reason),
        };
    };
    match code {
        RvError::DeviceRemoved
        | RvError::DeviceError
        | RvError::DeviceMemory
        | RvError::TokenNotPresent
        | RvError::TokenNotRecognized
        | RvError::SlotIdInvalid
        | RvError::SessionHandleInvalid
        | RvError::SessionClosed
        | RvError::SessionCount
        | RvError::CryptokiNotInitialized
        | RvError::FunctionFailed => ProviderError::unavailable(provider, reason),
        RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent => {
            ProviderError::precondition(
                provider,
                format!("{reason} (the key is disabled or not for this operation)"),
            )
        }
        RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => {
            ProviderError::not_found(provider, what.to_string())
        }
        RvError::PinIncorrect
        | RvError::PinLocked
        | RvError::PinExpired
        | RvError::UserNotLoggedIn => ProviderError::BackendDenied {
            provider: provider.into(),
            reason,
        },
        RvError::DataLenRange | RvError::DataInvalid | RvError::SignatureLenRange => {
            ProviderError::invalid(provider, reason)
        }
        RvError::AttributeReadOnly | RvError::ActionProhibited => {
            ProviderError::unsupported(provider, reason)
        }
        _ => ProviderError::internal(provider, reason),
    }
}
