//! Key posture: protobuf ↔ domain.

use crate::gateway::ops;
use crate::pb;
use crate::posture::store::{FindingFilter, InventoryFilter};
use crate::posture::{Finding, ScanSummary};
use crate::time::rfc3339;

fn time(ms: Option<i64>) -> String {
    ms.map(rfc3339).unwrap_or_default()
}

impl From<ScanSummary> for pb::ScanSummary {
    fn from(s: ScanSummary) -> Self {
        pb::ScanSummary {
            scan_id: s.scan_id,
            started_at: rfc3339(s.started_at_ms),
            finished_at: rfc3339(s.finished_at_ms),
            keys: s.keys,
            unmanaged: s.unmanaged,
            appeared: s.appeared,
            vanished: s.vanished,
            findings_opened: s.opened,
            findings_closed: s.closed,
            listings: s
                .listings
                .into_iter()
                .map(|l| pb::ProviderListing {
                    provider: l.provider,
                    keys: l.keys,
                    elapsed_ms: l.elapsed_ms,
                    error: l.error,
                })
                .collect(),
        }
    }
}

impl From<pb::GetInventoryRequest> for ops::GetPostureInventory {
    fn from(r: pb::GetInventoryRequest) -> Self {
        ops::GetPostureInventory {
            filter: InventoryFilter {
                provider: r.provider,
                unmanaged_only: r.unmanaged_only,
                changed_only: r.changed_only,
            },
            page_size: r.page_size,
            page_token: r.page_token,
        }
    }
}

impl From<ops::PostureInventory> for pb::GetInventoryResponse {
    fn from(p: ops::PostureInventory) -> Self {
        pb::GetInventoryResponse {
            scan_id: p.scan_id,
            scanned_at: time((p.scan_id > 0).then_some(p.scanned_at_ms)),
            keys: p
                .keys
                .into_iter()
                .map(|k| pb::ScannedKey {
                    managed: !k.key_id.is_empty(),
                    provider: k.provider,
                    provider_uri: k.provider_uri,
                    algorithm: k.algorithm,
                    state: k.state,
                    key_id: k.key_id,
                    change: k.change,
                })
                .collect(),
            next_page_token: p.next_page_token,
        }
    }
}

impl From<pb::ListFindingsRequest> for ops::ListFindings {
    fn from(r: pb::ListFindingsRequest) -> Self {
        ops::ListFindings {
            filter: FindingFilter {
                state: r.state,
                rule: r.rule,
                severity: r.severity,
                key: r.key,
            },
            page_size: r.page_size,
            page_token: r.page_token,
        }
    }
}

impl From<ops::FindingPage> for pb::ListFindingsResponse {
    fn from(p: ops::FindingPage) -> Self {
        pb::ListFindingsResponse {
            findings: p.findings.into_iter().map(Into::into).collect(),
            next_page_token: p.next_page_token,
        }
    }
}

impl From<pb::AcknowledgeFindingRequest> for ops::AcknowledgeFinding {
    fn from(r: pb::AcknowledgeFindingRequest) -> Self {
        ops::AcknowledgeFinding {
            id: r.id,
            reason: r.reason,
        }
    }
}

impl From<Finding> for pb::Finding {
    fn from(f: Finding) -> Self {
        let ack = f.acknowledgement.unwrap_or_default();
        pb::Finding {
            id: f.id,
            rule: f.rule,
            severity: f.severity,
            provider: f.provider,
            provider_uri: f.provider_uri,
            key_id: f.key_id,
            key_name: f.key_name,
            evidence: f.evidence,
            opened_at: rfc3339(f.opened_at_ms),
            last_seen_at: rfc3339(f.last_seen_ms),
            closed_at: time(f.closed_at_ms),
            closed_because: f.closed_because,
            acknowledged_at: time((!ack.by.is_empty()).then_some(ack.at_ms)),
            acknowledged_by: ack.by,
            acknowledgement_reason: ack.reason,
        }
    }
}
