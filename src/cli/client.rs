//! Connecting to a running gateway, with the bearer token on every call.

use crate::pb::admin_service_client::AdminServiceClient;
use crate::pb::approval_service_client::ApprovalServiceClient;
use crate::pb::audit_service_client::AuditServiceClient;
use crate::pb::key_service_client::KeyServiceClient;
use crate::pb::posture_service_client::PostureServiceClient;
use clap::Args;
use std::path::PathBuf;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Gateway address: http://HOST:PORT, or https://HOST:PORT for TLS.
    #[arg(
        long,
        global = true,
        env = "KEYGATE_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoint: String,
    /// Bearer token (`serve --dev` prints one).
    #[arg(long, global = true, env = "KEYGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) that signed the gateway's certificate.
    #[arg(long, global = true, env = "KEYGATE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    #[arg(long, global = true, env = "KEYGATE_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mTLS.
    #[arg(long, global = true, env = "KEYGATE_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

pub type Keys = KeyServiceClient<InterceptedService<Channel, Bearer>>;
pub type Audit = AuditServiceClient<InterceptedService<Channel, Bearer>>;
pub type Admin = AdminServiceClient<InterceptedService<Channel, Bearer>>;
pub type Approvals = ApprovalServiceClient<InterceptedService<Channel, Bearer>>;
pub type Posture = PostureServiceClient<InterceptedService<Channel, Bearer>>;

fn read(what: &str, path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

impl Connection {
    fn bearer(&self) -> Result<Bearer, String> {
        match &self.token {
            None => Ok(Bearer(None)),
            Some(t) => MetadataValue::try_from(format!("Bearer {t}"))
                .map(|v| Bearer(Some(v)))
                .map_err(|_| "the token has characters that cannot go in a header".to_string()),
        }
    }

    pub async fn channel(&self) -> Result<Channel, String> {
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| format!("--endpoint {}: {e}", self.endpoint))?
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(5));
        if self.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca_cert {
                tls = tls.ca_certificate(Certificate::from_pem(read("--ca-cert", ca)?));
            }
            match (&self.client_cert, &self.client_key) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(Identity::from_pem(
                        read("--client-cert", cert)?,
                        read("--client-key", key)?,
                    ));
                }
                (None, None) => {}
                _ => return Err("mTLS needs both --client-cert and --client-key".into()),
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("TLS setup: {e}"))?;
        }
        endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e:?}", self.endpoint))
    }

    pub fn keys_on(&self, channel: Channel) -> Result<Keys, String> {
        Ok(KeyServiceClient::with_interceptor(channel, self.bearer()?))
    }

    pub async fn keys(&self) -> Result<Keys, String> {
        self.keys_on(self.channel().await?)
    }

    pub async fn admin(&self) -> Result<Admin, String> {
        Ok(AdminServiceClient::with_interceptor(
            self.channel().await?,
            self.bearer()?,
        ))
    }

    pub async fn approvals(&self) -> Result<Approvals, String> {
        Ok(ApprovalServiceClient::with_interceptor(
            self.channel().await?,
            self.bearer()?,
        ))
    }

    pub async fn posture(&self) -> Result<Posture, String> {
        Ok(PostureServiceClient::with_interceptor(
            self.channel().await?,
            self.bearer()?,
        ))
    }

    pub async fn audit(&self) -> Result<Audit, String> {
        Ok(AuditServiceClient::with_interceptor(
            self.channel().await?,
            self.bearer()?,
        ))
    }
}

/// The exit code of a critical change that opened an approval request instead of acting.
pub const EXIT_PENDING_APPROVAL: u8 = 3;

/// The approval request a critical call opened instead of acting (ErrorInfo reason
/// APPROVAL_PENDING), if that is what `status` says.
pub fn pending_approval(status: &Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    let info = status.get_details_error_info()?;
    if info.reason != "APPROVAL_PENDING" {
        return None;
    }
    info.metadata.get("approval_id").cloned()
}

/// A failed call, as a person reads it: the gRPC code and the gateway's message.
pub fn describe(status: Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
