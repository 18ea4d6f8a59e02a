//! Running an axum router on a loopback listener, over plain HTTP or TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A running emulator server. Dropping the handle stops it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    scheme: &'static str,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address (useful when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops the server and waits for its accept loop to end.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn serve_plain(listener: TcpListener, app: Router) -> std::io::Result<ServerHandle> {
    serve(listener, app, None, "http")
}

pub(crate) fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<ServerHandle> {
    serve(listener, app, Some(TlsAcceptor::from(tls)), "https")
}

/// The accept loop. Connections run in a `JoinSet` the loop owns, so stopping the server
/// (aborting the loop) also closes every open connection, as a real outage would: a client's
/// pooled keep-alive connection does not keep talking to a stopped emulator. Each request
/// carries its peer address as axum's `ConnectInfo` (the GCP audit log records it).
fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    scheme: &'static str,
) -> std::io::Result<ServerHandle> {
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let app = app
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
            let tls = tls.clone();
            // Each connection gets its own task so a slow handshake never blocks the
            // accept loop.
            connections.spawn(async move {
                let service = TowerToHyperService::new(app);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let served = match tls {
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    },
                    None => builder.serve_connection(TokioIo::new(tcp), service).await,
                };
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    });
    Ok(ServerHandle {
        addr: local,
        scheme,
        task,
    })
}
