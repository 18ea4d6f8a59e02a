//! Running an axum router on a loopback listener, over plain HTTP or TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A running emulator server. Dropping the handle stops it: the listener closes and open
/// connections are cut, as when a real server goes down.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    scheme: &'static str,
    task: JoinHandle<()>,
    /// Set when the server stops; every connection task watches it.
    stopped: Option<watch::Sender<bool>>,
}

/// The address of the client a request came from (TLS servers add it to every request).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

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
        let mut this = self;
        this.stop_connections();
        this.task.abort();
        let _ = (&mut this.task).await;
    }

    fn stop_connections(&mut self) {
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.send(true);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_connections();
        self.task.abort();
    }
}

pub(crate) fn serve_plain(listener: TcpListener, app: Router) -> std::io::Result<ServerHandle> {
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "emulator server stopped");
        }
    });
    Ok(ServerHandle {
        addr: local,
        scheme: "http",
        task,
        stopped: None,
    })
}

pub(crate) fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<ServerHandle> {
    let local = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(tls);
    let (stopped, watch_stop) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let app = app.clone().layer(axum::Extension(PeerAddr(peer)));
            let mut stop = watch_stop.clone();
            // Each connection gets its own task so a slow handshake never
            // blocks the accept loop; it ends when the server stops.
            tokio::spawn(async move {
                tokio::select! {
                    () = serve_connection(acceptor, tcp, peer, app) => {}
                    _ = stop.wait_for(|stopped| *stopped) => {}
                }
            });
        }
    });
    Ok(ServerHandle {
        addr: local,
        scheme: "https",
        task,
        stopped: Some(stopped),
    })
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
) {
    let stream = match acceptor.accept(tcp).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
    };
    let service = TowerToHyperService::new(app);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
