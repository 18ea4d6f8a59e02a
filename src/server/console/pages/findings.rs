//! Findings, filtered, and acknowledging one with a reason (the console's only change).

use crate::gateway::ops;
use crate::posture::store::FindingFilter;
use crate::server::console::layout::{self, link, respond, segment, shell, time};
use crate::server::console::{Console, Viewer, error_response};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::sync::Arc;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct Filters {
    state: String,
    rule: String,
    severity: String,
    key: String,
    page_token: String,
}

#[derive(serde::Deserialize)]
pub struct AcknowledgeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let result = viewer
        .run(
            &console,
            ops::ListFindings {
                filter: FindingFilter {
                    state: filters.state.clone(),
                    rule: filters.rule.clone(),
                    severity: filters.severity.clone(),
                    key: filters.key.clone(),
                },
                page_size: 200,
                page_token: filters.page_token.clone(),
            },
        )
        .await;
    let findings = match result {
        Ok(page) => page,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    let select = |name: &str, label: &str, current: &str, options: &[&str]| {
        html! { label { (label) " " select name=(name) {
            @for o in options { option value=(o) selected[*o == current] { (if o.is_empty() { "all" } else { o }) } }
        } } }
    };
    let body = html! {
        form.filters method="get" action="/findings" role="search" {
            (select("state", "State", &filters.state, &["", "closed", "all"]))
            (select("severity", "Severity", &filters.severity, &["", "high", "medium", "low"]))
            label { "Rule " input type="text" name="rule" value=(filters.rule); }
            label { "Key or provider URI " input type="text" name="key" value=(filters.key); }
            button type="submit" { "Filter" }
        }
        @if findings.findings.is_empty() {
            p #findings data-count="0" { "No findings." }
        } @else {
            ol.findings #findings data-count=(findings.findings.len()) {
                @for f in &findings.findings {
                    li.finding.(f.severity) #{ "finding-" (f.id) } data-rule=(f.rule) {
                        h2 {
                            span.badge.(f.severity) { (f.severity) } " " (f.rule) " · "
                            @if f.key_id.is_empty() { code { (f.provider) ": " (f.provider_uri) } }
                            @else { a href={ "/keys/" (segment(&f.key_id)) } { (f.key_name) } }
                        }
                        p.evidence { (f.evidence) }
                        p.meta {
                            "Opened " (time(f.opened_at_ms)) ", last seen " (time(f.last_seen_ms))
                            @if let Some(at) = f.closed_at_ms { ", closed " (time(at)) " (" (f.closed_because) ")" }
                        }
                        @if let Some(ack) = &f.acknowledgement {
                            p.ack { "Acknowledged by " (ack.by) " at " (time(ack.at_ms)) ": " (ack.reason) }
                        } @else if f.closed_at_ms.is_none() {
                            form.ack method="post" action={ "/findings/" (f.id) "/acknowledge" } {
                                input type="hidden" name="csrf" value=(viewer.session.csrf);
                                label { "Reason " input type="text" name="reason" required maxlength="1000"; }
                                button type="submit" { "Acknowledge" }
                            }
                        }
                    }
                }
            }
        }
        @if !findings.next_page_token.is_empty() {
            p { a rel="next" href=(link("/findings", &[
                ("state", &filters.state), ("rule", &filters.rule), ("severity", &filters.severity),
                ("key", &filters.key), ("page_token", &findings.next_page_token),
            ])) { "Next page" } }
        }
    };
    respond(shell("Findings", "Findings", Some(&viewer), body))
}

/// Acknowledges a finding as the signed-in principal (authorized and audited like the
/// RPC), after the session's CSRF token is checked.
pub async fn acknowledge(
    State(console): State<Arc<Console>>,
    viewer: Viewer,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(form): Form<AcknowledgeForm>,
) -> Response {
    if !super::form_allowed(&console, &viewer, &headers, &form.csrf) {
        return layout::error_page(
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or wrong; reload the page and try again.",
            Some(&viewer),
        );
    }
    match viewer
        .run(
            &console,
            ops::AcknowledgeFinding {
                id,
                reason: form.reason,
            },
        )
        .await
    {
        Ok(_) => Redirect::to(&format!("/findings?state=all#finding-{id}")).into_response(),
        Err(e) => error_response(&e, Some(&viewer)),
    }
}
