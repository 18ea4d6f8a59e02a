//! The web console (`[console]`): server-rendered pages for security teams, on a listener of
//! its own.
//!
//! - Every page reads through [`Gateway::run`] as the signed-in principal: the same
//!   authentication, Cedar decisions and audit events as the RPC each read stands for. The
//!   console holds no data of its own and cannot show what the principal may not read.
//! - Read-only, except acknowledging a finding (a POST carrying the session's CSRF token).
//! - No CDN, no inline script: one stylesheet and one small script, served from the binary,
//!   under a Content-Security-Policy that allows nothing else.

mod layout;
mod pages;
mod serve;
pub mod session;
mod start;

pub use serve::serve;
pub use start::{bind, start};

use crate::auth::PeerIdentity;
use crate::gateway::runner::Operation;
use crate::gateway::{Call, Credentials, Gateway, GatewayError};
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use session::{PLAIN_COOKIE, SECURE_COOKIE, Session, Sessions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Console {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) sessions: Sessions,
    /// Cookies marked `Secure` (the console speaks HTTPS).
    pub(crate) secure: bool,
    /// The longest a request takes, its body's arrival included.
    pub(crate) request_timeout: Duration,
    /// Ends live tails when keygate stops.
    pub(crate) stop: CancellationToken,
}

impl Console {
    pub fn new(
        gateway: Arc<Gateway>,
        sessions: Sessions,
        secure: bool,
        request_timeout: Duration,
        stop: CancellationToken,
    ) -> Self {
        Console {
            gateway,
            sessions,
            secure,
            request_timeout,
            stop,
        }
    }

    pub(crate) fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE
        } else {
            PLAIN_COOKIE
        }
    }
}

/// The connection a request came on: set by the server loop for every request.
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate the TLS handshake verified, if any.
    pub identity: Option<Arc<PeerIdentity>>,
}

/// A signed-in request: its session and the connection, ready to make gateway calls.
pub struct Viewer {
    pub session: Session,
    pub cookie: String,
    peer: Peer,
}

impl Viewer {
    pub fn call(&self) -> Call {
        call_for(self.session.token.clone(), &self.peer)
    }

    /// Runs `op` as the signed-in principal.
    pub async fn run<O: Operation>(
        &self,
        console: &Console,
        op: O,
    ) -> Result<O::Output, GatewayError> {
        console.gateway.run(self.call(), op).await
    }
}

pub(crate) fn call_for(token: zeroize::Zeroizing<Vec<u8>>, peer: &Peer) -> Call {
    let credentials = match &peer.identity {
        Some(identity) => Credentials::Certified {
            token: Some(token),
            peer: identity.clone(),
        },
        None => Credentials::Bearer(token),
    };
    Call {
        request_id: crate::gateway::new_request_id(),
        client_address: peer.addr.to_string(),
        credentials,
    }
}

/// What a request without a live session gets: the sign-in page.
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/signin").into_response()
    }
}

impl FromRequestParts<Arc<Console>> for Viewer {
    type Rejection = SignInFirst;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<Peer>().cloned().ok_or(SignInFirst)?;
        let cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| session::cookie(h, console.cookie_name()))
            .ok_or(SignInFirst)?
            .to_string();
        let session = console
            .sessions
            .open(&cookie, crate::time::now_ms())
            .ok_or(SignInFirst)?;
        Ok(Viewer {
            session,
            cookie,
            peer,
        })
    }
}

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::overview::page))
        .route(
            "/signin",
            get(pages::signin::form).post(pages::signin::submit),
        )
        .route("/signout", post(pages::signin::sign_out))
        .route("/inventory", get(pages::inventory::page))
        .route("/keys/{key}", get(pages::key::page))
        .route("/audit", get(pages::audit::page))
        .route("/audit/tail", get(pages::audit::tail))
        .route("/findings", get(pages::findings::page))
        .route(
            "/findings/{id}/acknowledge",
            post(pages::findings::acknowledge),
        )
        .route("/approvals", get(pages::approvals::page))
        .route("/report", get(pages::report::page))
        .route("/report.json", get(pages::report::as_json))
        .route("/report.pdf", get(pages::report::as_pdf))
        .route("/assets/report.css", get(pages::report::css))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            within_deadline,
        ))
        .layer(axum::middleware::map_response_with_state(
            console.clone(),
            security_headers,
        ))
        .with_state(console)
}

/// Every request is answered within `request_timeout`, reading its body included (a slow
/// sender holds no connection longer). A live tail's response starts at once; its stream
/// ends with the session or the server.
async fn within_deadline(
    State(console): State<Arc<Console>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(console.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => layout::error_page(
            StatusCode::GATEWAY_TIMEOUT,
            "The page took too long; try again.",
            None,
        ),
    }
}

/// Headers every response carries: nothing but the console's own files may load, no page
/// may be framed, nothing is cached.
async fn security_headers(State(console): State<Arc<Console>>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not `no-referrer`: under it browsers send `Origin: null` with forms, which the origin
    // check must refuse.
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    if console.secure {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000",
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn not_found(State(_): State<Arc<Console>>) -> Response {
    layout::error_page(StatusCode::NOT_FOUND, "There is no such page.", None)
}

/// A gateway error as a page: the same code and message as the RPC would give.
pub(crate) fn error_response(e: &GatewayError, viewer: Option<&Viewer>) -> Response {
    let status = http_status(crate::server::status::code(e));
    if status == StatusCode::UNAUTHORIZED {
        return SignInFirst.into_response();
    }
    layout::error_page(status, &e.to_string(), viewer)
}

pub(crate) fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code as C;
    match code {
        C::Unauthenticated => StatusCode::UNAUTHORIZED,
        C::PermissionDenied => StatusCode::FORBIDDEN,
        C::NotFound => StatusCode::NOT_FOUND,
        C::InvalidArgument | C::OutOfRange => StatusCode::BAD_REQUEST,
        C::FailedPrecondition | C::AlreadyExists | C::Aborted => StatusCode::CONFLICT,
        C::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        C::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        C::Unavailable | C::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
