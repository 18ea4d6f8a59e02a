//! `keygate.v1.ApprovalService`.

use super::call::{call_of, reply};
use super::convert::approval_to_pb;
use crate::gateway::{Gateway, ops};
use crate::pb::{self, approval_service_server::ApprovalService};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ApprovalApi {
    pub gateway: Arc<Gateway>,
}

#[tonic::async_trait]
impl ApprovalService for ApprovalApi {
    async fn list_approvals(
        &self,
        request: Request<pb::ListApprovalsRequest>,
    ) -> Result<Response<pb::ListApprovalsResponse>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::ListApprovals::from(request.into_inner());
        reply(&id, self.gateway.run(call, op).await.map(Into::into))
    }

    async fn get_approval(
        &self,
        request: Request<pb::GetApprovalRequest>,
    ) -> Result<Response<pb::Approval>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::GetApproval::from(request.into_inner());
        let result = self.gateway.run(call, op).await;
        reply(&id, result.map(|r| approval_to_pb(&r)))
    }

    async fn approve(
        &self,
        request: Request<pb::ApproveRequest>,
    ) -> Result<Response<pb::Approval>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::DecideOnRequest::from(request.into_inner());
        let result = self.gateway.decide_on_request(call, op).await;
        reply(&id, result.map(|r| approval_to_pb(&r)))
    }

    async fn deny(
        &self,
        request: Request<pb::DenyRequest>,
    ) -> Result<Response<pb::Approval>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::DecideOnRequest::from(request.into_inner());
        let result = self.gateway.decide_on_request(call, op).await;
        reply(&id, result.map(|r| approval_to_pb(&r)))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelApprovalRequest>,
    ) -> Result<Response<pb::Approval>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::CancelRequest::from(request.into_inner());
        let result = self.gateway.run(call, op).await;
        reply(&id, result.map(|r| approval_to_pb(&r)))
    }
}
