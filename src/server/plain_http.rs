//! The small plain-HTTP/1.1 server behind keygate's read-only documents (the Prometheus
//! scrape endpoint, the JWKS endpoint): one request per connection, at most a request head
//! read, within a deadline; no body, no keep-alive.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The longest request head read; a scraper's or a JWT library's is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// A connection that sends no complete head within this is dropped.
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// A request's method and path (the target without its query), as sent.
pub struct Request {
    pub method: Vec<u8>,
    pub path: Vec<u8>,
    pub peer: Option<SocketAddr>,
}

pub struct Response {
    /// `200 OK`, `404 Not Found`, …
    pub status: &'static str,
    pub content_type: &'static str,
    /// Headers beside Content-Type, Content-Length and Connection.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Response {
    pub fn text(status: &'static str, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.to_string(),
        }
    }
}

/// Accepts connections until `stop` is cancelled, each answered by `handle` on a task of its
/// own. `what` names the endpoint in the log.
pub async fn serve<H, F>(
    listener: TcpListener,
    stop: CancellationToken,
    what: &'static str,
    handle: H,
) where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let handle = handle.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, peer, handle).await {
                        tracing::debug!(error = %e, endpoint = what, "http request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, endpoint = what, "accept failed");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed before a full request",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

async fn answer<H, F>(mut stream: TcpStream, peer: SocketAddr, handle: H) -> std::io::Result<()>
where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let head = tokio::time::timeout(READ_DEADLINE, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::other("no request within the deadline"))??;
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default().to_vec();
    let target = parts.next().unwrap_or_default();
    let path = target
        .split(|&b| b == b'?')
        .next()
        .unwrap_or_default()
        .to_vec();
    let response = handle(Request {
        method,
        path,
        peer: Some(peer),
    })
    .await;
    let mut text = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    for (name, value) in &response.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&response.body);
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await
}
