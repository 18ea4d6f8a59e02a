//! `keygate.v1.AuditService`.

use super::call::{call_of, reply};
use super::convert::{event_to_pb, ingester_to_pb};
use crate::audit::store::After;
use crate::gateway::{Gateway, GatewayError, ops};
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
    /// Cancelled at shutdown: open Tail streams end, so they do not hold the server up.
    pub stop: tokio_util::sync::CancellationToken,
}

type TailStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEvent, Status>> + Send>>;
type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::AuditExportChunk, Status>> + Send>>;

/// Events per export chunk.
const EXPORT_PAGE: u32 = 1000;

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
            let slot = tail.slot;
            let stream = BroadcastStream::new(tail.events).filter_map(move |item| {
                // The slot lives as long as the stream: given back when the client goes.
                let _open = &slot;
                match item {
                    Ok(event) if filter.matches(&event) => Some(Ok(event_to_pb(&event))),
                    Ok(_) => None,
                    Err(BroadcastStreamRecvError::Lagged(n)) => Some(Err(Status::data_loss(format!(
                        "the tail fell {n} events behind; Query from the last sequence you saw to catch up"
                    )))),
                }
            });
            // Ends with UNAVAILABLE (not a clean end) so a follower knows to reconnect, to
            // this server after its restart or to another replica, from the last sequence seen.
            let stopped = futures::StreamExt::take_until(stream, self.stop.clone().cancelled_owned())
                .chain(futures::stream::once(async {
                    Err(Status::unavailable(
                        "keygate is shutting down: the tail ended; reconnect and Query from the last sequence you saw",
                    ))
                }));
            Box::pin(stopped) as TailStream
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

    async fn start_verification(
        &self,
        request: Request<pb::StartVerificationRequest>,
    ) -> Result<Response<pb::VerificationJob>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let result = self
            .gateway
            .run(call, ops::StartVerification)
            .await
            .map(|job| pb::VerificationJob {
                job,
                ..Default::default()
            });
        reply(&id, result)
    }

    async fn get_verification(
        &self,
        request: Request<pb::GetVerificationRequest>,
    ) -> Result<Response<pb::VerificationJob>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::GetVerification {
            job: request.into_inner().job,
        };
        reply(&id, self.gateway.run(call, op).await.map(Into::into))
    }

    type ExportStream = ExportStream;

    async fn export(
        &self,
        request: Request<pb::AuditExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::AuditExport::from(request.into_inner());
        let result = self.gateway.run(call, op).await.map(|export| {
            let export = Arc::new(export);
            let stream =
                futures::stream::unfold(Some((export, None::<After>)), |state| async move {
                    let (export, after) = state?;
                    let events = match export.log.page(&export.filter, after, EXPORT_PAGE).await {
                        Ok(events) => events,
                        Err(e) => {
                            return Some((
                                Err(super::status::to_status(&GatewayError::Audit(e))),
                                None,
                            ));
                        }
                    };
                    let last = events.last()?;
                    let next = After {
                        time_ms: last.record.time_ms,
                        sequence: last.sequence,
                    };
                    let mut data = Vec::with_capacity(events.len() * 600);
                    for e in &events {
                        let line = match export.format {
                            ops::ExportFormat::JsonLines => crate::audit::event_json(e),
                            ops::ExportFormat::Ocsf => crate::audit::ocsf::event(e),
                        };
                        if serde_json::to_writer(&mut data, &line).is_ok() {
                            data.push(b'\n');
                        }
                    }
                    let more = events.len() == EXPORT_PAGE as usize;
                    let chunk = pb::AuditExportChunk {
                        data,
                        events: events.len() as u64,
                    };
                    Some((Ok(chunk), more.then_some((export, Some(next)))))
                });
            Box::pin(stream) as ExportStream
        });
        reply(&id, result)
    }

    async fn hash(
        &self,
        request: Request<pb::AuditHashRequest>,
    ) -> Result<Response<pb::AuditHashResponse>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::AuditHash {
            value: request.into_inner().value,
        };
        reply(
            &id,
            self.gateway
                .run(call, op)
                .await
                .map(|hmac| pb::AuditHashResponse { hmac }),
        )
    }

    async fn list_checkpoints(
        &self,
        request: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<pb::ListCheckpointsResponse>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        let op = ops::ListCheckpoints {
            limit: request.into_inner().limit,
        };
        reply(&id, self.gateway.run(call, op).await.map(Into::into))
    }

    async fn list_ingesters(
        &self,
        request: Request<pb::ListIngestersRequest>,
    ) -> Result<Response<pb::ListIngestersResponse>, Status> {
        let call = call_of(&request);
        let id = call.request_id.clone();
        reply(
            &id,
            self.gateway
                .run(call, ops::ListIngesters)
                .await
                .map(|feeds| pb::ListIngestersResponse {
                    ingesters: feeds.into_iter().map(ingester_to_pb).collect(),
                }),
        )
    }
}
