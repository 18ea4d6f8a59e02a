//! The console's listener: HTTP/1.1, over TLS when `[console] tls` is set, each connection on
//! a task of its own, with bounded request heads and read deadlines.

use super::{Console, Peer, router};
use crate::auth::PeerIdentity;
use crate::server::tls::Reloading;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// A connection that sends no complete request head within this is dropped.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// The largest request head: a browser's is a few kilobytes.
const MAX_HEAD: usize = 32 * 1024;
/// Connections open at once (TLS handshakes included); more wait to be accepted, so a flood
/// of connections to the console cannot take the file descriptors the gRPC listener needs.
const MAX_CONNECTIONS: usize = 256;

/// Accepts connections until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    console: Arc<Console>,
    tls: Option<Arc<Reloading>>,
    stop: CancellationToken,
) {
    let app = router(console);
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => permit,
            () = stop.cancelled() => return,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (tcp, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "console: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _open = permit;
            match tls {
                None => {
                    let peer = Peer {
                        addr,
                        identity: None,
                    };
                    connection(tcp, peer, app, stop).await;
                }
                Some(tls) => {
                    // The gRPC listener's configuration offers h2 only; the console speaks
                    // HTTP/1.1.
                    let mut config = (*tls.current()).clone();
                    config.alpn_protocols = vec![b"http/1.1".to_vec()];
                    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let identity = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(|leaf| PeerIdentity::from_der(leaf))
                                .map(Arc::new);
                            connection(stream, Peer { addr, identity }, app, stop).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %addr, "console: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%addr, "console: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn connection<IO>(io: IO, peer: Peer, app: axum::Router, stop: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(peer.clone());
            app.clone().oneshot(request)
        });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE)
        .max_buf_size(MAX_HEAD);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "console: connection ended with an error");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}
