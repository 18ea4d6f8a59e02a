//! `keygate.v1.AuditService`.

use super::call::{call_of, reply};
use super::convert::event_to_pb;
use crate::gateway::{Gateway, ops};
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
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::AuditQuery::from(request.into_inner());
        reply(&id, self.gateway.run(call, op).await.map(Into::into))
    }

    type TailStream = TailStream;

    async fn tail(
        &self,
        request: Request<pb::AuditTailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::AuditTail::from(request.into_inner());
        let result = self.gateway.run(call, op).await.map(|tail| {
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
        reply(&id, result)
    }

    async fn verify(
        &self,
        request: Request<pb::AuditVerifyRequest>,
    ) -> Result<Response<pb::AuditVerifyResponse>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        reply(
            &id,
            self.gateway
                .run(call, ops::AuditVerify)
                .await
                .map(Into::into),
        )
    }
}
