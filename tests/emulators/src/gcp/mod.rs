//! Google Cloud KMS (REST v1) emulator: key rings, crypto keys and versions
//! with real cryptography, Google's error bodies, and test hooks.
//!
//! Start one with [`spawn`]; point `google-cloud-kms-v1` at [`GcpEmulator::url`].
//! Admin endpoints (not part of Cloud KMS): `POST /_emulator/fail-next?count=N&status=429|503`
//! and `POST /_emulator/corrupt-checksums?count=N`.

mod crypto;
mod errors;
mod json;
mod model;
mod names;
mod ops;
mod routes;

use std::sync::{Arc, Mutex};

use axum::Router;

use crate::{Hooks, ServerHandle};

pub(crate) struct Shared {
    store: Mutex<model::Store>,
    hooks: Arc<Hooks>,
}

/// A running Cloud KMS emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct GcpEmulator {
    server: ServerHandle,
    hooks: Arc<Hooks>,
}

impl GcpEmulator {
    /// Base URL to give the SDK as its endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Fault injection for the running server.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }
}

/// The emulator's routes, for embedding in another server.
pub fn router(hooks: Arc<Hooks>) -> Router {
    let hooks_for_admin = hooks.clone();
    let shared = Arc::new(Shared {
        store: Mutex::new(model::Store::default()),
        hooks,
    });
    Router::new()
        .fallback(routes::handle)
        .with_state(shared)
        .merge(crate::hooks::admin_routes(hooks_for_admin))
}

/// Starts the emulator over plain HTTP on `addr` (use port 0 for an ephemeral port).
pub async fn spawn(addr: &str) -> std::io::Result<GcpEmulator> {
    let hooks = Arc::new(Hooks::default());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let server = crate::server::serve_plain(listener, router(hooks.clone()))?;
    Ok(GcpEmulator { server, hooks })
}
