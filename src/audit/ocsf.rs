//! Export as OCSF API Activity (class 6003) objects, one per event: what SIEMs that speak
//! OCSF (Amazon Security Lake, Splunk, …) take without a mapping of their own. Fields OCSF has
//! no place for (policy, chain hashes, the provider's own request id) go in `unmapped`.

use super::event::AuditEvent;
use serde_json::{Value, json};

/// The OCSF schema version the objects follow.
pub const OCSF_VERSION: &str = "1.3.0";

fn activity(action: &str) -> (u8, &'static str) {
    match action {
        "CreateKey" | "ImportKey" | "AdoptKey" => (1, "Create"),
        "GetKey"
        | "ListKeys"
        | "GetPublicKey"
        | "ListInventory"
        | "AuditQuery"
        | "AuditTail"
        | "AuditVerify"
        | "AuditHash"
        | "ScanPosture"
        | "GetPostureInventory"
        | "ListFindings"
        | "ComplianceReport" => (2, "Read"),
        "AcknowledgeFinding" | "RotateMasterKey" => (3, "Update"),
        "RotateKey"
        | "EnableKey"
        | "DisableKey"
        | "ScheduleKeyDestruction"
        | "CancelKeyDestruction"
        | "UpdateKeyConfig" => (3, "Update"),
        "DestroyKey" => (4, "Delete"),
        _ => (99, "Other"),
    }
}

/// `ip` and `port` of a client address.
fn endpoint(address: &str) -> Value {
    if address.is_empty() {
        return Value::Null;
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if port.parse::<u16>().is_ok() && !ip.is_empty() => {
            json!({"ip": ip.trim_start_matches('[').trim_end_matches(']'), "port": port.parse::<u16>().unwrap_or(0)})
        }
        _ => json!({"ip": address}),
    }
}

pub fn event(e: &AuditEvent) -> Value {
    let r = &e.record;
    let (activity_id, activity_name) = activity(&r.action);
    let bypass = e.link.as_ref().is_some_and(|l| l.bypass);
    let (status_id, status) = match r.outcome.as_str() {
        "ok" => (1, "Success"),
        "denied" | "error" => (2, "Failure"),
        _ => (99, "Other"),
    };
    let (severity_id, severity) = if bypass {
        (4, "High")
    } else {
        match r.outcome.as_str() {
            "denied" => (3, "Medium"),
            "error" => (2, "Low"),
            _ => (1, "Informational"),
        }
    };
    let details: Value = serde_json::from_str(&r.details).unwrap_or(Value::Null);
    json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": if activity_id == 99 { r.action.as_str() } else { activity_name },
        "type_uid": 600_300 + u32::from(activity_id),
        "type_name": format!("API Activity: {}", if activity_id == 99 { r.action.as_str() } else { activity_name }),
        "time": r.time_ms,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "status_code": r.error_reason,
        "status_detail": r.reason,
        "message": format!("{} {} by {} ({})", r.action, r.outcome, r.actor, r.source),
        "actor": {"user": {"name": r.actor, "type": r.actor_kind}},
        "src_endpoint": endpoint(&r.client_address),
        "api": {
            "operation": r.action,
            "service": {"name": r.source},
            "request": {"uid": r.request_id},
            "response": {"code": r.outcome, "error": r.error_reason},
        },
        "resources": if r.key_id.is_empty() && r.key_name.is_empty() && r.key_uri.is_empty() {
            json!([])
        } else {
            json!([{
                "uid": r.key_id,
                "name": r.key_name,
                "type": "key",
                "data": {"provider_uri": r.key_uri, "version": r.key_version},
            }])
        },
        "metadata": {
            "version": OCSF_VERSION,
            "uid": e.sequence.to_string(),
            "sequence": e.sequence,
            "correlation_uid": r.request_id,
            "log_name": "keygate-audit",
            "log_provider": r.source,
            "product": {"name": "keygate", "vendor_name": "keygate", "version": env!("CARGO_PKG_VERSION")},
        },
        "unmapped": {
            "policy": r.policy,
            "provider_request_id": r.provider_request_id,
            "caller_gone": r.caller_gone,
            "details": details,
            "linked_sequence": e.link.as_ref().and_then(|l| l.gateway_sequence),
            "bypass": bypass,
            "format": e.format,
            "previous_hash": e.previous_hash,
            "hash": e.hash,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditRecord, GENESIS_HASH};

    #[test]
    fn an_event_maps_to_api_activity() {
        let e = AuditEvent::seal(
            3,
            GENESIS_HASH.into(),
            AuditRecord {
                time_ms: 1_700_000_000_000,
                source: "gateway".into(),
                actor: "alice".into(),
                actor_kind: "user".into(),
                action: "RotateKey".into(),
                key_id: "id".into(),
                key_name: "payments/dek".into(),
                key_uri: "local://x".into(),
                key_version: 2,
                outcome: "denied".into(),
                error_reason: "POLICY_DENIED".into(),
                client_address: "10.1.2.3:5555".into(),
                details: "{\"a\":1}".into(),
                ..Default::default()
            },
        );
        let o = event(&e);
        assert_eq!(o["class_uid"], 6003);
        assert_eq!(o["type_uid"], 600303);
        assert_eq!(o["status_id"], 2);
        assert_eq!(o["severity_id"], 3);
        assert_eq!(o["src_endpoint"]["ip"], "10.1.2.3");
        assert_eq!(o["src_endpoint"]["port"], 5555);
        assert_eq!(o["resources"][0]["data"]["provider_uri"], "local://x");
        assert_eq!(o["unmapped"]["details"]["a"], 1);
        assert_eq!(o["metadata"]["uid"], "3");
    }
}
