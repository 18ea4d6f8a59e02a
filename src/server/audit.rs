//! `keygate.v1.AuditService`.

use super::call::{meta, reply};
use crate::gateway::{Gateway, event_to_pb};
use crate::pb::{self, audit_service_server::AuditService};
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tonic::{Request, Response, Status};

pub struct AuditApi {
    pub gateway: Arc<Gateway>,
}

type TailStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn query(
        &self,
        request: Request<pb::AuditQueryRequest>,
    ) -> Result<Response<pb::AuditQueryResponse>, Status> {
        let m = meta(&request);
        let result = self.gateway.audit_query(&m, request.into_inner()).await;
        reply(&m, result)
    }

    type TailStream = TailStream;

    async fn tail(
        &self,
        request: Request<pb::AuditTailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let m = meta(&request);
        let result = self.gateway.audit_tail(&m, request.into_inner()).await.map(|tail| {
            let filter = tail.filter;
            let stream = BroadcastStream::new(tail.events).filter_map(move |item| match item {
                Ok(event) if filter.matches(&event) => Some(Ok(event_to_pb(&event))),
                Ok(_) => None,
                Err(BroadcastStreamRecvError::Lagged(n)) => Some(Err(Status::data_loss(format!(
                    "the tail fell {n} events behind; Query from the last sequence you saw to catch up"
                )))),
            });
            Box::pin(stream) as TailStream
        });
        reply(&m, result)
    }

    async fn verify(
        &self,
        request: Request<pb::AuditVerifyRequest>,
    ) -> Result<Response<pb::AuditVerifyResponse>, Status> {
        let m = meta(&request);
        let result = self.gateway.audit_verify(&m).await;
        reply(&m, result)
    }
}
