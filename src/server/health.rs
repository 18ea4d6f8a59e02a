//! Standard gRPC health: SERVING while the audit log can be written, NOT_SERVING while it
//! cannot (the gateway refuses calls then, so load balancers should send them elsewhere), and
//! NOT_SERVING from the moment shutdown begins. Overall (`""`) and per service name.

use super::{
    admin::AdminApi, approvals::ApprovalApi, audit::AuditApi, keys::KeyApi, posture::PostureApi,
};
use crate::pb;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

async fn set(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status(
            <pb::key_service_server::KeyServiceServer<KeyApi> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
    reporter
        .set_service_status(
            <pb::audit_service_server::AuditServiceServer<AuditApi> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
    reporter
        .set_service_status(
            <pb::admin_service_server::AdminServiceServer<AdminApi> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
    reporter
        .set_service_status(
            <pb::approval_service_server::ApprovalServiceServer<ApprovalApi> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
    reporter
        .set_service_status(
            <pb::posture_service_server::PostureServiceServer<PostureApi> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
}

/// Mirrors the audit log's writability into the health service until the server stops.
pub async fn follow_audit(
    reporter: HealthReporter,
    mut writable: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        if stop.is_cancelled() {
            set(&reporter, ServingStatus::NotServing).await;
            return;
        }
        let status = if *writable.borrow_and_update() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        set(&reporter, status).await;
        let changed = tokio::select! {
            changed = writable.changed() => changed,
            () = stop.cancelled() => continue,
        };
        if changed.is_err() {
            // The writer is gone: nothing can be audited, so nothing is served.
            set(&reporter, ServingStatus::NotServing).await;
            return;
        }
    }
}
