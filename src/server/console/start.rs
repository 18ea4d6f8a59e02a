//! Starting the console from `[console]`: its listener (bound early, with the other
//! listeners, so a taken port stops the start) and its server.

use super::session::Sessions;
use super::{Console, serve};
use crate::config::{Config, ConsoleConfig};
use crate::gateway::Gateway;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds `[console] listen`, refusing plain HTTP off loopback unless `allow_plaintext`.
pub async fn bind(console: &ConsoleConfig) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(&console.listen)
        .await
        .map_err(|e| format!("console.listen {}: {e}", console.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("console.listen: {e}"))?;
    check_plaintext(console, addr)?;
    Ok(listener)
}

fn check_plaintext(console: &ConsoleConfig, addr: SocketAddr) -> Result<(), String> {
    if console.tls.is_some() || addr.ip().is_loopback() || console.allow_plaintext {
        return Ok(());
    }
    Err(format!(
        "console.listen {addr} is not a loopback address and console.tls is not configured: sign-in tokens would cross the network unencrypted. Configure [console.tls], listen on 127.0.0.1, or set console.allow_plaintext = true if a TLS-terminating proxy encrypts the traffic"
    ))
}

/// Serves the console on `listener` until `stop`, over TLS when `[console] tls` is set;
/// each request is answered within `request_timeout`.
pub fn start(
    listener: TcpListener,
    console: &ConsoleConfig,
    config: &Config,
    gateway: Arc<Gateway>,
    request_timeout: Duration,
    stop: CancellationToken,
) -> Result<(), String> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("console.listen: {e}"))?;
    let length = console.session_length(config).map_err(|e| e.to_string())?;
    let sessions = Sessions::new(length).map_err(|e| e.to_string())?;
    let tls = match &console.tls {
        Some(tls) => {
            let reloading =
                crate::server::tls::Reloading::new(tls).map_err(|e| format!("console.tls: {e}"))?;
            let every = crate::time::parse_duration(&tls.reload_interval)
                .map_err(|e| format!("console.tls.reload_interval: {e}"))?;
            if !every.is_zero() {
                tokio::spawn(reloading.clone().watch(tls.clone(), every, stop.clone()));
            }
            Some(reloading)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("console on {scheme}://{addr}");
    let state = Arc::new(Console::new(
        gateway,
        sessions,
        tls.is_some(),
        request_timeout,
        stop.clone(),
    ));
    tokio::spawn(serve(listener, state, tls, stop));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(tls: bool, allow_plaintext: bool) -> ConsoleConfig {
        ConsoleConfig {
            listen: "x".into(),
            tls: tls.then(|| crate::config::TlsConfig {
                cert_file: "c".into(),
                key_file: "k".into(),
                client_ca_file: None,
                crl_file: None,
                reload_interval: "0s".into(),
            }),
            allow_plaintext,
            session: "8h".into(),
        }
    }

    #[test]
    fn plain_http_is_refused_off_loopback_unless_allowed() {
        let open: SocketAddr = "0.0.0.0:8444".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8444".parse().unwrap();
        let err = check_plaintext(&console(false, false), open).unwrap_err();
        assert!(err.contains("console.tls"), "{err}");
        assert!(check_plaintext(&console(false, false), local).is_ok());
        assert!(check_plaintext(&console(true, false), open).is_ok());
        assert!(check_plaintext(&console(false, true), open).is_ok());
    }
}
