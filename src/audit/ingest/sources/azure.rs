//! Azure Key Vault `AuditEvent` diagnostic logs (Azure Monitor's `insights-logs-auditevent`
//! export to a storage account, one JSON record per line, or the emulator's file).
//!
//! A record carries no request id of the service's own; `correlationId` is the client's
//! `x-ms-client-request-id`, which keygate sets to its own request id. Records have no unique
//! id either, so a record's id is the SHA-256 of its content.

use super::super::record::{Normalised, Normaliser, ProviderRecord, parse_time, text};
use crate::audit::hmac::Hasher;
use aws_lc_rs::digest;
use serde_json::{Map, Value};

pub struct Azure;

fn operation(name: &str) -> &str {
    match name {
        "KeyEncrypt" => "Encrypt",
        "KeyDecrypt" => "Decrypt",
        "KeySign" => "Sign",
        "KeyVerify" => "Verify",
        "KeyWrap" => "WrapKey",
        "KeyUnwrap" => "UnwrapKey",
        "KeyCreate" => "CreateKey",
        "KeyGet" => "GetKey",
        "KeyList" => "ListKeys",
        "KeyRotate" => "RotateKey",
        "KeyUpdate" => "UpdateKey",
        "KeyDelete" => "ScheduleKeyDestruction",
        "KeyPurge" => "DestroyKey",
        "KeyRecover" => "CancelKeyDestruction",
        "KeyImport" => "ImportKey",
        other => other,
    }
}

/// (host, name, version) of `https://HOST/keys/NAME[/VERSION][?…]`.
fn key_of(url: &str) -> Option<(&str, &str, &str)> {
    let rest = url.strip_prefix("https://")?;
    let rest = rest.split('?').next()?;
    let (host, path) = rest.split_once('/')?;
    let path = path
        .strip_prefix("keys/")
        .or_else(|| path.strip_prefix("deletedkeys/"))?;
    let mut parts = path.split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let version = parts.next().unwrap_or("");
    // `…/keys/NAME/create`, `…/rotate`: a verb, not a version.
    let version = match version {
        "create" | "rotate" | "versions" | "rotationpolicy" | "recover" | "import" => "",
        v => v,
    };
    Some((host, name, version))
}

