//! Authentication before the body: a call to a keygate service is authenticated from its
//! headers (and the connection's client certificate) before tonic reads and decodes its
//! message, so an unauthenticated caller costs the server no message buffer or decode, however
//! large the message it sends. The refusal runs through the runner
//! ([`Gateway::refuse_unauthenticated`]) and is audited like every refused call. Calls that
//! pass are authenticated again by the runner, which stays the one place that decides.

use super::call::{call_from, reply};
use crate::gateway::Gateway;
use crate::policy::Action;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The action each keygate RPC's operation runs as, for the audit event of a call refused
/// before its body (and so its operation) exists. `None`: not a keygate RPC.
pub fn action_of(path: &str) -> Option<Action> {
    let (service, method) = path.strip_prefix("/keygate.v1.")?.split_once('/')?;
    use Action as A;
    let action = match (service, method) {
        ("KeyService", "BatchEncrypt") => A::Encrypt,
        ("KeyService", "BatchDecrypt") => A::Decrypt,
        ("KeyService", "BatchReEncrypt" | "ReEncryptStream") => A::ReEncrypt,
        ("KeyService", "GetPublicKeySet") => A::GetPublicKey,
        ("KeyService", "RetryByokImport" | "ReimportByok") => A::ByokImport,
        ("KeyService", "GetKeyFamily") => A::GetKey,
        // RPCs named as their action; only these, so that a made-up method cannot put a
        // system action (DestroyKey, AuditStoreRecovered) into an anonymous audit event.
        (
            "KeyService",
            "CreateKey"
            | "GetKey"
            | "ListKeys"
            | "Encrypt"
            | "Decrypt"
            | "GenerateDataKey"
            | "ReEncrypt"
            | "Sign"
            | "Verify"
            | "GetPublicKey"
            | "GenerateMac"
            | "VerifyMac"
            | "RotateKey"
            | "RetireKeyVersions"
            | "EnableKey"
            | "DisableKey"
            | "ScheduleKeyDestruction"
            | "CancelKeyDestruction"
            | "SetKeyOwner"
            | "ByokImport"
            | "AdoptKey",
        )
        | (
            "AdminService",
            "ListInventory"
            | "ReloadPolicies"
            | "GetPolicyStatus"
            | "GetGatewayStatus"
            | "ExplainPolicy"
            | "ListDestructionRecords"
            | "RotateMasterKey",
        )
        | ("ApprovalService", "ListApprovals" | "GetApproval")
        | ("PostureService", "ListFindings" | "AcknowledgeFinding") => method.parse().ok()?,
        ("ApprovalService", "Approve") => A::ApproveRequest,
        ("ApprovalService", "Deny") => A::DenyRequest,
        ("ApprovalService", "Cancel") => A::CancelRequest,
        ("AuditService", "Query" | "Export" | "ListIngesters") => A::AuditQuery,
        ("AuditService", "Tail") => A::AuditTail,
        (
            "AuditService",
            "Verify" | "StartVerification" | "GetVerification" | "ListCheckpoints",
        ) => A::AuditVerify,
        ("AuditService", "Hash") => A::AuditHash,
        ("PostureService", "RunScan") => A::ScanPosture,
        ("PostureService", "GetInventory") => A::GetPostureInventory,
        ("PostureService", "GetComplianceReport") => A::ComplianceReport,
        _ => return None,
    };
    Some(action)
}

#[derive(Clone)]
pub struct EarlyAuthLayer {
    pub gateway: Arc<Gateway>,
}

impl<S> tower::Layer<S> for EarlyAuthLayer {
    type Service = EarlyAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EarlyAuth {
            inner,
            gateway: self.gateway.clone(),
        }
    }
}

#[derive(Clone)]
pub struct EarlyAuth<S> {
    inner: S,
    gateway: Arc<Gateway>,
}

impl<S, B> tower::Service<http::Request<B>> for EarlyAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(action) = action_of(request.uri().path()) else {
            return Box::pin(self.inner.call(request));
        };
        let call = call_from(request.headers(), request.extensions());
        if self.gateway.authenticates(&call) {
            return Box::pin(self.inner.call(request));
        }
        // The body is dropped unread with the request.
        drop(request);
        let gateway = self.gateway.clone();
        Box::pin(async move {
            let id = call.request_id.clone();
            let refusal = gateway.refuse_unauthenticated(call, action).await;
            let status = match reply::<()>(&id, Err(refusal)) {
                Err(status) => status,
                Ok(_) => tonic::Status::unauthenticated("unauthenticated"),
            };
            Ok(status.into_http())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// Every RPC of every keygate service has its action: a new RPC cannot be added without
    /// saying how its refused calls are audited.
    #[test]
    fn every_keygate_rpc_has_an_action() {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let mut methods = 0;
        for file in set.file.iter().filter(|f| f.package() == "keygate.v1") {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/keygate.v1.{}/{}", service.name(), method.name());
                    assert!(action_of(&path).is_some(), "{path} has no action");
                    methods += 1;
                }
            }
        }
        assert!(methods >= 50, "only {methods} methods found");
        assert_eq!(action_of("/grpc.health.v1.Health/Check"), None);
        assert_eq!(action_of("/keygate.v1.KeyService/Nope"), None);
        // Action names that are no RPC do not map.
        assert_eq!(action_of("/keygate.v1.KeyService/DestroyKey"), None);
        assert_eq!(
            action_of("/keygate.v1.AdminService/AuditStoreRecovered"),
            None
        );
    }
}
