//! One module per console page.

pub mod approvals;
pub mod audit;
pub mod findings;
pub mod inventory;
pub mod key;
pub mod overview;
pub mod report;
pub mod signin;

use super::Console;
use axum::http::HeaderMap;

/// Whether a POST comes from the console's own pages: a browser names the page's origin in
/// `Origin` on every POST; one naming another site is refused (with SameSite=Strict
/// cookies and the CSRF token, a third wall against cross-site forms).
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        _ => false,
    }
}

/// The session check for a POST: the CSRF token of the session and a same-origin request.
pub(super) fn form_allowed(
    console: &Console,
    viewer: &super::Viewer,
    headers: &HeaderMap,
    csrf: &str,
) -> bool {
    same_origin(headers) && console.sessions.csrf_matches(&viewer.cookie, csrf)
}
