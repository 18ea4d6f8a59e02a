//! Server TLS through rustls, done here rather than by tonic so that client certificates can
//! be checked against revocation lists (`listen.tls.crl_file`) and the files reloaded while
//! the server runs.
//!
//! Each accepted TCP connection is handshaken in its own task, bounded by
//! [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds up the accept loop; the
//! finished TLS streams go to tonic, which reads the client certificate from them as before.
//! The configuration is swapped whole when a file changes: new handshakes use the new one,
//! connections already open keep going.

use super::ServeError;
use super::connections::Counted;
use crate::config::TlsConfig;
use arc_swap::ArcSwap;
use futures::{Stream, StreamExt as _};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected as _;

/// A client has this long from the TCP accept to a finished handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::TlsFile {
        setting,
        path: path.display().to_string(),
        source,
    })
}

/// An error naming the setting and file; `what` is rustls' or the PEM parser's description,
/// which never quotes the file's contents.
fn bad(setting: &str, path: &Path, what: impl std::fmt::Display) -> ServeError {
    ServeError::Tls(format!("listen.tls.{setting} ({}): {what}", path.display()))
}

fn certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let pem = read(setting, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(setting, path, e))?;
    if certs.is_empty() {
        return Err(bad(setting, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The CRLs in `path`: at least one, each parsed (their signatures are checked by
/// [`super::crl_check`]).
pub fn revocation_lists(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, ServeError> {
    let pem = read("crl_file", path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("crl_file", path, e))?;
    if crls.is_empty() {
        return Err(bad("crl_file", path, "no PEM X509 CRL in it"));
    }
    Ok(crls)
}

/// The rustls server configuration from the files `tls` names, read now.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, ServeError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates("cert_file", &tls.cert_file)?;
    let key = {
        let pem = zeroize::Zeroizing::new(read("key_file", &tls.key_file)?);
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad("key_file", &tls.key_file, e))?
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            let cas = certificates("client_ca_file", ca_file)?;
            let crls = match &tls.crl_file {
                Some(crl_file) => {
                    let crls = revocation_lists(crl_file)?;
                    super::crl_check::check_signatures(&crls, &cas)
                        .map_err(|e| bad("crl_file", crl_file, e))?;
                    Some(crls)
                }
                None => None,
            };
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|e| bad("client_ca_file", ca_file, e))?;
            }
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            if let Some(crls) = crls {
                // rustls' defaults: every certificate below the trust anchor is checked, and
                // one whose issuer has no CRL in the file is refused (fail closed).
                verifier = verifier.with_crls(crls);
            }
            let verifier = verifier.build().map_err(|e| {
                let file = tls.crl_file.as_deref().unwrap_or(ca_file);
                let setting = if tls.crl_file.is_some() {
                    "crl_file"
                } else {
                    "client_ca_file"
                };
                bad(setting, file, e)
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| bad("key_file", &tls.key_file, e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// What a file looked like when last read: a change in either means reload.
type Stamp = Option<(SystemTime, u64)>;

fn stamps(tls: &TlsConfig) -> Vec<Stamp> {
    files(tls)
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn files(tls: &TlsConfig) -> impl Iterator<Item = &PathBuf> {
    [Some(&tls.cert_file), Some(&tls.key_file)]
        .into_iter()
        .chain([tls.client_ca_file.as_ref(), tls.crl_file.as_ref()])
        .flatten()
}

/// The configuration in force, replaced when the files change.
pub struct Reloading {
    current: ArcSwap<ServerConfig>,
}

impl Reloading {
    pub fn new(tls: &TlsConfig) -> Result<Arc<Self>, ServeError> {
        Ok(Arc::new(Reloading {
            current: ArcSwap::new(server_config(tls)?),
        }))
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Checks the files every `every` until `stop`, and loads them when one changed. A
    /// change that does not load is logged once and the configuration in force kept.
    pub async fn watch(self: Arc<Self>, tls: TlsConfig, every: Duration, stop: CancellationToken) {
        let mut seen = stamps(&tls);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let now = stamps(&tls);
            if now == seen {
                continue;
            }
            seen = now;
            let config = tls.clone();
            match tokio::task::spawn_blocking(move || server_config(&config)).await {
                Ok(Ok(config)) => {
                    self.current.store(config);
                    tracing::info!("listen.tls: files changed; new connections use them");
                }
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "listen.tls: files changed but do not load; keeping the TLS configuration in force"
                ),
                Err(e) => tracing::error!(error = %e, "listen.tls: reload task failed"),
            }
        }
    }
}

/// TLS connections from `tcp`: each handshake in its own task, at most
/// [`HANDSHAKE_TIMEOUT`] long, with the configuration in force when it began. A connection
/// whose handshake fails is closed and logged at debug level; it never reaches tonic.
pub fn accept<S>(
    tcp: S,
    tls: Arc<Reloading>,
    stop: CancellationToken,
) -> impl Stream<Item = Result<TlsStream<Counted<TcpStream>>, std::io::Error>>
where
    S: Stream<Item = Result<Counted<TcpStream>, std::io::Error>> + Send + Unpin + 'static,
{
    // The permit travels inside each stream, so connections in handshake count towards
    // server.max_connections: the channel needs no bound of its own beyond that.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut tcp = tcp;
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = tcp.next() => next,
            };
            let Some(next) = next else { return };
            let io = match next {
                Ok(io) => io,
                Err(e) => {
                    if tx.send(Err(e)).is_err() {
                        return;
                    }
                    continue;
                }
            };
            let peer = io.connect_info().remote_addr();
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream));
                    }
                    // A client certificate refused (revoked, unknown CA, expired) is worth
                    // seeing; scanners and dropped connections are not.
                    Ok(Err(e))
                        if e.get_ref()
                            .and_then(|e| e.downcast_ref::<rustls::Error>())
                            .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_))) =>
                    {
                        tracing::info!(peer = ?peer, error = %e, "TLS handshake refused the client certificate");
                    }
                    Ok(Err(e)) => tracing::debug!(peer = ?peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = ?peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
}
