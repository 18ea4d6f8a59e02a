//! `keygate.v1.PostureService`.

use super::call::{call_of, reply};
use crate::gateway::{Gateway, ops};
use crate::pb::{self, posture_service_server::PostureService};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct PostureApi {
    pub gateway: Arc<Gateway>,
}

macro_rules! rpc {
    ($self:ident, $request:ident, $op:expr) => {{
        let call = call_of(&$request);
        let id = call.request_id.clone();
        let op = $op($request.into_inner());
        reply(&id, $self.gateway.run(call, op).await.map(Into::into))
    }};
}

#[tonic::async_trait]
impl PostureService for PostureApi {
    async fn run_scan(
        &self,
        request: Request<pb::RunScanRequest>,
    ) -> Result<Response<pb::ScanSummary>, Status> {
        rpc!(self, request, |_| ops::ScanPosture)
    }

    async fn get_inventory(
        &self,
        request: Request<pb::GetInventoryRequest>,
    ) -> Result<Response<pb::GetInventoryResponse>, Status> {
        rpc!(self, request, ops::GetPostureInventory::from)
    }

    async fn list_findings(
        &self,
        request: Request<pb::ListFindingsRequest>,
    ) -> Result<Response<pb::ListFindingsResponse>, Status> {
        rpc!(self, request, ops::ListFindings::from)
    }

    async fn acknowledge_finding(
        &self,
        request: Request<pb::AcknowledgeFindingRequest>,
    ) -> Result<Response<pb::Finding>, Status> {
        rpc!(self, request, ops::AcknowledgeFinding::from)
    }

    async fn get_compliance_report(
        &self,
        request: Request<pb::GetComplianceReportRequest>,
    ) -> Result<Response<pb::ComplianceReport>, Status> {
        rpc!(self, request, |_| ops::ComplianceReport)
    }
}
