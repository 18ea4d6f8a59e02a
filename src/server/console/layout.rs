//! The page shell every console page shares, and small formatting helpers. Pages are written
//! with maud, which escapes every interpolated value; `PreEscaped` holds only the compliance
//! report's markup, which its own renderer escapes.

use super::Viewer;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// The sections of the console, in the navigation's order: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/inventory", "Inventory"),
    ("/findings", "Findings"),
    ("/audit?bypass=1", "Bypass"),
    ("/audit", "Audit feed"),
    ("/approvals", "Approvals"),
    ("/report", "Report"),
];

/// A whole page: `current` is the navigation entry to mark.
pub fn shell(title: &str, current: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · keygate" }
                link rel="stylesheet" href="/assets/console.css";
                @if current == "Report" { link rel="stylesheet" href="/assets/report.css"; }
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "keygate" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Sections" {
                            @for (path, label) in NAV {
                                @if *label == current {
                                    a href=(path) aria-current="page" { (label) }
                                } @else {
                                    a href=(path) { (label) }
                                }
                            }
                        }
                        form.signout method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(viewer.session.csrf);
                            span.who { (viewer.session.principal) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub fn respond(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

pub fn error_page(status: StatusCode, message: &str, viewer: Option<&Viewer>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        p.error role="alert" { (message) }
        p { a href="/" { "Back to the overview" } }
    };
    (status, Html(shell(title, "", viewer, body).into_string())).into_response()
}

/// A section whose read failed, in place of its content (the rest of the page still shows).
pub fn unavailable(what: &str, e: &crate::gateway::GatewayError) -> Markup {
    html! { p.error role="status" { (what) " could not be read: " (e.to_string()) } }
}

pub fn time(ms: i64) -> String {
    crate::time::rfc3339(ms)
}

/// `path?k=v&…` with each value URL-encoded; empty values are left out.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if !v.is_empty() {
            query.append_pair(k, v);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// A path segment, URL-encoded (key names hold `/`).
pub fn segment(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// What tier of protection a provider kind gives its keys.
pub fn tier(kind: &str) -> &'static str {
    match kind {
        "pkcs11" => "HSM",
        "aws-kms" | "gcp-kms" | "azure-keyvault" => "cloud KMS",
        "vault" => "Vault Transit",
        "local" => "software",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_their_values() {
        assert_eq!(link("/audit", &[("key", ""), ("actor", "")]), "/audit");
        assert_eq!(
            link("/audit", &[("key", "a/b c&d"), ("x", "")]),
            "/audit?key=a%2Fb+c%26d"
        );
        assert_eq!(segment("release/signing"), "release%2Fsigning");
    }

    #[test]
    fn interpolated_text_is_escaped() {
        let hostile = "<script>alert(1)</script>";
        let markup = shell(hostile, "", None, html! { p { (hostile) } }).into_string();
        assert!(!markup.contains("<script>alert"), "{markup}");
        assert!(markup.contains("&lt;script&gt;"));
    }
}
