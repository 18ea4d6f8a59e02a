//! The inventory across providers, from the newest scan, with filters.

use crate::gateway::ops;
use crate::posture::store::InventoryFilter;
use crate::server::console::layout::{link, respond, segment, shell, time};
use crate::server::console::{Console, Viewer};
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use std::sync::Arc;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct Filters {
    provider: String,
    unmanaged: String,
    changed: String,
    page_token: String,
}

fn on(flag: &str) -> bool {
    matches!(flag, "1" | "on" | "true")
}

pub async fn page(
    State(console): State<Arc<Console>>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let result = viewer
        .run(
            &console,
            ops::GetPostureInventory {
                filter: InventoryFilter {
                    provider: filters.provider.clone(),
                    unmanaged_only: on(&filters.unmanaged),
                    changed_only: on(&filters.changed),
                },
                page_size: 200,
                page_token: filters.page_token.clone(),
            },
        )
        .await;
    let providers = console.gateway.provider_names();
    let inventory = match result {
        Ok(inventory) => inventory,
        Err(e) => return crate::server::console::error_response(&e, Some(&viewer)),
    };
    let body = html! {
        form.filters method="get" action="/inventory" role="search" {
            label { "Provider "
                select name="provider" {
                    option value="" { "all" }
                    @for p in &providers {
                        option value=(p) selected[*p == filters.provider] { (p) }
                    }
                }
            }
            label { input type="checkbox" name="unmanaged" value="1" checked[on(&filters.unmanaged)]; " unmanaged only" }
            label { input type="checkbox" name="changed" value="1" checked[on(&filters.changed)]; " appeared or vanished" }
            button type="submit" { "Filter" }
        }
        @if inventory.scan_id == 0 {
            p { "No scan has run yet: run one with " code { "keygate inventory --scan" } "." }
        } @else {
            p { "Scan " (inventory.scan_id) ", " (time(inventory.scanned_at_ms)) "." }
            div.scroll {
                table #inventory {
                    thead { tr {
                        th scope="col" { "Provider" } th scope="col" { "Provider URI" }
                        th scope="col" { "Algorithm" } th scope="col" { "State" }
                        th scope="col" { "Managed as" } th scope="col" { "Change" }
                    } }
                    tbody {
                        @for k in &inventory.keys {
                            tr data-managed=(if k.key_id.is_empty() { "no" } else { "yes" }) {
                                td { (k.provider) }
                                td.uri { (k.provider_uri) }
                                td { (k.algorithm) }
                                td { (k.state) }
                                td {
                                    @if k.key_id.is_empty() { span.badge.unmanaged { "unmanaged" } }
                                    @else { a href={ "/keys/" (segment(&k.key_id)) } { (k.key_id) } }
                                }
                                td { (k.change) }
                            }
                        }
                    }
                }
            }
            @if !inventory.next_page_token.is_empty() {
                p { a rel="next" href=(link("/inventory", &[
                    ("provider", &filters.provider), ("unmanaged", &filters.unmanaged),
                    ("changed", &filters.changed), ("page_token", &inventory.next_page_token),
                ])) { "Next page" } }
            }
        }
    };
    respond(shell("Inventory", "Inventory", Some(&viewer), body))
}
