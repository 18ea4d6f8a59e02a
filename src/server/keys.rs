//! `keygate.v1.KeyService`: protobuf in, an operation through the runner, protobuf out.

use super::call::{call_of, reply};
use super::convert::key_to_pb;
use crate::gateway::{Gateway, ops};
use crate::pb::{self, key_service_server::KeyService};
use std::sync::Arc;
use tonic::{Request, Response, Status};

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
        rpc!(self, request, ops::GetKey, key)
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
