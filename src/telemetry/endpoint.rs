//! The Prometheus scrape endpoint: `GET /metrics` over plain HTTP/1.1, one request per
//! connection (the server is [`crate::server::plain_http`]). Small on purpose: it serves one
//! document to a scraper, and answers anything else 404 or 405.

use super::Telemetry;
use crate::server::plain_http::{self, Request, Response};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, telemetry: Arc<Telemetry>, stop: CancellationToken) {
    plain_http::serve(listener, stop, "metrics", move |request| {
        let telemetry = telemetry.clone();
        async move { answer(&request, &telemetry) }
    })
    .await;
}

fn answer(request: &Request, telemetry: &Telemetry) -> Response {
    match (request.method.as_slice(), request.path.as_slice()) {
        (b"GET", b"/metrics") => match telemetry.encode() {
            Ok(body) => Response {
                status: "200 OK",
                content_type: CONTENT_TYPE,
                headers: Vec::new(),
                body,
            },
            Err(_) => Response::text("500 Internal Server Error", "cannot encode the metrics\n"),
        },
        (b"GET", _) => Response::text("404 Not Found", "try /metrics\n"),
        _ => Response::text("405 Method Not Allowed", "GET /metrics\n"),
    }
}
