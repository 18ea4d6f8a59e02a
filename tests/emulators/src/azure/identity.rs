//! A stand-in for Microsoft Entra ID's token endpoint, `POST /{tenant}/oauth2/v2.0/token`
//! (client credentials with a client secret or a signed client assertion), so that
//! `azure_identity`'s credentials obtain real tokens from the emulator (give them the
//! emulator's URL as the authority host). Tokens are random; the emulator remembers which
//! client each was issued to and names it in the AuditEvent `identity.claim`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::Shared;

/// Issued tokens and the client secrets the emulator checks (none: any secret goes).
#[derive(Debug, Default)]
pub struct Identities {
    secrets: Mutex<HashMap<String, String>>,
    tokens: Mutex<HashMap<String, Claim>>,
}

#[derive(Debug, Clone)]
struct Claim {
    tenant: String,
    client_id: String,
}

impl Identities {
    pub fn register_secret(&self, client_id: &str, secret: &str) {
        if let Ok(mut s) = self.secrets.lock() {
            s.insert(client_id.into(), secret.into());
        }
    }

    /// The AuditEvent `identity.claim` for a bearer token: the application the emulator
    /// issued it to, or an empty claim for a token it did not issue.
    pub fn claim(&self, token: &str) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(c) = self.tokens.lock().ok().and_then(|t| t.get(token).cloned()) {
            m.insert("appid".into(), c.client_id.clone().into());
            m.insert(
                "http://schemas.microsoft.com/identity/claims/tenantid".into(),
                c.tenant.into(),
            );
        }
        m
    }

    fn check_secret(&self, client_id: &str, secret: &str) -> bool {
        match self.secrets.lock() {
            Ok(s) if s.is_empty() => !secret.is_empty(),
            Ok(s) => s.get(client_id).is_some_and(|want| want == secret),
            Err(_) => false,
        }
    }
}

fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
        })),
    )
        .into_response()
}

/// A client assertion is a JWT; the emulator checks its shape and expiry, not its signature
/// (it does not know the client's certificate or the federated issuer's keys).
fn assertion_ok(jwt: &str) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 || parts[2].is_empty() {
        return false;
    }
    let Some(claims) = URL_SAFE_NO_PAD
        .decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return false;
    };
    claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp > chrono::Utc::now().timestamp())
}

pub async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The emulator supports the client_credentials grant only.",
        );
    }
    let client_id = field("client_id");
    if client_id.is_empty() {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    }
    let ok = if form.contains_key("client_secret") {
        shared
            .identities
            .check_secret(client_id, field("client_secret"))
    } else if form.contains_key("client_assertion") {
        assertion_ok(field("client_assertion"))
    } else {
        false
    };
    if !ok {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret or client assertion provided.",
        );
    }
    let token = format!("kgemu.{}", uuid::Uuid::new_v4().simple());
    if let Ok(mut t) = shared.identities.tokens.lock() {
        t.insert(
            token.clone(),
            Claim {
                tenant,
                client_id: client_id.to_string(),
            },
        );
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": token,
    }))
    .into_response()
}
