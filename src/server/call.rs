//! What a handler takes from the transport (token, client certificate, peer, request id) and
//! gives back (the request id header).

use crate::auth::PeerIdentity;
use crate::gateway::{Call, Credentials, GatewayError};
use tonic::metadata::MetadataValue;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn call_of<T>(request: &Request<T>) -> Call {
    call_from(request.metadata().as_ref(), request.extensions())
}

/// The call's facts from its headers and the connection's facts (the transport puts them in
/// the request's extensions), without its body.
pub fn call_from(headers: &http::HeaderMap, extensions: &http::Extensions) -> Call {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| Zeroizing::new(t.trim().as_bytes().to_vec()));
    let tls = extensions.get::<TlsConnectInfo<TcpConnectInfo>>();
    // Present only on a TLS connection whose client certificate the configured CA verified.
    let peer = tls
        .and_then(|info| info.peer_certs())
        .and_then(|chain| chain.first().and_then(|leaf| PeerIdentity::from_der(leaf)));
    let credentials = match (token, peer) {
        (token, Some(peer)) => Credentials::Certified {
            token,
            peer: std::sync::Arc::new(peer),
        },
        (Some(token), None) => Credentials::Bearer(token),
        (None, None) => Credentials::None,
    };
    let remote = extensions
        .get::<TcpConnectInfo>()
        .or_else(|| tls.map(|info| info.get_ref()))
        .and_then(|info| info.remote_addr());
    Call {
        request_id: crate::gateway::new_request_id(),
        client_address: remote
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into()),
        credentials,
    }
}

/// The reply, with the call's request id in the `x-request-id` header either way.
pub fn reply<T>(request_id: &str, result: Result<T, GatewayError>) -> Result<Response<T>, Status> {
    let id = MetadataValue::try_from(request_id).ok();
    match result {
        Ok(body) => {
            let mut response = Response::new(body);
            if let Some(id) = id {
                response.metadata_mut().insert(REQUEST_ID_HEADER, id);
            }
            Ok(response)
        }
        Err(e) => {
            let mut status = super::status::to_status(&e);
            if let Some(id) = id {
                status.metadata_mut().insert(REQUEST_ID_HEADER, id);
            }
            Err(status)
        }
    }
}
