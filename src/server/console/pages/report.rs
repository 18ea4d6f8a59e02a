//! The compliance report (the same operation as `keygate report compliance`): the page, and
//! its JSON and PDF forms to download.

use crate::gateway::ops;
use crate::posture::report::{html as report_html, json, pdf};
use crate::server::console::layout::{self, respond, shell};
use crate::server::console::{Console, Viewer, error_response};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{PreEscaped, html};
use std::sync::Arc;

pub async fn page(State(console): State<Arc<Console>>, viewer: Viewer) -> Response {
    let report = match viewer.run(&console, ops::ComplianceReport).await {
        Ok(report) => report,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    let body = html! {
        p.downloads {
            "Download: " a href="/report.json" download { "JSON" } " · " a href="/report.pdf" download { "PDF" }
        }
        // The report's renderer escapes every value itself (its own tests check it); it is
        // the one markup the console does not write with maud.
        (PreEscaped(report_html::sections(&report)))
    };
    respond(shell("Compliance report", "Report", Some(&viewer), body))
}

pub async fn as_json(State(console): State<Arc<Console>>, viewer: Viewer) -> Response {
    match viewer.run(&console, ops::ComplianceReport).await {
        Ok(report) => download(
            "application/json",
            "keygate-compliance.json",
            json::render(&report).into_bytes(),
        ),
        Err(e) => error_response(&e, Some(&viewer)),
    }
}

pub async fn as_pdf(State(console): State<Arc<Console>>, viewer: Viewer) -> Response {
    let report = match viewer.run(&console, ops::ComplianceReport).await {
        Ok(report) => report,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    match pdf::render(&report) {
        Ok(bytes) => download("application/pdf", "keygate-compliance.pdf", bytes),
        Err(e) => layout::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("The PDF could not be made: {e}"),
            Some(&viewer),
        ),
    }
}

fn download(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        report_html::STYLE,
    )
        .into_response()
}
