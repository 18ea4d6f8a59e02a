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
}
