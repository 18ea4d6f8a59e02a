//! A call is authenticated from its headers before its message is read: an unauthenticated
//! caller is refused (and audited) however large or malformed the message it sends, and the
//! server never decodes it.

mod common;

use common::{ROOT_TOKEN, Server, status_request_id};
use prost::bytes::{Buf as _, BufMut as _};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Sends and receives raw message bytes, whatever they are.
#[derive(Default, Clone)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// One unary call of `path` with `body` as its message bytes.
async fn raw_call(
    server: &Server,
    path: &'static str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Status {
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("channel ready");
    let mut request = tonic::Request::new(body);
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    match grpc
        .unary::<Vec<u8>, Vec<u8>, _>(
            request,
            http::uri::PathAndQuery::from_static(path),
            RawCodec,
        )
        .await
    {
        Ok(_) => Status::ok("answered"),
        Err(status) => status,
    }
}

const ENCRYPT: &str = "/keygate.v1.KeyService/Encrypt";

#[tokio::test]
async fn an_unauthenticated_message_is_never_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    // Not protobuf at all: decoding it would fail.
    let garbage = vec![0xff; 64];
    // Over the 1 MiB decode limit: reading it would be refused as too large.
    let huge = vec![0u8; 2 * 1024 * 1024];

    for (body, token) in [
        (garbage.clone(), None),
        (garbage.clone(), Some("not-a-real-token-at-all")),
        (huge.clone(), None),
        (huge.clone(), Some("not-a-real-token-at-all")),
    ] {
        let status = raw_call(&server, ENCRYPT, token, body).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }

    // With a valid token the message is read: the same bytes meet the decoder.
    let status = raw_call(&server, ENCRYPT, Some(ROOT_TOKEN), garbage).await;
    assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_ne!(status.code(), Code::Ok, "{status:?}");
    let status = raw_call(&server, ENCRYPT, Some(ROOT_TOKEN), huge).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn a_refusal_before_the_body_is_audited_as_its_operation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut audit = server.audit(ROOT_TOKEN).await;
    for (path, action) in [
        (ENCRYPT, "Encrypt"),
        ("/keygate.v1.KeyService/BatchDecrypt", "Decrypt"),
        ("/keygate.v1.AdminService/ReloadPolicies", "ReloadPolicies"),
        ("/keygate.v1.ApprovalService/Approve", "ApproveRequest"),
        ("/keygate.v1.AuditService/Export", "AuditQuery"),
        ("/keygate.v1.PostureService/RunScan", "ScanPosture"),
    ] {
        let status = raw_call(
            &server,
            path,
            Some("guessed-token-0123456789"),
            vec![0xff; 16],
        )
        .await;
        assert_eq!(status.code(), Code::Unauthenticated, "{path}: {status:?}");
        let id = status_request_id(&status);
        assert!(!id.is_empty(), "{path}: no request id on {status:?}");
        let events = common::events_for(&mut audit, &id).await;
        assert_eq!(events.len(), 1, "{path}: {events:?}");
        assert_eq!(events[0].action, action, "{path}");
        assert_eq!(events[0].actor, "anonymous", "{path}");
        assert_eq!(
            events[0].error_reason, "TOKEN_INVALID",
            "{path}: {:?}",
            events[0]
        );
    }
}
