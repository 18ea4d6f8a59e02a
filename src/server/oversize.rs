//! A message over the decode limit answers RESOURCE_EXHAUSTED, the gRPC convention for a
//! limit the caller exceeded; tonic's decoder says OUT_OF_RANGE. keygate itself never answers
//! OUT_OF_RANGE, and only the decoder's own message is rewritten.

use futures::TryFutureExt as _;
use http::Response;
use std::task::{Context, Poll};
use tonic::{Code, Status};

/// The start of tonic's decode-limit message.
const DECODER_MESSAGE: &str = "Error, decoded message length too large";

/// `status`, with the code RESOURCE_EXHAUSTED if it is the decoder's size refusal.
pub fn remap(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().starts_with(DECODER_MESSAGE) {
        Status::resource_exhausted(format!(
            "the request message is too large: {}",
            status.message().trim_start_matches("Error, ")
        ))
    } else {
        status
    }
}

/// Rewrites the decoder's refusal of a unary request (a trailers-only response, the status in
/// the headers). Streaming requests meet the limit in their handler, which uses [`remap`].
fn remap_response<B>(mut response: Response<B>) -> Response<B> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != Code::OutOfRange {
        return response;
    }
    let mapped = remap(status);
    if mapped.code() == Code::ResourceExhausted {
        // Overwrites grpc-status and grpc-message; the original carried no details.
        let _ = mapped.add_header(response.headers_mut());
    }
    response
}

#[derive(Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> tower::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Oversize { inner }
    }
}

#[derive(Clone)]
pub struct Oversize<S> {
    inner: S,
}

impl<S, Req, B> tower::Service<Req> for Oversize<S>
where
    S: tower::Service<Req, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = futures::future::MapOk<S::Future, fn(Response<B>) -> Response<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.inner
            .call(request)
            .map_ok(remap_response as fn(Response<B>) -> Response<B>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_decoders_refusal_changes() {
        let s = remap(Status::out_of_range(
            "Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes",
        ));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("the limit is: 4 bytes"), "{s:?}");
        assert_eq!(
            remap(Status::out_of_range("other")).code(),
            Code::OutOfRange
        );
        assert_eq!(
            remap(Status::internal("Error, decoded message length too large")).code(),
            Code::Internal
        );
    }
}
