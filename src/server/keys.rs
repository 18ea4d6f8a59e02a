//! `keygate.v1.KeyService`: transport in, gateway call, transport out.

use super::call::{meta, reply};
use crate::gateway::Gateway;
use crate::pb::{self, key_service_server::KeyService};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct KeyApi {
    pub gateway: Arc<Gateway>,
}

/// Each RPC is the same three lines: take the call's facts, run the gateway, reply.
macro_rules! rpc {
    ($self:ident, $request:ident, $method:ident) => {{
        let m = meta(&$request);
        let result = $self.gateway.$method(&m, $request.into_inner()).await;
        reply(&m, result)
    }};
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, create_key)
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, get_key)
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        rpc!(self, request, list_keys)
    }

    async fn encrypt(
        &self,
        request: Request<pb::EncryptRequest>,
    ) -> Result<Response<pb::EncryptResponse>, Status> {
        rpc!(self, request, encrypt)
    }

    async fn decrypt(
        &self,
        request: Request<pb::DecryptRequest>,
    ) -> Result<Response<pb::DecryptResponse>, Status> {
        rpc!(self, request, decrypt)
    }

    async fn generate_data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Result<Response<pb::GenerateDataKeyResponse>, Status> {
        rpc!(self, request, generate_data_key)
    }

    async fn re_encrypt(
        &self,
        request: Request<pb::ReEncryptRequest>,
    ) -> Result<Response<pb::ReEncryptResponse>, Status> {
        rpc!(self, request, re_encrypt)
    }

    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        rpc!(self, request, sign)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        rpc!(self, request, verify)
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        rpc!(self, request, get_public_key)
    }

    async fn generate_mac(
        &self,
        request: Request<pb::GenerateMacRequest>,
    ) -> Result<Response<pb::GenerateMacResponse>, Status> {
        rpc!(self, request, generate_mac)
    }

    async fn verify_mac(
        &self,
        request: Request<pb::VerifyMacRequest>,
    ) -> Result<Response<pb::VerifyMacResponse>, Status> {
        rpc!(self, request, verify_mac)
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, rotate_key)
    }

    async fn enable_key(
        &self,
        request: Request<pb::EnableKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let m = meta(&request);
        let result = self
            .gateway
            .set_key_enabled(&m, &request.into_inner().key, true)
            .await;
        reply(&m, result)
    }

    async fn disable_key(
        &self,
        request: Request<pb::DisableKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let m = meta(&request);
        let result = self
            .gateway
            .set_key_enabled(&m, &request.into_inner().key, false)
            .await;
        reply(&m, result)
    }

    async fn schedule_key_destruction(
        &self,
        request: Request<pb::ScheduleKeyDestructionRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, schedule_destruction)
    }

    async fn cancel_key_destruction(
        &self,
        request: Request<pb::CancelKeyDestructionRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        rpc!(self, request, cancel_destruction)
    }
}
