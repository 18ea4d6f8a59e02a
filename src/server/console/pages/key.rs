//! A key's page: owner, versions, rotation due, each version's use over time (a chart from
//! keygate's own audit), and its audit events.

use super::audit::events_table;
use crate::audit::AuditFilter;
use crate::catalog::KeyRecord;
use crate::gateway::ops::{self, Usage};
use crate::server::console::layout::{self, link, respond, shell, time};
use crate::server::console::{Console, Viewer, error_response};
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use std::sync::Arc;

/// Events shown on the page; the audit feed has the rest.
const EVENTS: u32 = 50;
/// Colours of versions in the chart, newest version first (the stylesheet defines them).
const SERIES: usize = 6;
const DAY_MS: i64 = crate::gateway::ops::usage::DAY_MS;
/// The most days the chart draws (the table below it has every day).
const MAX_DAYS: usize = 90;

pub async fn page(
    State(console): State<Arc<Console>>,
    viewer: Viewer,
    Path(key): Path<String>,
) -> Response {
    let view = match viewer.run(&console, ops::GetKey { key, usage: true }).await {
        Ok(view) => view,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    let events = viewer
        .run(
            &console,
            ops::AuditQuery {
                filter: AuditFilter {
                    key: Some(view.id.clone()),
                    newest_first: true,
                    ..Default::default()
                },
                page_size: EVENTS,
                page_token: String::new(),
                with_linked: false,
            },
        )
        .await;
    let now = crate::time::now_ms();
    let record: &KeyRecord = &view.record;
    let body = html! {
        dl.facts #key-facts {
            dt { "Id" } dd { code { (record.id) } }
            dt { "Owner" } dd #key-owner { (record.owner) }
            dt { "Purpose" } dd { (record.purpose.as_str()) }
            dt { "Environment" } dd { (record.environment) }
            dt { "Algorithm" } dd { (record.algorithm.as_str()) }
            dt { "Provider" } dd { (record.provider) " · " code { (record.provider_uri.to_string()) } }
            dt { "State" } dd #key-state { (record.state.as_str()) }
            dt { "Crypto-period" } dd { (crate::time::format_duration(record.crypto_period)) }
            dt { "Rotation due" } dd {
                (time(record.rotation_due_at_ms))
                @if record.rotation_due_at_ms <= now { " " span.badge.overdue { "overdue" } }
            }
            @if let Some(at) = record.destruction_at_ms { dt { "Destruction" } dd { (time(at)) } }
            @if let Some(at) = record.expires_at_ms { dt { "Expires (short-lived)" } dd { (time(at)) } }
        }
        h2 { "Versions" }
        (versions(record, view.usage.as_ref()))
        @if let Some(usage) = &view.usage {
            h2 { "Use over the last " (crate::time::format_duration(usage.window)) }
            @if usage.window > std::time::Duration::from_secs(MAX_DAYS as u64 * 86_400) {
                p.hint { "The chart shows the newest " (MAX_DAYS) " days." }
            }
            (chart(record, usage, now))
        }
        h2 { "Audit events, newest first" }
        @match &events {
            Ok(page) => {
                (events_table(&page.events, "key-events"))
                p { a href=(link("/audit", &[("key", &record.id)])) { "All of this key's events in the audit feed" } }
            }
            Err(e) => (layout::unavailable("The key's events", e)),
        }
    };
    respond(shell(&record.name, "", Some(&viewer), body))
}

fn versions(record: &KeyRecord, usage: Option<&Usage>) -> Markup {
    let primary = record.primary().version;
    html! {
        div.scroll { table #versions {
            thead { tr {
                th scope="col" { "Version" } th scope="col" { "Created" } th scope="col" { "Role" }
                th scope="col" { "Uses in window" } th scope="col" { "Last used" }
            } }
            tbody { @for v in record.versions.iter().rev() {
                @let used = usage.and_then(|u| u.versions.get(&v.version));
                tr data-version=(v.version) {
                    th scope="row" { "v" (v.version) }
                    td { (time(v.created_at_ms)) }
                    td {
                        @if v.version == primary { "primary" }
                        @else if record.staged().is_some_and(|s| s.version == v.version) { "staged" }
                        @else if v.version < record.retired_below { "retired" }
                        @else { "decrypts and verifies" }
                    }
                    td.uses { (used.map_or(0, |u| u.uses)) }
                    td { (used.and_then(|u| u.last_used_ms).map(time).unwrap_or_else(|| "—".into())) }
                }
            } }
        } }
    }
}

/// Uses per day per version as stacked bars (an SVG drawn here: no script, no library), with
/// the same numbers as a table for screen readers and keyboards.
fn chart(record: &KeyRecord, usage: &Usage, now: i64) -> Markup {
    // Every day the window touches, the partial first one included, at most MAX_DAYS (the
    // newest); the scale is the busiest day drawn.
    let window_ms = i64::try_from(usage.window.as_millis()).unwrap_or(i64::MAX);
    let today = now - now.rem_euclid(DAY_MS);
    let since = now.saturating_sub(window_ms);
    let since_day = since - since.rem_euclid(DAY_MS);
    let days = usize::try_from((today - since_day) / DAY_MS + 1)
        .unwrap_or(MAX_DAYS)
        .clamp(1, MAX_DAYS);
    let first = today - (days as i64 - 1) * DAY_MS;
    let highest = usage
        .daily
        .range(first..)
        .map(|(_, v)| v.values().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, pad) = (720.0_f64, 180.0_f64, 24.0_f64);
    let slot = (width - pad) / days as f64;
    let newest = record.newest().version;
    let series = |version: u32| (newest.saturating_sub(version) as usize).min(SERIES - 1);
    html! {
        figure.chart {
            svg #usage-chart role="img" aria-labelledby="usage-caption"
                viewBox={ "0 0 " (width) " " (height + pad) } preserveAspectRatio="none" {
                line x1=(pad) y1=(height) x2=(width) y2=(height) class="axis" {}
                text x="0" y="12" class="label" { (highest) }
                text x="0" y=(height) class="label" { "0" }
                @for (i, day) in (0..days).map(|i| (i, first + i as i64 * DAY_MS)) {
                    @if let Some(counts) = usage.daily.get(&day) {
                        @let mut base = height;
                        @for (version, uses) in counts.iter().rev() {
                            @let h = (*uses as f64) / (highest as f64) * (height - 16.0);
                            @let y = { base -= h; base };
                            rect x=(pad + i as f64 * slot + 1.0) y=(y) width=((slot - 2.0).max(1.0)) height=(h)
                                class={ "v" (series(*version)) } {
                                title { (crate::time::rfc3339(day).get(..10).unwrap_or("")) " · v" (version) ": " (uses) " uses" }
                            }
                        }
                    }
                }
            }
            figcaption #usage-caption {
                "Decrypts, verifies and re-encryptions per day, by version ("
                @for v in record.versions.iter().rev().take(SERIES) {
                    span class={ "swatch v" (series(v.version)) } {} "v" (v.version) " "
                }
                ")."
            }
            details {
                summary { "The numbers" }
                div.scroll { table #usage-table {
                    thead { tr { th scope="col" { "Day" } th scope="col" { "Version" } th scope="col" { "Uses" } } }
                    tbody { @for (day, counts) in &usage.daily { @for (version, uses) in counts {
                        tr { td { (crate::time::rfc3339(*day).get(..10).unwrap_or("")) } td { "v" (version) } td { (uses) } }
                    } } }
                } }
            }
        }
    }
}
