//! Approvals, policies, destruction records and owner changes (issue 13).

use crate::approvals::ApprovalRequest;
use crate::gateway::ops;
use crate::lifecycle::destruction::DestructionRecord;
use crate::pb;
use crate::policy::PolicyInfo;
use crate::time::{now_ms, rfc3339};

pub fn approval_to_pb(r: &ApprovalRequest) -> pb::Approval {
    pb::Approval {
        id: r.id.clone(),
        key_id: r.key_id.clone(),
        key_name: r.key_name.clone(),
        environment: r.environment.clone(),
        action: r.action().as_str().into(),
        change: r.change.describe(),
        change_json: serde_json::to_string(&r.change).unwrap_or_default(),
        digest: r.digest.clone(),
        requester: r.requester.clone(),
        requested_in: r.request_call_id.clone(),
        quorum: r.quorum,
        approvals: r
            .approvals
            .iter()
            .map(|a| pb::ApprovalVote {
                principal: a.principal.clone(),
                time: rfc3339(a.at_ms),
                request_id: a.call_id.clone(),
            })
            .collect(),
        state: r.state_at(now_ms()).into(),
        created_at: rfc3339(r.created_at_ms),
        expires_at: rfc3339(r.expires_at_ms),
        closed_by: r.closed_by.clone().unwrap_or_default(),
        closed_at: r.closed_at_ms.map(rfc3339).unwrap_or_default(),
        outcome: r.outcome.clone().unwrap_or_default(),
        execution_request_id: r.execution_call_id.clone().unwrap_or_default(),
    }
}

impl From<ops::ApprovalPage> for pb::ListApprovalsResponse {
    fn from(page: ops::ApprovalPage) -> Self {
        pb::ListApprovalsResponse {
            approvals: page.requests.iter().map(approval_to_pb).collect(),
            next_page_token: page.next_page_token,
        }
    }
}

impl From<pb::ListApprovalsRequest> for ops::ListApprovals {
    fn from(r: pb::ListApprovalsRequest) -> Self {
        ops::ListApprovals {
            state: r.state,
            key: r.key,
            page_size: r.page_size,
            page_token: r.page_token,
        }
    }
}

impl From<pb::GetApprovalRequest> for ops::GetApproval {
    fn from(r: pb::GetApprovalRequest) -> Self {
        ops::GetApproval { id: r.id }
    }
}

impl From<pb::ApproveRequest> for ops::DecideOnRequest {
    fn from(r: pb::ApproveRequest) -> Self {
        ops::DecideOnRequest {
            id: r.id,
            approve: true,
            reason: r.comment,
            digest: r.digest,
        }
    }
}

impl From<pb::DenyRequest> for ops::DecideOnRequest {
    fn from(r: pb::DenyRequest) -> Self {
        ops::DecideOnRequest {
            id: r.id,
            approve: false,
            reason: r.reason,
            digest: String::new(),
        }
    }
}

impl From<pb::CancelApprovalRequest> for ops::CancelRequest {
    fn from(r: pb::CancelApprovalRequest) -> Self {
        ops::CancelRequest {
            id: r.id,
            reason: r.reason,
        }
    }
}

impl From<pb::SetKeyOwnerRequest> for ops::SetKeyOwner {
    fn from(r: pb::SetKeyOwnerRequest) -> Self {
        ops::SetKeyOwner {
            key: r.key,
            owner: r.owner,
        }
    }
}

fn info_to_pb(p: &PolicyInfo) -> pb::PolicyInfo {
    pb::PolicyInfo {
        id: p.id.clone(),
        file: p.file.clone(),
        rule: p.rule.clone().unwrap_or_default(),
        reason: p.reason.clone().unwrap_or_default(),
        approval: p.approval,
    }
}

