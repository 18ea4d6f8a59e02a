//! Google Cloud KMS (REST v1) emulator: key rings, crypto keys and versions
//! with real cryptography, Google's error bodies, and test hooks.
//!
//! Start one with [`spawn`]; point `google-cloud-kms-v1` at [`GcpEmulator::url`].
//! Admin endpoints (not part of Cloud KMS): `POST /_emulator/fail-next?count=N&status=429|503`
//! and `POST /_emulator/corrupt-checksums?count=N`.

mod audit;
mod crypto;
mod errors;
mod import;
mod json;
mod model;
mod names;
mod ops;
mod routes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;

use crate::{Hooks, ServerHandle};

pub use audit::DEFAULT_PRINCIPAL;

pub(crate) struct Shared {
    store: Mutex<model::Store>,
    hooks: Arc<Hooks>,
    audit: Option<audit::AuditLog>,
}

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct GcpOptions {
    /// Append a Cloud Audit Logs `LogEntry` for every call to this file (JSON Lines); see
    /// the crate's README for the format. `None`: no audit log.
    pub audit_log: Option<PathBuf>,
    /// `protoPayload.authenticationInfo.principalEmail` of every entry.
    pub principal_email: String,
}

impl Default for GcpOptions {
    fn default() -> Self {
        Self {
            audit_log: None,
            principal_email: DEFAULT_PRINCIPAL.to_string(),
        }
    }
}

/// A running Cloud KMS emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct GcpEmulator {
    server: Option<ServerHandle>,
    addr: std::net::SocketAddr,
    app: Router,
    hooks: Arc<Hooks>,
    audit_log: Option<PathBuf>,
}

impl GcpEmulator {
    /// Base URL to give the SDK as its endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Fault injection for the running server.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// The audit log file, when the emulator keeps one.
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// Stops serving, as an outage would: the port refuses connections and open ones are
    /// closed. Keys and versions are kept for [`GcpEmulator::restart`].
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Serves again on the same address, with the same keys.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        if self.server.is_none() {
            let listener = tokio::net::TcpListener::bind(self.addr).await?;
            self.server = Some(crate::server::serve_plain(listener, self.app.clone())?);
        }
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }
}

/// The emulator's routes, for embedding in another server.
pub fn router(hooks: Arc<Hooks>) -> Router {
    router_with(hooks, None)
}

fn router_with(hooks: Arc<Hooks>, audit: Option<audit::AuditLog>) -> Router {
    let hooks_for_admin = hooks.clone();
    let shared = Arc::new(Shared {
        store: Mutex::new(model::Store::default()),
        hooks,
        audit,
    });
    Router::new()
        .fallback(routes::handle)
        .with_state(shared)
        .merge(crate::hooks::admin_routes(hooks_for_admin))
}

/// Starts the emulator over plain HTTP on `addr` (use port 0 for an ephemeral port).
pub async fn spawn(addr: &str) -> std::io::Result<GcpEmulator> {
    spawn_with(addr, GcpOptions::default()).await
}

/// [`spawn`] with options (an audit log file).
pub async fn spawn_with(addr: &str, options: GcpOptions) -> std::io::Result<GcpEmulator> {
    let hooks = Arc::new(Hooks::default());
    let audit = options
        .audit_log
        .as_deref()
        .map(|path| audit::AuditLog::open(path, &options.principal_email))
        .transpose()?;
    let app = router_with(hooks.clone(), audit);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = crate::server::serve_plain(listener, app.clone())?;
    Ok(GcpEmulator {
        server: Some(server),
        addr,
        app,
        hooks,
        audit_log: options.audit_log,
    })
}
