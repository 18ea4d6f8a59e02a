//! Azure Key Vault keys emulator (REST, api-version 7.5 and later): RSA and EC
//! keys with real cryptography, soft delete, rotation, the bearer challenge,
//! HTTPS from a test CA made at start-up, and a throttling test hook.
//!
//! Admin endpoint (not part of Key Vault, no token needed):
//! `POST /_emulator/fail-next?count=N&status=429|503`.

mod crypto;
mod errors;
mod model;
mod routes;

use std::sync::{Arc, Mutex};

use crate::tls::TestPki;
use crate::{Hooks, ServerHandle};

pub(crate) struct Shared {
    vault: Mutex<model::Vault>,
    hooks: Arc<Hooks>,
    /// Used for `kid` URLs when a request has no Host header.
    fallback_base: String,
}

/// A running Key Vault emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct AzureEmulator {
    server: ServerHandle,
    hooks: Arc<Hooks>,
    pki: TestPki,
}

impl AzureEmulator {
    /// The vault URL to give `KeyClient::new`, e.g. `https://127.0.0.1:41234/`.
    pub fn url(&self) -> String {
        format!("{}/", self.server.url())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// PEM of the CA that issued the server certificate; clients must trust it.
    pub fn ca_pem(&self) -> &str {
        self.pki.ca_pem()
    }

    /// Fault injection for the running server.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }
}

/// Starts the emulator over HTTPS on `addr` (use port 0 for an ephemeral port),
/// with a new test CA and server certificate.
pub async fn spawn(addr: &str) -> std::io::Result<AzureEmulator> {
    let pki = TestPki::generate()?;
    let hooks = Arc::new(Hooks::default());
    // Bind first so the fallback base URL knows the real port.
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let shared = Arc::new(Shared {
        vault: Mutex::new(model::Vault::default()),
        hooks: hooks.clone(),
        fallback_base: format!("https://{local}"),
    });
    let app = axum::Router::new()
        .fallback(routes::handle)
        .with_state(shared)
        .merge(crate::hooks::admin_routes(hooks.clone()));
    let server = crate::server::serve_tls(listener, app, pki.server_config())?;
    Ok(AzureEmulator { server, hooks, pki })
}
