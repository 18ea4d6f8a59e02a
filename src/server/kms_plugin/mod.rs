//! The Kubernetes KMS v2 plugin (`k8s.io/kms/apis/v2` `KeyManagementService`, vendored under
//! proto/vendor) on a UNIX socket, for the kube-apiserver's envelope encryption of secrets.
//!
//! Every Encrypt and Decrypt is an operation through [`Gateway::run`]: authenticated as the
//! principal `[kms_plugin]` configures (the socket, mode 0600, is its credential), authorized
//! by policy on the plugin's key, audited with the apiserver's `uid` as its request id.
//!
//! - `key_id` is the key's id and the version that sealed ([`ops::kms::key_id`]): a rotation
//!   changes it, so the apiserver marks what it stored under the old one as stale. It does
//!   not rewrite that by itself: each object is rewritten on its next write, or by a storage
//!   migration; until then etcd needs the old versions, so the key's versions retire only
//!   with force (`RetireKeyVersions`).
//! - The ciphertext is keygate's own, which names its key and version: Decrypt opens
//!   ciphertexts of every version not yet retired, whatever `key_id` comes with it.
//! - Status answers `healthz: ok` only when a probe (an Encrypt and a Decrypt of a fixed
//!   value, audited like any call, with `kms_plugin = "status-probe"` in their events'
//!   details) worked, with the `key_id` of the key's current primary version, read from the
//!   catalog on every call so that it changes as soon as the key rotates. The apiserver calls
//!   Status every minute while the plugin is healthy and every 10 seconds while it is not,
//!   and its health checks may call it more often; so the probe's outcome stands for
//!   [`HEALTHY_FOR`] (20 s) when it worked and [`UNHEALTHY_FOR`] (3 s) when it did not, and
//!   Status calls within that time do not probe again: however often Status comes, a healthy
//!   plugin costs at most two provider calls and two audit events every 20 seconds (two a
//!   minute at the apiserver's own pace).

mod socket;

pub use socket::{Bound, SOCKET_MODE, SocketError, SocketFile, bind};

use super::call::reply;
use crate::gateway::ops::{self, KmsCall, KmsDecrypt, KmsEncrypt};
use crate::gateway::{Call, Credentials, Gateway, GatewayError};
use crate::pb::kms_v2::{self, key_management_service_server::KeyManagementService};
use futures::StreamExt as _;
use keygate_provider::SecretBytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// What Status says the plugin speaks.
const API_VERSION: &str = "v2";
/// The value the Status probe seals and opens.
const PROBE: &[u8] = b"keygate kms plugin status probe";
/// The longest apiserver `uid` kept as the request id (it sends UUIDs).
const MAX_UID_BYTES: usize = 128;
/// How long a probe that worked stands for later Status calls.
pub const HEALTHY_FOR: Duration = Duration::from_secs(20);
/// How long a probe that failed stands.
pub const UNHEALTHY_FOR: Duration = Duration::from_secs(3);

/// A Status probe's outcome: `Err` holds the `healthz` to answer.
struct Health {
    at: Instant,
    outcome: Result<(), String>,
}

impl Health {
    fn fresh(&self) -> bool {
        let stands = if self.outcome.is_ok() {
            HEALTHY_FOR
        } else {
            UNHEALTHY_FOR
        };
        self.at.elapsed() < stands
    }
}

pub struct KmsPlugin {
    gateway: Arc<Gateway>,
    /// The key (name or id) that seals the apiserver's data encryption keys.
    key: String,
    /// `unix:PATH`, the client address of every call.
    address: String,
    /// The last probe's outcome; held while probing, so Status calls at once share one probe.
    health: tokio::sync::Mutex<Option<Health>>,
}

impl KmsPlugin {
    pub fn new(gateway: Arc<Gateway>, key: String, socket: &std::path::Path) -> Self {
        KmsPlugin {
            gateway,
            key,
            address: format!("unix:{}", socket.display()),
            health: tokio::sync::Mutex::new(None),
        }
    }

    fn call(&self, uid: &str) -> Call {
        Call {
            request_id: request_id(uid),
            client_address: self.address.clone(),
            credentials: Credentials::KmsPlugin,
        }
    }

    fn encrypt_op(&self, plaintext: Vec<u8>, call: KmsCall) -> KmsEncrypt {
        KmsEncrypt {
            encrypt: ops::Encrypt {
                key: self.key.clone(),
                // Into a zeroizing buffer at once.
                plaintext: SecretBytes::new(plaintext),
                associated_data: Vec::new(),
            },
            call,
        }
    }

    /// An Encrypt and a Decrypt of [`PROBE`] (one request id for both).
    async fn probe(&self) -> Result<(), GatewayError> {
        let call = self.call("");
        let sealed = self
            .gateway
            .run(
                call.clone(),
                self.encrypt_op(PROBE.to_vec(), KmsCall::StatusProbe),
            )
            .await?;
        let key_id = ops::kms::key_id(&sealed.key_id, sealed.key_version);
        let opened = self
            .gateway
            .run(
                call,
                KmsDecrypt {
                    decrypt: ops::Decrypt {
                        ciphertext: sealed.ciphertext,
                        associated_data: Vec::new(),
                    },
                    key: self.key.clone(),
                    key_id: key_id.clone(),
                    annotations_bytes: 0,
                    call: KmsCall::StatusProbe,
                },
            )
            .await?;
        if opened.plaintext.expose() != PROBE {
            return Err(GatewayError::Internal(
                "the status probe decrypted to another value than it encrypted".into(),
            ));
        }
        Ok(())
    }

