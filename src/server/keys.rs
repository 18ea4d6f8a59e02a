//! `keygate.v1.KeyService`: protobuf in, an operation through the runner, protobuf out.

use super::call::{call_of, reply};
use super::convert::{family_to_pb, key_to_pb, key_view_to_pb};
use crate::gateway::{Gateway, ops};
use crate::pb::{self, key_service_server::KeyService};
use futures::{Stream, StreamExt as _};
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

/// Chunks of one ReEncryptStream running at once; the stream reads the next message only
/// when one finishes and its response is taken, so a stream holds at most this many chunks
/// (and their responses) in memory however long it is.
const CHUNKS_IN_FLIGHT: usize = 4;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct KeyApi {
    pub gateway: Arc<Gateway>,
}

/// Each RPC is the same: take the call's facts, run the operation, convert the result (to
/// `pb::Key` for the operations that answer with a key).
macro_rules! rpc {
    ($self:ident, $request:ident, $op:ty) => {
        rpc!($self, $request, $op, Into::into)
    };
    ($self:ident, $request:ident, $op:ty, key) => {
        rpc!($self, $request, $op, |k| key_to_pb(&k))
    };
    ($self:ident, $request:ident, $op:ty, $convert:expr) => {{
        let call = call_of(&$request);
        let id = call.request_id.clone();
        let result = $self
            .gateway
            .run(call, <$op>::from($request.into_inner()))
            .await;
        reply(&id, result.map($convert))
    }};
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    type ReEncryptStreamStream = ResponseStream<pb::ReEncryptStreamResponse>;

    async fn byok_import(
        &self,
        request: Request<pb::ByokImportRequest>,
    ) -> Result<Response<pb::KeyFamily>, Status> {
        rpc!(self, request, ops::ByokImport, |f| family_to_pb(&f))
    }

    async fn retry_byok_import(
        &self,
        request: Request<pb::RetryByokImportRequest>,
    ) -> Result<Response<pb::KeyFamily>, Status> {
        rpc!(self, request, ops::RetryByokImport, |f| family_to_pb(&f))
    }

    async fn reimport_byok(
        &self,
        request: Request<pb::ReimportByokRequest>,
    ) -> Result<Response<pb::KeyFamily>, Status> {
        rpc!(self, request, ops::ReimportByok, |f| family_to_pb(&f))
    }

    async fn adopt_key(
        &self,
        request: Request<pb::AdoptKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        // Provider and algorithm come from the caller (the CLI fills them in from the newest
        // scan through GetInventory, which is policy-checked): a read here, before anyone is
        // authenticated, would tell a caller whether a URI is in the inventory.
        let r = request.into_inner();
        let result = self.gateway.run(call, ops::AdoptKey::from(r)).await;
        reply(&id, result.map(|k| key_to_pb(&k)))
    }

    async fn get_key_family(
        &self,
        request: Request<pb::GetKeyFamilyRequest>,
    ) -> Result<Response<pb::KeyFamily>, Status> {
        rpc!(self, request, ops::GetKeyFamily, |f| family_to_pb(&f))
    }

    async fn batch_encrypt(
        &self,
        request: Request<pb::BatchEncryptRequest>,
    ) -> Result<Response<pb::BatchEncryptResponse>, Status> {
        rpc!(self, request, ops::BatchEncrypt)
    }

    async fn batch_decrypt(
        &self,
        request: Request<pb::BatchDecryptRequest>,
    ) -> Result<Response<pb::BatchDecryptResponse>, Status> {
        rpc!(self, request, ops::BatchDecrypt)
    }

    async fn batch_re_encrypt(
        &self,
        request: Request<pb::BatchReEncryptRequest>,
    ) -> Result<Response<pb::BatchReEncryptResponse>, Status> {
        rpc!(self, request, ops::BatchReEncrypt)
    }

    /// Each message is a chunk run as one BatchReEncrypt through the runner (authorized and
    /// audited on its own, with the stream's id and the chunk's offset in its event).
    async fn re_encrypt_stream(
        &self,
        request: Request<Streaming<pb::ReEncryptStreamRequest>>,
    ) -> Result<Response<Self::ReEncryptStreamStream>, Status> {
        let call = call_of(&request);
        let stream_id = call.request_id.clone();
        let header_id = stream_id.clone();
        let gateway = self.gateway.clone();
        // Later messages may leave the keys empty: they keep the first message's.
        let mut keys: Option<(String, String)> = None;
        let mut offset = 0u64;
        let chunks = request.into_inner().map(move |message| {
            let message = message.map_err(super::oversize::remap)?;
            let (key, destination_key) = match &keys {
                Some((key, destination)) => (
                    if message.key.is_empty() {
                        key.clone()
                    } else {
                        message.key
                    },
                    if message.destination_key.is_empty() {
                        destination.clone()
                    } else {
                        message.destination_key
                    },
                ),
                None => {
                    keys = Some((message.key.clone(), message.destination_key.clone()));
                    (message.key, message.destination_key)
                }
            };
            let at = offset;
            offset += message.items.len() as u64;
            Ok::<_, Status>((
                at,
                ops::BatchReEncrypt {
                    key,
                    destination_key,
                    items: super::convert::re_encrypt_items(message.items),
                    stream: Some((stream_id.clone(), at)),
                },
            ))
        });
        let responses = chunks
            .map(move |chunk| {
                let gateway = gateway.clone();
                let mut call = call.clone();
                // Each chunk in a task of its own, so a stream's chunks use every core.
                let run = tokio::spawn(async move {
                    let (offset, op) = chunk?;
                    call.request_id = crate::gateway::new_request_id();
                    let id = call.request_id.clone();
                    let done = gateway.run(call, op).await;
                    let resealed = super::call::reply(&id, done)?.into_inner();
                    let (results, failed) = super::convert::re_encrypt_results(resealed.results);
                    Ok(pb::ReEncryptStreamResponse {
                        offset,
                        results,
                        failed,
                        request_id: id,
                    })
                });
                async move {
                    run.await.unwrap_or_else(|e| {
                        Err(Status::internal(format!(
                            "a chunk of the stream failed inside keygate: {e}"
                        )))
                    })
                }
            })
            .buffered(CHUNKS_IN_FLIGHT);
        reply(
            &header_id,
            Ok(Box::pin(responses) as Self::ReEncryptStreamStream),
        )
    }

    async fn get_public_key_set(
        &self,
        request: Request<pb::GetPublicKeySetRequest>,
    ) -> Result<Response<pb::PublicKeySet>, Status> {
        rpc!(self, request, ops::GetPublicKeySet)
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::CreateKey, key)
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::GetKey, |v| key_view_to_pb(&v))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        rpc!(self, request, ops::ListKeys)
    }

    async fn encrypt(
        &self,
        request: Request<pb::EncryptRequest>,
    ) -> Result<Response<pb::EncryptResponse>, Status> {
        rpc!(self, request, ops::Encrypt)
    }

    async fn decrypt(
        &self,
        request: Request<pb::DecryptRequest>,
    ) -> Result<Response<pb::DecryptResponse>, Status> {
        rpc!(self, request, ops::Decrypt)
    }

    async fn generate_data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Result<Response<pb::GenerateDataKeyResponse>, Status> {
        rpc!(self, request, ops::GenerateDataKey)
    }

    async fn re_encrypt(
        &self,
        request: Request<pb::ReEncryptRequest>,
    ) -> Result<Response<pb::ReEncryptResponse>, Status> {
        rpc!(self, request, ops::ReEncrypt)
    }

    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        rpc!(self, request, ops::Sign)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        rpc!(self, request, ops::Verify)
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        rpc!(self, request, ops::GetPublicKey)
    }

    async fn generate_mac(
        &self,
        request: Request<pb::GenerateMacRequest>,
    ) -> Result<Response<pb::GenerateMacResponse>, Status> {
        rpc!(self, request, ops::GenerateMac)
    }

    async fn verify_mac(
        &self,
        request: Request<pb::VerifyMacRequest>,
    ) -> Result<Response<pb::VerifyMacResponse>, Status> {
        rpc!(self, request, ops::VerifyMac)
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::RotateKey, key)
    }

    async fn retire_key_versions(
        &self,
        request: Request<pb::RetireKeyVersionsRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::RetireKeyVersions, key)
    }

    async fn enable_key(
        &self,
        request: Request<pb::EnableKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::SetKeyEnabled, key)
    }

    async fn disable_key(
        &self,
        request: Request<pb::DisableKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::SetKeyEnabled, key)
    }

    async fn schedule_key_destruction(
        &self,
        request: Request<pb::ScheduleKeyDestructionRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::ScheduleKeyDestruction, key)
    }

    async fn cancel_key_destruction(
        &self,
        request: Request<pb::CancelKeyDestructionRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::CancelKeyDestruction, key)
    }

    async fn set_key_owner(
        &self,
        request: Request<pb::SetKeyOwnerRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, ops::SetKeyOwner, key)
    }
}
