//! The server span of each RPC for OpenTelemetry, named and attributed by the OTel RPC
//! semantic conventions (`keygate.v1.KeyService/Encrypt`, `rpc.system = grpc`, …) and made a
//! child of the caller's span when the request carries a W3C `traceparent`. Only while the
//! OTLP export is on; otherwise requests pass untouched.

use crate::telemetry::otlp::{self, SPANS};
use futures::future::{BoxFuture, Either};
use http::{HeaderMap, Request, Response};
use opentelemetry::propagation::Extractor;
use std::task::{Context, Poll};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The request's headers, as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `/keygate.v1.KeyService/Encrypt` → (`keygate.v1.KeyService`, `Encrypt`).
fn service_and_method(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.split_once('/').unwrap_or((path, ""))
}

#[derive(Clone, Copy, Default)]
pub struct RpcSpanLayer;

impl<S> tower::Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcSpan { inner }
    }
}

#[derive(Clone)]
pub struct RpcSpan<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for RpcSpan<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if !otlp::tracing_on() {
            return Either::Left(self.inner.call(request));
        }
        // The caller's decision when it sent one, else keygate's share of root traces. A
        // call not traced gets no span at all, and so no child spans. Without a
        // `traceparent` there is nothing to extract: the propagator (a global behind a lock)
        // and its context are left alone.
        let parent = request.headers().contains_key("traceparent").then(|| {
            opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract(&Headers(request.headers()))
            })
        });
        let caller = parent.as_ref().map(|parent| {
            use opentelemetry::trace::TraceContextExt as _;
            parent.span().span_context().clone()
        });
        let traced = match &caller {
            Some(caller) if caller.is_valid() => caller.is_sampled(),
            _ => otlp::sample_root(),
        };
        if !traced {
            return Either::Left(self.inner.call(request));
        }
        let (service, method) = service_and_method(request.uri().path());
        let span = tracing::info_span!(
            target: SPANS,
            "rpc",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        // A request without a (valid) traceparent starts a trace of its own.
        if let Some(parent) = parent {
            let _ = span.set_parent(parent);
        }
        let future = self.inner.call(request);
        let recorded = span.clone();
        Either::Right(Box::pin(
            async move {
                let response = future.await?;
                // An error answer is trailers-only: its status is in the headers. A reply
                // with a body has its status in the trailers, OK unless a stream fails late.
                let code = tonic::Status::from_header_map(response.headers())
                    .map_or(0, |status| status.code() as i32);
                recorded.record("rpc.grpc.status_code", code);
                if code != 0 {
                    recorded.record("otel.status_code", "ERROR");
                }
                Ok(response)
            }
            .instrument(span),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            service_and_method("/keygate.v1.KeyService/Encrypt"),
            ("keygate.v1.KeyService", "Encrypt")
        );
        assert_eq!(service_and_method("/odd"), ("odd", ""));
    }
}