impl Normaliser for Azure {
    fn source(&self) -> &'static str {
        "azure-keyvault"
    }

    fn normalise(&self, r: &Value, _hasher: &Hasher) -> Normalised {
        let operation_name = text(r, "/operationName");
        if operation_name.is_empty() || text(r, "/time").is_empty() {
            return Normalised::Malformed(
                "not an AuditEvent record: operationName or time is missing".into(),
            );
        }
        if text(r, "/category") != "AuditEvent" {
            return Normalised::Ignored("not an AuditEvent record");
        }
        let Some(time_ms) = parse_time(text(r, "/time")) else {
            return Normalised::Malformed(format!("time '{}' is not RFC 3339", text(r, "/time")));
        };
        let status = r
            .pointer("/properties/httpStatusCode")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(0);
        let outcome = if text(r, "/resultType") == "Success" {
            "ok"
        } else if status == 401 || status == 403 {
            "denied"
        } else {
            "error"
        };
        let target = match text(r, "/properties/id") {
            "" => text(r, "/properties/requestUri"),
            id => id,
        };
        let (key_uri, native_version) = match key_of(target) {
            Some((host, name, version)) => (
                format!("azurekms://{}/keys/{name}", host.to_ascii_lowercase()),
                version.to_string(),
            ),
            None => (String::new(), String::new()),
        };
        let claim = r.pointer("/identity/claim");
        let claim_text = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| claim.and_then(|c| c.get(*n)).and_then(Value::as_str))
                .find(|v| !v.is_empty())
                .unwrap_or("")
        };
        let upn = claim_text(&[
            "upn",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
            "unique_name",
        ]);
        let app = claim_text(&["appid", "azp"]);
        let oid = claim_text(&[
            "oid",
            "http://schemas.microsoft.com/identity/claims/objectidentifier",
        ]);
        let (actor, actor_kind) = if !upn.is_empty() {
            (upn, "user")
        } else if !app.is_empty() {
            (app, "application")
        } else if !oid.is_empty() {
            (oid, "principal")
        } else {
            ("unauthenticated", "anonymous")
        };
        let correlation = text(r, "/correlationId");
        let mut azure = Map::new();
        for (name, pointer) in [
            ("operation_name", "/operationName"),
            ("operation_version", "/operationVersion"),
            ("resource_id", "/resourceId"),
            ("result_signature", "/resultSignature"),
            ("request_uri", "/properties/requestUri"),
            ("client_info", "/properties/clientInfo"),
            ("duration_ms", "/durationMs"),
            ("tenant", "/identity/claim/tid"),
        ] {
            let v = text(r, pointer);
            if !v.is_empty() {
                azure.insert(name.into(), v.into());
            }
        }
        if status != 0 {
            azure.insert("http_status".into(), status.into());
        }
        let mut details = Map::new();
        details.insert("azure".into(), Value::Object(azure));
        Normalised::Record(Box::new(ProviderRecord {
            record_id: hex::encode(
                digest::digest(&digest::SHA256, r.to_string().as_bytes()).as_ref(),
            ),
            time_ms,
            operation: operation(operation_name).to_string(),
            native_operation: operation_name.to_string(),
            actor: actor.to_string(),
            actor_kind: actor_kind.into(),
            client_address: text(r, "/callerIpAddress").to_string(),
            key_uri,
            native_version,
            outcome,
            error_code: if outcome == "ok" {
                String::new()
            } else {
                text(r, "/resultSignature").to_string()
            },
            reason: text(r, "/resultDescription").to_string(),
            provider_request_id: String::new(),
            keygate_request_id: (!correlation.is_empty()).then(|| correlation.to_string()),
            details,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the Key Vault emulator (and Azure Monitor) writes it.
    const SIGN: &str = r#"{"time":"2026-12-06T10:00:00.123456Z","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/KEYGATE-EMULATOR/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/EMULATOR","operationName":"KeySign","operationVersion":"7.5","category":"AuditEvent","resultType":"Success","resultSignature":"OK","resultDescription":"","durationMs":"3","callerIpAddress":"127.0.0.1","correlationId":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","properties":{"clientInfo":"azsdk-rust-security_keyvault_keys/1.0.1","requestUri":"https://127.0.0.1:8443/keys/payments-dek-3f9a1c2e/0a1b2c/sign?api-version=7.5","httpStatusCode":200,"id":"https://127.0.0.1:8443/keys/payments-dek-3f9a1c2e/0a1b2c"},"identity":{"claim":{"appid":"11111111-2222-3333-4444-555555555555","oid":"66666666","tid":"77777777"}}}"#;

    fn norm(text: &str) -> Normalised {
        Azure.normalise(&serde_json::from_str(text).unwrap(), &Hasher::new(&[4; 32]))
    }

    #[test]
    fn an_audit_event_normalises() {
        let Normalised::Record(r) = norm(SIGN) else {
            panic!()
        };
        assert_eq!(
            r.key_uri,
            "azurekms://127.0.0.1:8443/keys/payments-dek-3f9a1c2e"
        );
        assert_eq!(r.native_version, "0a1b2c");
        assert_eq!((r.operation.as_str(), r.outcome), ("Sign", "ok"));
        assert_eq!(
            r.keygate_request_id.as_deref(),
            Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(
            (r.actor.as_str(), r.actor_kind.as_str()),
            ("11111111-2222-3333-4444-555555555555", "application")
        );
        assert_eq!(r.record_id.len(), 64);
        // The same record has the same id; another has another.
        let Normalised::Record(again) = norm(SIGN) else {
            panic!()
        };
        assert_eq!(again.record_id, r.record_id);
    }

    #[test]
    fn a_bearer_challenge_is_denied_and_verbs_are_not_versions() {
        let challenge = SIGN
            .replace("\"resultType\":\"Success\"", "\"resultType\":\"Failure\"")
            .replace("\"resultSignature\":\"OK\"", "\"resultSignature\":\"Unauthorized\"")
            .replace("\"httpStatusCode\":200", "\"httpStatusCode\":401")
            .replace(",\"identity\":{\"claim\":{\"appid\":\"11111111-2222-3333-4444-555555555555\",\"oid\":\"66666666\",\"tid\":\"77777777\"}}", "");
        let Normalised::Record(r) = norm(&challenge) else {
            panic!()
        };
        assert_eq!((r.outcome, r.actor_kind.as_str()), ("denied", "anonymous"));
        assert_eq!(r.error_code, "Unauthorized");
        assert_eq!(
            key_of("https://h/keys/k/create?api-version=7.5"),
            Some(("h", "k", ""))
        );
        assert!(matches!(norm("{\"time\":\"x\"}"), Normalised::Malformed(_)));
        let other = SIGN.replace(
            "\"category\":\"AuditEvent\"",
            "\"category\":\"AzurePolicyEvaluationDetails\"",
        );
        assert!(matches!(norm(&other), Normalised::Ignored(_)));
    }
}
