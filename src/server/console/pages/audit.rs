//! The audit feed: the same filters as `keygate audit query`, paged, and a live tail of new
//! events (server-sent events, read by the console's script).

use crate::audit::{AuditEvent, AuditFilter};
use crate::gateway::{GatewayError, ops};
use crate::server::console::layout::{link, respond, segment, shell, time};
use crate::server::console::{Console, Viewer, error_response};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use maud::{Markup, html};
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

#[derive(serde::Deserialize, Default, Clone)]
#[serde(default)]
pub struct Filters {
    key: String,
    actor: String,
    action: String,
    outcome: String,
    source: String,
    request_id: String,
    /// A duration back from now (`24h`).
    since: String,
    /// The same as a fixed time (ms since the epoch): what `since` became on the first page,
    /// so the next pages continue the same query.
    start: String,
    bypass: String,
    page_token: String,
}

impl Filters {
    fn filter(&self) -> Result<AuditFilter, GatewayError> {
        let some = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
        let start_ms = match (some(&self.start), some(&self.since)) {
            (Some(start), _) => Some(start.parse::<i64>().map_err(|_| {
                GatewayError::invalid("start", "start: not a time in milliseconds")
            })?),
            (None, Some(since)) => {
                let d = crate::time::parse_duration(&since).map_err(|e| {
                    GatewayError::invalid("since", format!("since: {e} (write e.g. 24h or 30m)"))
                })?;
                Some(crate::time::now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }
            (None, None) => None,
        };
        Ok(AuditFilter {
            start_ms,
            key: some(&self.key),
            actor: some(&self.actor),
            action: some(&self.action),
            outcome: some(&self.outcome),
            source: some(&self.source),
            request_id: some(&self.request_id),
            bypass: matches!(self.bypass.as_str(), "1" | "on" | "true"),
            newest_first: true,
            ..Default::default()
        })
    }

    /// The filters as link parameters; `since` stays as written (the live tail has no
    /// start), the next page gets the fixed `start` it resolved to.
    fn params(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("key", &self.key),
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("source", &self.source),
            ("request_id", &self.request_id),
            ("since", &self.since),
            ("bypass", &self.bypass),
        ]
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let filter = match filters.filter() {
        Ok(f) => f,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    let bypass = filter.bypass;
    let start_ms = filter.start_ms;
    let result = viewer
        .run(
            &console,
            ops::AuditQuery {
                filter,
                page_size: 100,
                page_token: filters.page_token.clone(),
                with_linked: false,
            },
        )
        .await;
    let events = match result {
        Ok(page) => page,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    let params = filters.params();
    let start = start_ms.map(|ms| ms.to_string()).unwrap_or_default();
    let next = (!events.next_page_token.is_empty()).then(|| {
        let mut next: Vec<_> = params
            .iter()
            .filter(|(k, _)| *k != "since")
            .cloned()
            .collect();
        next.push(("start", &start));
        next.push(("page_token", &events.next_page_token));
        link("/audit", &next)
    });
    let text = |name: &str, label: &str, value: &str| {
        html! { label { (label) " " input type="text" name=(name) value=(value); } }
    };
    let body = html! {
        @if bypass {
            p { "Provider records of managed keys that no gateway call made: someone used the key in the backend directly." }
        }
        form.filters method="get" action="/audit" role="search" {
            (text("key", "Key", &filters.key))
            (text("actor", "Actor", &filters.actor))
            (text("action", "Action", &filters.action))
            (text("outcome", "Outcome", &filters.outcome))
            (text("source", "Source", &filters.source))
            (text("request_id", "Request id", &filters.request_id))
            (text("since", "Since (e.g. 24h)", &filters.since))
            label { input type="checkbox" name="bypass" value="1" checked[bypass]; " bypass only" }
            button type="submit" { "Filter" }
        }
        (events_table(&events.events, "events"))
        @if let Some(next) = &next {
            p { a rel="next" href=(next) { "Next page" } }
        }
        section aria-labelledby="tail-h" {
            h2 #tail-h { "Live" }
            p #tail-status role="status" data-src=(link("/audit/tail", &params)) { "Connecting…" }
            div.scroll { table #tail {
                (head())
                tbody aria-live="polite" {}
            } }
        }
    };
    let title = if bypass { "Bypass use" } else { "Audit feed" };
    let current = if bypass { "Bypass" } else { "Audit feed" };
    respond(shell(title, current, Some(&viewer), body))
}

fn head() -> Markup {
    html! { thead { tr {
        th scope="col" { "Seq" } th scope="col" { "Time" } th scope="col" { "Source" }
        th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Key" }
        th scope="col" { "Version" } th scope="col" { "Outcome" } th scope="col" { "Request id" }
    } } }
}

pub fn events_table(events: &[AuditEvent], id: &str) -> Markup {
    html! {
        @if events.is_empty() {
            p #(id) data-count="0" { "No events." }
        } @else {
            div.scroll { table #(id) data-count=(events.len()) {
                (head())
                tbody { @for e in events { (row(e)) } }
            } }
        }
    }
}

fn row(e: &AuditEvent) -> Markup {
    let r = &e.record;
    let bypass = e.link.as_ref().is_some_and(|l| l.bypass);
    html! {
        tr data-sequence=(e.sequence) data-outcome=(r.outcome) class=[bypass.then_some("bypass")] {
            td { (e.sequence) }
            td { (time(r.time_ms)) }
            td { (r.source) }
            td { (r.actor) }
            td { (r.action) }
            td {
                @if r.key_id.is_empty() { (r.key_name) }
                @else { a href={ "/keys/" (segment(&r.key_id)) } { (if r.key_name.is_empty() { &r.key_id } else { &r.key_name }) } }
            }
            td { @if r.key_version > 0 { "v" (r.key_version) } }
            td.outcome { (r.outcome) @if !r.reason.is_empty() { " (" (r.reason) ")" } }
            td.rid { code { (r.request_id) } }
        }
    }
}

/// New events matching the filters as server-sent events, one JSON object each (newest last),
/// until the client goes, the session ends, keygate stops, or the tail falls behind (then a
/// `lagged` event ends it).
pub async fn tail(
    State(console): State<Arc<Console>>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let filter = match filters.filter() {
        Ok(f) => f,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    let tail = match viewer.run(&console, ops::AuditTail { filter }).await {
        Ok(tail) => tail,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    let filter = tail.filter;
    let slot = tail.slot;
    let session_left = u64::try_from(viewer.session.ends_ms - crate::time::now_ms()).unwrap_or(0);
    let session_ends = tokio::time::sleep(std::time::Duration::from_millis(session_left));
    let stop = console.stop.clone();
    let ended = async move {
        tokio::select! {
            () = stop.cancelled_owned() => {}
            () = session_ends => {}
        }
    };
    let events = BroadcastStream::new(tail.events)
        // The state: whether the tail fell behind (its `lagged` event is the last).
        .scan(false, move |fell_behind, item| {
            // The slot lives as long as the stream: given back when the browser goes.
            let _open = &slot;
            let next = match item {
                _ if *fell_behind => None,
                Ok(event) if filter.matches(&event) => {
                    Some(Some(Event::default().event("audit").data(json(&event))))
                }
                Ok(_) => Some(None),
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    *fell_behind = true;
                    Some(Some(Event::default().event("lagged").data(format!(
                        "the live view fell {n} events behind; reload the page"
                    ))))
                }
            };
            std::future::ready(next)
        })
        .filter_map(|event| std::future::ready(event.map(Ok::<_, Infallible>)))
        .take_until(ended);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn json(e: &AuditEvent) -> String {
    let r = &e.record;
    serde_json::json!({
        "sequence": e.sequence,
        "time": time(r.time_ms),
        "source": r.source,
        "actor": r.actor,
        "action": r.action,
        "key_id": r.key_id,
        "key_name": r.key_name,
        "key_version": r.key_version,
        "outcome": r.outcome,
        "reason": r.reason,
        "request_id": r.request_id,
        "bypass": e.link.as_ref().is_some_and(|l| l.bypass),
    })
    .to_string()
}
