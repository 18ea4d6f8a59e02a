//! Critical changes waiting for their approvers.

use crate::gateway::ops;
use crate::server::console::layout::{respond, segment, shell, time};
use crate::server::console::{Console, Viewer, error_response};
use axum::extract::State;
use axum::response::Response;
use maud::html;
use std::sync::Arc;

pub async fn page(State(console): State<Arc<Console>>, viewer: Viewer) -> Response {
    let result = viewer
        .run(
            &console,
            ops::ListApprovals {
                state: "pending".into(),
                key: String::new(),
                page_size: 200,
                page_token: String::new(),
            },
        )
        .await;
    let waiting = match result {
        Ok(page) => page.requests,
        Err(e) => return error_response(&e, Some(&viewer)),
    };
    let body = html! {
        @if waiting.is_empty() {
            p #approvals data-count="0" { "Nothing is waiting for approval." }
        } @else {
            div.scroll { table #approvals data-count=(waiting.len()) {
                thead { tr {
                    th scope="col" { "Request" } th scope="col" { "Key" } th scope="col" { "Change" }
                    th scope="col" { "Requested by" } th scope="col" { "Approvals" } th scope="col" { "Expires" }
                } }
                tbody { @for r in &waiting { tr {
                    td { code { (r.id) } }
                    td { a href={ "/keys/" (segment(&r.key_id)) } { (r.key_name) } }
                    td { (r.change.describe()) }
                    td { (r.requester) }
                    td { (r.approvals.len()) " of " (r.quorum) }
                    td { (time(r.expires_at_ms)) }
                } } }
            } }
            p.hint { "Approve or deny with " code { "keygate approval approve ID" } " or " code { "deny" } ": decisions are not taken in the console." }
        }
    };
    respond(shell("Approvals waiting", "Approvals", Some(&viewer), body))
}
