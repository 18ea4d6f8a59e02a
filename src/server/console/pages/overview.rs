//! The overview: keys per provider, state and tier; findings by severity; approvals waiting.

use crate::catalog::KeyRecord;
use crate::gateway::{GatewayError, ops};
use crate::posture::store::FindingFilter;
use crate::server::console::layout::{self, link, respond, shell, tier};
use crate::server::console::{Console, Viewer};
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;

/// At most this many keys or findings are counted (pages of the largest size).
const MAX_COUNTED: usize = 20_000;

pub async fn page(State(console): State<Arc<Console>>, viewer: Viewer) -> Response {
    let keys = all_keys(&console, &viewer).await;
    let findings = open_findings(&console, &viewer).await;
    let approvals = viewer
        .run(
            &console,
            ops::ListApprovals {
                state: "pending".into(),
                key: String::new(),
                page_size: 1000,
                page_token: String::new(),
            },
        )
        .await;
    let kinds: BTreeMap<String, &str> = console.gateway.provider_kinds().into_iter().collect();
    let body = html! {
        section aria-labelledby="keys-h" {
            h2 #keys-h { "Keys" }
            @match &keys {
                Ok(keys) => (key_counts(keys, &kinds)),
                Err(e) => (layout::unavailable("The keys", e)),
            }
        }
        section aria-labelledby="findings-h" {
            h2 #findings-h { "Open findings" }
            @match &findings {
                Ok(by_severity) => {
                    @if by_severity.is_empty() {
                        p #findings-total data-count="0" { "No open findings." }
                    } @else {
                        ul.tiles #findings-total data-count=(by_severity.values().sum::<usize>()) {
                            @for severity in ["high", "medium", "low"] {
                                @if let Some(n) = by_severity.get(severity) {
                                    li.tile.(severity) {
                                        a href=(link("/findings", &[("severity", severity)])) {
                                            span.n data-severity=(severity) { (n) }
                                            " " (severity)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Err(e) => (layout::unavailable("The findings", e)),
            }
        }
        section aria-labelledby="approvals-h" {
            h2 #approvals-h { "Approvals waiting" }
            @match &approvals {
                Ok(page) => p { a href="/approvals" {
                    span #approvals-waiting { (page.requests.len()) }
                    @if !page.next_page_token.is_empty() { " or more" }
                    " waiting for a decision"
                } },
                Err(e) => (layout::unavailable("The approvals", e)),
            }
        }
    };
    respond(shell("Overview", "Overview", Some(&viewer), body))
}

fn key_counts(keys: &[Arc<KeyRecord>], kinds: &BTreeMap<String, &str>) -> Markup {
    // provider → state → count
    let mut by_provider: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut by_tier: BTreeMap<&str, usize> = BTreeMap::new();
    let mut states: Vec<&str> = Vec::new();
    for key in keys {
        let state = key.state.as_str();
        if !states.contains(&state) {
            states.push(state);
        }
        *by_provider
            .entry(&key.provider)
            .or_default()
            .entry(state)
            .or_default() += 1;
        let kind = kinds.get(&key.provider).copied().unwrap_or("");
        *by_tier.entry(tier(kind)).or_default() += 1;
    }
    states.sort_unstable();
    html! {
        p {
            span #keys-total data-count=(keys.len()) { (keys.len()) } " keys you may read"
            @if keys.len() >= MAX_COUNTED { " (counting stops there)" }
            "."
        }
        div.scroll {
            table #keys-by-provider {
                caption { "By provider and state" }
                thead { tr { th scope="col" { "Provider" } th scope="col" { "Tier" }
                    @for s in &states { th scope="col" { (s) } } th scope="col" { "All" } } }
                tbody {
                    @for (provider, counts) in &by_provider {
                        tr data-provider=(provider) {
                            th scope="row" { a href=(link("/inventory", &[("provider", provider)])) { (provider) } }
                            td { (tier(kinds.get(*provider).copied().unwrap_or(""))) }
                            @for s in &states { td { (counts.get(s).copied().unwrap_or(0)) } }
                            td.total { (counts.values().sum::<usize>()) }
                        }
                    }
                }
            }
        }
        div.scroll {
            table #keys-by-tier {
                caption { "By tier" }
                thead { tr { th scope="col" { "Tier" } th scope="col" { "Keys" } } }
                tbody { @for (t, n) in &by_tier { tr { th scope="row" { (t) } td { (n) } } } }
            }
        }
    }
}

/// Every key the viewer may read.
pub(super) async fn all_keys(
    console: &Console,
    viewer: &Viewer,
) -> Result<Vec<Arc<KeyRecord>>, GatewayError> {
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let page = viewer
            .run(
                console,
                ops::ListKeys {
                    owner: String::new(),
                    environment: String::new(),
                    page_size: 1000,
                    page_token: token,
                    expiring_within: None,
                    rotation_overdue: false,
                },
            )
            .await?;
        keys.extend(page.keys);
        if page.next_page_token.is_empty() || keys.len() >= MAX_COUNTED {
            return Ok(keys);
        }
        token = page.next_page_token;
    }
}

async fn open_findings(
    console: &Console,
    viewer: &Viewer,
) -> Result<BTreeMap<String, usize>, GatewayError> {
    let mut counts = BTreeMap::new();
    let mut seen = 0;
    let mut token = String::new();
    loop {
        let page = viewer
            .run(
                console,
                ops::ListFindings {
                    filter: FindingFilter::default(),
                    page_size: 1000,
                    page_token: token,
                },
            )
            .await?;
        seen += page.findings.len();
        for f in page.findings {
            *counts.entry(f.severity).or_default() += 1;
        }
        if page.next_page_token.is_empty() || seen >= MAX_COUNTED {
            return Ok(counts);
        }
        token = page.next_page_token;
    }
}
