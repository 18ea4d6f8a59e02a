// Shared by the two emulator targets (included, not a module: each target is one binary).
//
// An input is up to eight requests separated by NUL bytes, sent in order to one new emulator,
// so that later requests can use what earlier ones made. A request is a method byte, then
// `path?query`, a newline and the body.

use axum::body::Body;
use axum::http::{Method, Request, header};
use std::sync::LazyLock;
use tower::ServiceExt as _;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
});

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn requests(data: &[u8]) -> impl Iterator<Item = Request<Body>> + '_ {
    data.split(|b| *b == 0).take(8).filter_map(|one| {
        let (&m, rest) = one.split_first()?;
        let cut = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let target = std::str::from_utf8(&rest[..cut]).ok()?;
        let body = rest.get(cut + 1..).unwrap_or_default().to_vec();
        Request::builder()
            .method(METHODS[usize::from(m) % METHODS.len()].clone())
            .uri(target)
            .header(header::HOST, "emulator.test")
            .header(header::AUTHORIZATION, "Bearer fuzz")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .ok()
    })
}

fn send_all(app: axum::Router, data: &[u8]) {
    RUNTIME.block_on(async {
        for request in requests(data) {
            let response = app.clone().oneshot(request).await.expect("infallible");
            let _ = axum::body::to_bytes(response.into_body(), 1 << 24).await;
        }
    });
}