    /// The last probe's outcome while it stands, else a new probe's.
    async fn health(&self) -> Result<(), String> {
        let mut health = self.health.lock().await;
        if let Some(h) = health.as_ref().filter(|h| h.fresh()) {
            return h.outcome.clone();
        }
        let outcome = self
            .probe()
            .await
            .map_err(|e| format!("keygate: {}: {e}", e.reason()));
        *health = Some(Health {
            at: Instant::now(),
            outcome: outcome.clone(),
        });
        outcome
    }

    /// The key id of the key's current primary version, from the catalog.
    fn current_key_id(&self) -> Result<String, String> {
        let key = self.gateway.key_record(&self.key).ok_or_else(|| {
            let e = GatewayError::KeyNotFound(self.key.clone());
            format!("keygate: {}: {e}", e.reason())
        })?;
        Ok(ops::kms::key_id(&key.id, key.primary().version))
    }
}

/// The apiserver's `uid` as the call's request id, so its logs and keygate's audit log join;
/// a new id when it sends none, or something that is not a plain identifier.
fn request_id(uid: &str) -> String {
    let plain = !uid.is_empty()
        && uid.len() <= MAX_UID_BYTES
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if plain {
        uid.to_string()
    } else {
        crate::gateway::new_request_id()
    }
}

#[tonic::async_trait]
impl KeyManagementService for KmsPlugin {
    async fn status(
        &self,
        _: Request<kms_v2::StatusRequest>,
    ) -> Result<Response<kms_v2::StatusResponse>, Status> {
        let (healthz, key_id) = match self.health().await.and_then(|()| self.current_key_id()) {
            Ok(key_id) => ("ok".to_string(), key_id),
            Err(healthz) => (healthz, String::new()),
        };
        Ok(Response::new(kms_v2::StatusResponse {
            version: API_VERSION.into(),
            healthz,
            key_id,
        }))
    }

    async fn encrypt(
        &self,
        request: Request<kms_v2::EncryptRequest>,
    ) -> Result<Response<kms_v2::EncryptResponse>, Status> {
        let r = request.into_inner();
        let call = self.call(&r.uid);
        let id = call.request_id.clone();
        let op = self.encrypt_op(r.plaintext, KmsCall::Request);
        let result = self.gateway.run(call, op).await;
        reply(
            &id,
            result.map(|sealed| kms_v2::EncryptResponse {
                key_id: ops::kms::key_id(&sealed.key_id, sealed.key_version),
                ciphertext: sealed.ciphertext,
                annotations: Default::default(),
            }),
        )
    }

    async fn decrypt(
        &self,
        request: Request<kms_v2::DecryptRequest>,
    ) -> Result<Response<kms_v2::DecryptResponse>, Status> {
        let r = request.into_inner();
        let call = self.call(&r.uid);
        let id = call.request_id.clone();
        let op = KmsDecrypt {
            annotations_bytes: r
                .annotations
                .iter()
                .map(|(k, v)| k.len().saturating_add(v.len()))
                .fold(0, usize::saturating_add),
            decrypt: ops::Decrypt {
                ciphertext: r.ciphertext,
                associated_data: Vec::new(),
            },
            key: self.key.clone(),
            key_id: r.key_id,
            call: KmsCall::Request,
        };
        let result = self.gateway.run(call, op).await;
        reply(
            &id,
            result.map(|opened| kms_v2::DecryptResponse {
                plaintext: opened.plaintext.into_unprotected(),
            }),
        )
    }
}

/// How the plugin is served.
pub struct PluginOptions {
    pub key: String,
    pub request_timeout: Duration,
    /// Cancelled to stop: the socket closes, calls under way finish, the socket file goes
    /// (if it is still the one [`bind`] made).
    pub stop: CancellationToken,
}

/// Serves the plugin on `bound` (from [`bind`]) until `options.stop` is cancelled, then
/// removes the socket file unless another has taken its place.
pub async fn serve(
    gateway: Arc<Gateway>,
    bound: Bound,
    options: PluginOptions,
) -> Result<(), tonic::transport::Error> {
    let PluginOptions {
        key,
        request_timeout,
        stop,
    } = options;
    let Bound { listener, file } = bound;
    let service = kms_v2::key_management_service_server::KeyManagementServiceServer::new(
        KmsPlugin::new(gateway, key, file.path()),
    )
    .max_decoding_message_size(super::MAX_MESSAGE_BYTES);
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        if let Err(e) = &accepted {
            // Out of file descriptors, say: wait a little rather than spin.
            tracing::warn!(error = %e, "kms plugin: accepting a connection failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some((accepted, listener))
    })
    .boxed();
    let result = tonic::transport::Server::builder()
        .timeout(request_timeout)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
        .await;
    match file.remove() {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(socket = %file.path().display(), "kms plugin: the socket file is gone or another process's now; left alone");
        }
        Err(e) => {
            tracing::warn!(socket = %file.path().display(), error = %e, "kms plugin: could not remove the socket");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::request_id;

    #[test]
    fn the_apiserver_uid_is_the_request_id_when_it_is_plain() {
        let uid = "3f0b6c1e-6f55-4a7b-9b7a-2f1f0d7f4c11";
        assert_eq!(request_id(uid), uid);
        for odd in ["", "a b", "x\ny", &"u".repeat(129)] {
            let id = request_id(odd);
            assert_ne!(id, odd);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
    }
}
