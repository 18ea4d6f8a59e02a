//! `keygate.v1.AdminService`.

use super::call::{meta, reply};
use crate::gateway::Gateway;
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
        let m = meta(&request);
        let result = self.gateway.list_inventory(&m, request.into_inner()).await;
        reply(&m, result)
    }
}
