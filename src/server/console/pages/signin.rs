//! Sign-in and sign-out.

use super::same_origin;
use crate::gateway::ops;
use crate::server::console::layout::{self, respond, shell};
use crate::server::console::session::MAX_TOKEN;
use crate::server::console::{Console, Peer, Viewer, call_for, http_status};
use axum::Extension;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(serde::Deserialize)]
pub struct SignInForm {
    token: String,
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn sign_in_page(message: Option<&str>) -> Markup {
    shell(
        "Sign in",
        "",
        None,
        html! {
            @if let Some(message) = message {
                p.error role="alert" { (message) }
            }
            form.signin method="post" action="/signin" {
                label for="token" { "keygate token" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.hint { "The token you give the CLI. It is kept in a cookie only this console can read, sealed, for the length of the session." }
        },
    )
}

pub async fn form() -> Response {
    respond(sign_in_page(None))
}

/// Checks the token by a ConsoleSignIn call (authenticated, authorized, audited) and, when
/// it passes, sets the session cookie.
pub async fn submit(
    State(console): State<Arc<Console>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if !same_origin(&headers) {
        return layout::error_page(
            StatusCode::FORBIDDEN,
            "The form came from another site.",
            None,
        );
    }
    let given = Zeroizing::new(form.token);
    let token = given.trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return (
            StatusCode::BAD_REQUEST,
            respond(sign_in_page(Some("Give a token."))),
        )
            .into_response();
    }
    let call = call_for(Zeroizing::new(token.as_bytes().to_vec()), &peer);
    match console.gateway.run(call, ops::ConsoleSignIn).await {
        Ok(signed_in) => {
            let now = crate::time::now_ms();
            let Ok(cookie) = console
                .sessions
                .seal(token.as_bytes(), &signed_in.principal, now)
            else {
                return layout::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The session could not be made.",
                    None,
                );
            };
            let secure = if console.secure { "; Secure" } else { "" };
            let name = console.cookie_name();
            (
                [(
                    header::SET_COOKIE,
                    format!("{name}={cookie}; Path=/; HttpOnly; SameSite=Strict{secure}"),
                )],
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(e) => {
            let status = http_status(crate::server::status::code(&e));
            // Nobody is signed in yet: say what the person can act on, nothing internal.
            let message = match status {
                StatusCode::UNAUTHORIZED => "That token is not valid.".to_string(),
                StatusCode::FORBIDDEN => format!("This principal may not use the console: {e}"),
                StatusCode::TOO_MANY_REQUESTS => "keygate is busy; try again shortly.".into(),
                _ => {
                    tracing::warn!(error = %e, reason = e.reason(), "console: a sign-in failed");
                    "keygate could not check the token now; try again shortly.".into()
                }
            };
            (status, respond(sign_in_page(Some(&message)))).into_response()
        }
    }
}

pub async fn sign_out(
    State(console): State<Arc<Console>>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !super::form_allowed(&console, &viewer, &headers, &form.csrf) {
        return layout::error_page(
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or wrong; reload the page and try again.",
            Some(&viewer),
        );
    }
    // Revoked here, not only forgotten by this browser: a copied cookie ends too.
    console
        .sessions
        .revoke(&viewer.session, crate::time::now_ms());
    let secure = if console.secure { "; Secure" } else { "" };
    let name = console.cookie_name();
    (
        [(
            header::SET_COOKIE,
            format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
        )],
        Redirect::to("/signin"),
    )
        .into_response()
}