impl From<ops::GatewayStatus> for pb::GatewayStatus {
    fn from(s: ops::GatewayStatus) -> Self {
        let (checkpoint_sequence, checkpoint_head_hash, checkpoint_at) = match s.checkpoint {
            Some((sequence, hash, at)) => (sequence, hash, rfc3339(at)),
            None => (0, String::new(), String::new()),
        };
        pb::GatewayStatus {
            version: s.version.into(),
            providers: s
                .providers
                .into_iter()
                .map(|p| pb::ProviderHealth {
                    name: p.name,
                    default: p.default,
                    breaker: p.breaker.into(),
                })
                .collect(),
            policy: Some(s.policy.into()),
            audit_writable: s.audit_writable,
            checkpoint_sequence,
            checkpoint_head_hash,
            checkpoint_at,
        }
    }
}

impl From<ops::PolicyStatus> for pb::PolicyStatus {
    fn from(s: ops::PolicyStatus) -> Self {
        let (last_error, last_error_at) = match s.last_error {
            Some((error, at)) => (error, rfc3339(at)),
            None => (String::new(), String::new()),
        };
        pb::PolicyStatus {
            source: s.source,
            policies: s.policies.iter().map(info_to_pb).collect(),
            loaded_at: rfc3339(s.loaded_at_ms),
            last_error,
            last_error_at,
            caches_decisions: s.caches_decisions,
        }
    }
}

impl From<pb::ExplainPolicyRequest> for ops::ExplainPolicy {
    fn from(r: pb::ExplainPolicyRequest) -> Self {
        ops::ExplainPolicy {
            principal: r.principal,
            action: r.action,
            key: r.key,
        }
    }
}

impl From<ops::Explanation> for pb::PolicyExplanation {
    fn from(e: ops::Explanation) -> Self {
        pb::PolicyExplanation {
            principal: e.principal,
            action: e.action.as_str().into(),
            key: e.key_name,
            decision: e.decision.verdict.as_str().into(),
            reason: e.decision.reason,
            policies: e.decision.policies,
            deciding: e.deciding.iter().map(info_to_pb).collect(),
            errors: e.decision.errors,
        }
    }
}

impl From<pb::ListDestructionRecordsRequest> for ops::ListDestructionRecords {
    fn from(r: pb::ListDestructionRecordsRequest) -> Self {
        ops::ListDestructionRecords { key: r.key }
    }
}

fn record_to_pb(r: &DestructionRecord) -> pb::DestructionRecord {
    let time = |ms: Option<i64>| ms.map(rfc3339).unwrap_or_default();
    pb::DestructionRecord {
        id: r.id.clone(),
        key_id: r.key_id.clone(),
        key_name: r.key_name.clone(),
        environment: r.environment.clone(),
        provider: r.provider.clone(),
        provider_uri: r.provider_uri.clone(),
        requested_by: r.requested_by.clone(),
        approval_id: r.approval_id.clone().unwrap_or_default(),
        approved_by: r.approved_by.clone(),
        window_seconds: r.window_seconds,
        scheduled_at: time((r.scheduled_at_ms > 0).then_some(r.scheduled_at_ms)),
        destruction_at: rfc3339(r.destruction_at_ms),
        state: r.state.clone(),
        cancelled_by: r.cancelled_by.clone().unwrap_or_default(),
        cancelled_at: time(r.cancelled_at_ms),
        destroyed_at: time(r.destroyed_at_ms),
        destroy_request_id: r.destroy_call_id.clone().unwrap_or_default(),
        versions: r.versions.clone(),
        method: r.method.clone().unwrap_or_default(),
        checklist: r
            .checklist
            .iter()
            .map(|c| pb::DestructionCheck {
                check: c.check.clone(),
                result: c.result.clone(),
            })
            .collect(),
        copies: r
            .copies
            .iter()
            .map(|c| pb::DestroyedCopy {
                key_id: c.key_id.clone(),
                key_name: c.key_name.clone(),
                provider: c.provider.clone(),
                provider_kind: c.provider_kind.clone(),
                provider_uri: c.provider_uri.clone(),
                import_method: c.import_method.clone(),
                method: c.method.clone(),
            })
            .collect(),
    }
}

impl From<Vec<DestructionRecord>> for pb::ListDestructionRecordsResponse {
    fn from(records: Vec<DestructionRecord>) -> Self {
        pb::ListDestructionRecordsResponse {
            records: records.iter().map(record_to_pb).collect(),
        }
    }
}
