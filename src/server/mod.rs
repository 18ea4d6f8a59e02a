//! The gRPC server: key and audit services, standard health checking and reflection, TLS or
//! mTLS through rustls, per-call deadline and per-connection concurrency limits.

mod admin;
mod approvals;
mod audit;
pub mod call;
mod connections;
pub mod console;
pub mod convert;
mod crl_check;
mod early_auth;
mod health;
pub mod jwks;
mod keys;
pub mod kms_plugin;
mod oversize;
pub mod plain_http;
mod posture;
mod rpc_span;
pub mod startup;
mod status;
pub mod tls;

pub use status::{ERROR_DOMAIN, to_status};

use crate::config::{ServerSettings, TlsConfig};
use crate::gateway::Gateway;
use crate::pb;
use futures::TryStreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// Messages above this are refused by the transport before any handler runs.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listen.tls.{setting}: cannot read {path}: {source}")]
    TlsFile {
        setting: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
}

/// How the server runs and stops.
pub struct ServeOptions<'a> {
    pub tls: Option<&'a TlsConfig>,
    pub request_timeout: Duration,
    pub settings: ServerSettings,
    /// Cancelled to stop: the listener closes, Tail streams end, calls under way finish.
    pub stop: CancellationToken,
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Serves until `options.stop` is cancelled and the connections have closed, or until
/// [`ServerSettings::drain_grace`] after it, whichever comes first.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    options: ServeOptions<'_>,
) -> Result<(), ServeError> {
    let ServeOptions {
        tls,
        request_timeout,
        settings,
        stop,
    } = options;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let health_task = tokio::spawn(health::follow_audit(
        health_reporter,
        gateway.audit_writable(),
        stop.clone(),
    ));
    // Both versions: grpcurl speaks v1, many tools (grpcui, Postman, Python's
    // grpcio-reflection) still only v1alpha.
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;

    let key_service = pb::key_service_server::KeyServiceServer::new(keys::KeyApi {
        gateway: gateway.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    // One decode limit for every service: tonic's default (4 MiB) would otherwise apply to
    // the admin and approval services, decoded before the token is checked.
    let admin_service = pb::admin_service_server::AdminServiceServer::new(admin::AdminApi {
        gateway: gateway.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let approval_service =
        pb::approval_service_server::ApprovalServiceServer::new(approvals::ApprovalApi {
            gateway: gateway.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let posture_service =
        pb::posture_service_server::PostureServiceServer::new(posture::PostureApi {
            gateway: gateway.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let audit_service = pb::audit_service_server::AuditServiceServer::new(audit::AuditApi {
        gateway: gateway.clone(),
        stop: stop.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES);

    let mut builder = Server::builder()
        .timeout(request_timeout)
        .concurrency_limit_per_connection(1024)
        .max_concurrent_streams(Some(settings.max_concurrent_streams))
        .http2_keepalive_interval(settings.keepalive_interval)
        .http2_keepalive_timeout(Some(settings.keepalive_timeout));
    if let Some(age) = settings.max_connection_age {
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(settings.max_connection_age_grace);
    }
    let tls = match tls {
        Some(config) => {
            let reloading = tls::Reloading::new(config)?;
            let every = crate::time::parse_duration(&config.reload_interval)
                .map_err(|e| ServeError::Tls(format!("listen.tls.reload_interval: {e}")))?;
            if !every.is_zero() {
                tokio::spawn(reloading.clone().watch(config.clone(), every, stop.clone()));
            }
            Some(reloading)
        }
        None => None,
    };
    let router = builder
        .layer(rpc_span::RpcSpanLayer)
        .layer(oversize::OversizeLayer)
        .layer(early_auth::EarlyAuthLayer { gateway })
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(key_service)
        .add_service(audit_service)
        .add_service(admin_service)
        .add_service(approval_service)
        .add_service(posture_service);
    // The builder's `tcp_nodelay` applies only to listeners tonic binds itself; on this one,
    // Nagle's algorithm held small replies for a delayed ACK (40 ms stalls of a whole HTTP/2
    // connection).
    let tcp = Box::pin(connections::limit(
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        settings.max_connections,
    ));
    let server: std::pin::Pin<
        Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
    > = match tls {
        Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
            tls::accept(tcp, tls, stop.clone()).map_ok(move |io| {
                connections::SpeakSoon::new(io, settings.silent_connection_timeout)
            }),
            stop.clone().cancelled_owned(),
        )),
        None => Box::pin(router.serve_with_incoming_shutdown(
            tcp.map_ok(move |io| {
                connections::SpeakSoon::new(io, settings.silent_connection_timeout)
            }),
            stop.clone().cancelled_owned(),
        )),
    };
    // A client that keeps its connection busy must not hold the process past the grace.
    let grace_over = async {
        stop.cancelled().await;
        tokio::time::sleep(settings.drain_grace()).await;
    };
    let result = tokio::select! {
        result = server => result.map_err(ServeError::from),
        () = grace_over => {
            tracing::warn!(
                grace = ?settings.drain_grace(),
                "connections were still open three quarters into server.shutdown_grace; closing them"
            );
            Ok(())
        }
    };
    health_task.abort();
    result
}
