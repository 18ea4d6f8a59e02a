//! The audit feed: Query, Tail, Verify. Reading the log is itself audited.

use super::{CallMeta, Gateway, GatewayError};
use crate::audit::{AuditError, AuditEvent, AuditFilter};
use crate::pb;
use crate::policy::{Action, Resource};
use std::sync::Arc;
use tokio::sync::broadcast;

pub fn event_to_pb(e: &AuditEvent) -> pb::AuditEvent {
    let r = &e.record;
    pb::AuditEvent {
        sequence: e.sequence,
        time: Some(crate::time::to_timestamp(r.time_ms)),
        source: r.source.clone(),
        actor: r.actor.clone(),
        action: r.action.clone(),
        key_id: r.key_id.clone(),
        key_name: r.key_name.clone(),
        key_version: r.key_version,
        outcome: r.outcome.clone(),
        reason: r.reason.clone(),
        policy: r.policy.clone(),
        request_id: r.request_id.clone(),
        provider_request_id: r.provider_request_id.clone(),
        client_address: r.client_address.clone(),
        details: r.details.clone(),
        previous_hash: e.previous_hash.clone(),
        hash: e.hash.clone(),
    }
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl From<AuditError> for GatewayError {
    fn from(e: AuditError) -> Self {
        GatewayError::Unavailable(e.to_string())
    }
}

/// A live subscription: committed events, filtered.
pub struct Tail {
    pub filter: AuditFilter,
    pub events: broadcast::Receiver<Arc<AuditEvent>>,
}

impl Gateway {
    pub async fn audit_query(
        &self,
        meta: &CallMeta,
        req: pb::AuditQueryRequest,
    ) -> Result<pb::AuditQueryResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::AuditQuery);
        let result = async {
            scope.authenticate()?;
            scope.authorize(Action::AuditQuery, &Resource::AuditLog, 0)?;
            let after = if req.page_token.is_empty() {
                0
            } else {
                req.page_token.parse::<u64>().map_err(|_| {
                    GatewayError::InvalidArgument(
                        "page_token is not one this gateway issued".into(),
                    )
                })?
            };
            let page_size = match req.page_size {
                0 => 100,
                n => n.min(1000),
            };
            let filter = AuditFilter {
                start_ms: req.start_time.as_ref().map(crate::time::from_timestamp),
                end_ms: req.end_time.as_ref().map(crate::time::from_timestamp),
                key: some(&req.key),
                actor: some(&req.actor),
                action: some(&req.action),
                outcome: some(&req.outcome),
                request_id: some(&req.request_id),
                source: some(&req.source),
            };
            let events = self.audit.query(&filter, after, page_size).await?;
            let next_page_token = if events.len() == page_size as usize {
                events
                    .last()
                    .map(|e| e.sequence.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            scope.detail("returned", events.len());
            Ok(pb::AuditQueryResponse {
                events: events.iter().map(event_to_pb).collect(),
                next_page_token,
            })
        }
        .await;
        scope.finish(result).await
    }

    pub async fn audit_tail(
        &self,
        meta: &CallMeta,
        req: pb::AuditTailRequest,
    ) -> Result<Tail, GatewayError> {
        let mut scope = self.scope(meta, Action::AuditTail);
        let result = async {
            scope.authenticate()?;
            scope.authorize(Action::AuditTail, &Resource::AuditLog, 0)?;
            Ok(Tail {
                filter: AuditFilter {
                    key: some(&req.key),
                    actor: some(&req.actor),
                    action: some(&req.action),
                    outcome: some(&req.outcome),
                    ..Default::default()
                },
                events: self.audit.subscribe(),
            })
        }
        .await;
        scope.finish(result).await
    }

    pub async fn audit_verify(
        &self,
        meta: &CallMeta,
    ) -> Result<pb::AuditVerifyResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::AuditVerify);
        let result = async {
            scope.authenticate()?;
            scope.authorize(Action::AuditVerify, &Resource::AuditLog, 0)?;
            let report = self.audit.verify().await?;
            scope.detail("chain_ok", report.ok);
            scope.detail("events_checked", report.events_checked);
            Ok(pb::AuditVerifyResponse {
                ok: report.ok,
                events_checked: report.events_checked,
                first_broken_sequence: report.first_broken_sequence,
                reason: report.reason,
                head_hash: report.head_hash,
            })
        }
        .await;
        scope.finish(result).await
    }
}
