//! Key Vault's error body: `{"error": {"code", "message"}}` with its codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The resource Key Vault's bearer challenge names; the SDK derives its token scope from it.
pub const CHALLENGE: &str = "Bearer authorization=\"https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000\", resource=\"https://vault.azure.net\"";

#[derive(Debug, Clone)]
pub struct KvError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u32>,
}

pub type KvResult<T> = Result<T, KvError>;

impl KvError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    pub fn key_not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            format!(
                "A key with (name/id) {what} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command."
            ),
        )
    }

    pub fn deleted_key_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            format!("Deleted Key not found: {name}"),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        )
    }

    /// An injected throttling/unavailability answer (test hook).
    pub fn injected(status: u16, retry_after_secs: u32) -> Self {
        let (status, code) = if status == 429 {
            (StatusCode::TOO_MANY_REQUESTS, "Throttled")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        };
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(
                status,
                code,
                "Request was not processed because too many requests were received (injected by the emulator's test hook).",
            )
        }
    }
}

impl IntoResponse for KvError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
