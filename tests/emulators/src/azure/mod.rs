//! Azure Key Vault keys emulator (REST, api-version 7.5 and later): RSA and EC keys with
//! real cryptography, soft delete, rotation, the bearer challenge, HTTPS from a test CA
//! made at start-up, and a throttling test hook. Optionally ([`Options`]): Managed HSM mode
//! with symmetric `oct-HSM` keys, BYOK import of key transfer blobs, and an AuditEvent log.
//! It also answers Entra ID's token endpoint, so `azure_identity` credentials work against it.
//!
//! Admin endpoint (not part of Key Vault, no token needed):
//! `POST /_emulator/fail-next?count=N&status=429|503`.

mod audit;
mod byok;
mod crypto;
mod errors;
mod identity;
mod model;
mod routes;
mod symmetric;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::tls::TestPki;
use crate::{Hooks, ServerHandle};

pub(crate) struct Shared {
    vault: Mutex<model::Vault>,
    hooks: Arc<Hooks>,
    /// Used for `kid` URLs when a request has no Host header.
    fallback_base: String,
    identities: identity::Identities,
    audit: Option<audit::AuditLog>,
}

/// How the emulator behaves; the default is a key vault without an audit log.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A Managed HSM instead of a key vault: only `-HSM` key types, plus `oct-HSM` AES keys
    /// (A128GCM/A256GCM encrypt and decrypt, A128KW/A256KW wrap and unwrap).
    pub managed_hsm: bool,
    /// Append an AuditEvent record (JSON Lines) for every request to this file.
    pub audit_log: Option<PathBuf>,
}

/// A running Key Vault emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct AzureEmulator {
    server: Option<ServerHandle>,
    addr: SocketAddr,
    app: axum::Router,
    hooks: Arc<Hooks>,
    pki: TestPki,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl AzureEmulator {
    /// The vault URL to give `KeyClient::new`, e.g. `https://127.0.0.1:41234/`. It is also
    /// the authority host for `azure_identity` credentials.
    pub fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that issued the server certificate; clients must trust it.
    pub fn ca_pem(&self) -> &str {
        self.pki.ca_pem()
    }

    /// Fault injection for the running server.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Whether this is a Managed HSM.
    pub fn is_managed_hsm(&self) -> bool {
        self.shared
            .vault
            .lock()
            .map(|v| v.managed_hsm)
            .unwrap_or(false)
    }

    /// The AuditEvent log, when [`Options::audit_log`] asked for one.
    pub fn audit_log(&self) -> Option<&Path> {
        self.shared.audit.as_ref().map(|a| a.path())
    }

    /// From now on the token endpoint accepts only registered client secrets (by default it
    /// accepts any non-empty one).
    pub fn register_client_secret(&self, client_id: &str, secret: &str) {
        self.shared.identities.register_secret(client_id, secret);
    }

    /// Goes down as a crashed server would: the port closes and open connections are cut.
    /// The keys stay in memory for [`AzureEmulator::start_again`].
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Serves again on the same address, with the same keys and certificate.
    pub async fn start_again(&mut self) -> std::io::Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.server = Some(crate::server::serve_tls(
            listener,
            self.app.clone(),
            self.pki.server_config(),
        )?);
        Ok(())
    }
}

/// Starts the emulator over HTTPS on `addr` (use port 0 for an ephemeral port),
/// with a new test CA and server certificate.
pub async fn spawn(addr: &str) -> std::io::Result<AzureEmulator> {
    spawn_with(addr, Options::default()).await
}

/// The routes over `shared`: the token endpoint, Key Vault, the test hooks.
fn app(shared: Arc<Shared>) -> axum::Router {
    let hooks = shared.hooks.clone();
    axum::Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/token",
            axum::routing::post(identity::token),
        )
        .fallback(routes::handle)
        .with_state(shared)
        .merge(crate::hooks::admin_routes(hooks))
}

/// The emulator's routes over a new, empty vault (a Managed HSM if `managed_hsm`), served by
/// no listener: the fuzz targets in `fuzz/` send requests straight to it.
#[doc(hidden)]
pub fn router_for_fuzzing(managed_hsm: bool) -> axum::Router {
    app(Arc::new(Shared {
        vault: Mutex::new(model::Vault {
            managed_hsm,
            ..Default::default()
        }),
        hooks: Arc::new(Hooks::default()),
        fallback_base: "https://127.0.0.1:1".into(),
        identities: identity::Identities::default(),
        audit: None,
    }))
}

/// [`spawn`] with [`Options`].
pub async fn spawn_with(addr: &str, options: Options) -> std::io::Result<AzureEmulator> {
    let pki = TestPki::generate()?;
    let hooks = Arc::new(Hooks::default());
    // Bind first so the fallback base URL knows the real port.
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let audit = options
        .audit_log
        .as_deref()
        .map(|p| audit::AuditLog::open(p, options.managed_hsm))
        .transpose()?;
    let shared = Arc::new(Shared {
        vault: Mutex::new(model::Vault {
            managed_hsm: options.managed_hsm,
            ..Default::default()
        }),
        hooks: hooks.clone(),
        fallback_base: format!("https://{local}"),
        identities: identity::Identities::default(),
        audit,
    });
    let app = app(shared.clone());
    let server = crate::server::serve_tls(listener, app.clone(), pki.server_config())?;
    Ok(AzureEmulator {
        server: Some(server),
        addr: local,
        app,
        hooks,
        pki,
        shared,
    })
}
