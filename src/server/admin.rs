//! `keygate.v1.AdminService`.

use super::call::{call_of, reply};
use crate::gateway::{Gateway, ops};
use crate::pb::{self, admin_service_server::AdminService};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AdminApi {
    pub gateway: Arc<Gateway>,
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_inventory(
        &self,
        request: Request<pb::ListInventoryRequest>,
    ) -> Result<Response<pb::ListInventoryResponse>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::ListInventory::from(request.into_inner());
        reply(&id, self.gateway.run(call, op).await.map(Into::into))
    }

    async fn rotate_master_key(
        &self,
        request: Request<pb::RotateMasterKeyRequest>,
    ) -> Result<Response<pb::RotateMasterKeyResponse>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::RotateMasterKey {
            provider: request.into_inner().provider,
        };
        let result = self.gateway.run(call, op).await;
        reply(
            &id,
            result.map(|(provider, rotation)| pb::RotateMasterKeyResponse {
                provider,
                generation: rotation.generation,
                rewrapped: u64::try_from(rotation.rewrapped).unwrap_or(u64::MAX),
            }),
        )
    }

    // --- policies and destruction records (issue 13) ---

    async fn reload_policies(
        &self,
        request: Request<pb::ReloadPoliciesRequest>,
    ) -> Result<Response<pb::PolicyStatus>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let result = self.gateway.run(call, ops::ReloadPolicies).await;
        reply(&id, result.map(Into::into))
    }

    async fn get_policy_status(
        &self,
        request: Request<pb::GetPolicyStatusRequest>,
    ) -> Result<Response<pb::PolicyStatus>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let result = self.gateway.run(call, ops::GetPolicyStatus).await;
        reply(&id, result.map(Into::into))
    }

    async fn get_gateway_status(
        &self,
        request: Request<pb::GetGatewayStatusRequest>,
    ) -> Result<Response<pb::GatewayStatus>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let result = self.gateway.run(call, ops::GetGatewayStatus).await;
        reply(&id, result.map(Into::into))
    }

    async fn explain_policy(
        &self,
        request: Request<pb::ExplainPolicyRequest>,
    ) -> Result<Response<pb::PolicyExplanation>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::ExplainPolicy::from(request.into_inner());
        reply(&id, self.gateway.run(call, op).await.map(Into::into))
    }

    async fn list_destruction_records(
        &self,
        request: Request<pb::ListDestructionRecordsRequest>,
    ) -> Result<Response<pb::ListDestructionRecordsResponse>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::ListDestructionRecords::from(request.into_inner());
        reply(&id, self.gateway.run(call, op).await.map(Into::into))
    }
}
