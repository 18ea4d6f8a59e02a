//! Google Cloud Audit Logs of Cloud KMS: Cloud Logging `LogEntry` objects whose
//! `protoPayload` is an `AuditLog` from `cloudkms.googleapis.com`, one per line (a log sink's
//! export to Cloud Storage, `gcloud logging read --format=json`, or the emulator's file).
//!
//! Cloud KMS gives no request id; keygate's is in `requestMetadata.callerSuppliedUserAgent`
//! (`keygate-request-id/…`), which is how a record finds its gateway call.

use super::super::record::{
    Normalised, Normaliser, ProviderRecord, parse_time, request_id_in_user_agent, text,
};
use crate::audit::hmac::Hasher;
use aws_lc_rs::digest;
use serde_json::{Map, Value};

pub struct Gcp;

fn operation(method: &str) -> &str {
    match method {
        "Encrypt" | "RawEncrypt" => "Encrypt",
        "Decrypt" | "RawDecrypt" | "AsymmetricDecrypt" => "Decrypt",
        "AsymmetricSign" => "Sign",
        "MacSign" => "GenerateMac",
        "MacVerify" => "VerifyMac",
        "GetPublicKey" => "GetPublicKey",
        "CreateCryptoKey" => "CreateKey",
        "CreateCryptoKeyVersion" => "RotateKey",
        "GetCryptoKey" | "GetCryptoKeyVersion" => "GetKey",
        "ListCryptoKeys" => "ListKeys",
        "DestroyCryptoKeyVersion" => "ScheduleKeyDestruction",
        "RestoreCryptoKeyVersion" => "CancelKeyDestruction",
        "ImportCryptoKeyVersion" => "ImportKey",
        other => other,
    }
}

/// The gRPC code names Cloud Audit Logs' `status.code` numbers stand for.
fn code_name(code: i64) -> &'static str {
    match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "ERROR",
    }
}

impl Normaliser for Gcp {
    fn source(&self) -> &'static str {
        "gcp-kms"
    }

    fn normalise(&self, r: &Value, _hasher: &Hasher) -> Normalised {
        let Some(payload) = r.get("protoPayload").filter(|p| p.is_object()) else {
            return Normalised::Malformed("not a Cloud Audit Logs entry: no protoPayload".into());
        };
        if text(payload, "/serviceName") != "cloudkms.googleapis.com" {
            return Normalised::Ignored("not a Cloud KMS entry");
        }
        let full_method = text(payload, "/methodName");
        if full_method.is_empty() {
            return Normalised::Malformed("the entry has no protoPayload.methodName".into());
        }
        let method = full_method.rsplit('.').next().unwrap_or(full_method);
        let Some(time_ms) = parse_time(text(r, "/timestamp")) else {
            return Normalised::Malformed(format!(
                "timestamp '{}' is not RFC 3339",
                text(r, "/timestamp")
            ));
        };
        let resource = text(payload, "/resourceName");
        let (key, mut version) = match resource.split_once("/cryptoKeyVersions/") {
            Some((key, version)) => (key, version),
            None => (resource, ""),
        };
        // An encryption names the key; the reply names the version that did it.
        if version.is_empty() {
            version = text(payload, "/response/name")
                .split_once("/cryptoKeyVersions/")
                .map_or("", |(_, v)| v);
        }
        let key_uri = if key.contains("/cryptoKeys/") {
            format!("gcpkms://{key}")
        } else {
            String::new()
        };
        let code = payload
            .pointer("/status/code")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let outcome = match code {
            0 => "ok",
            7 | 16 => "denied",
            _ => "error",
        };
        let principal = text(payload, "/authenticationInfo/principalEmail");
        let user_agent = text(payload, "/requestMetadata/callerSuppliedUserAgent");
        let record_id = match text(r, "/insertId") {
            "" => hex::encode(digest::digest(&digest::SHA256, r.to_string().as_bytes()).as_ref()),
            id => id.to_string(),
        };
        let mut gcp = Map::new();
        for (name, v) in [
            ("method", full_method),
            ("log_name", text(r, "/logName")),
            ("resource_type", text(r, "/resource/type")),
            ("resource_name", resource),
            ("user_agent", user_agent),
            ("severity", text(r, "/severity")),
            (
                "permission",
                text(payload, "/authorizationInfo/0/permission"),
            ),
        ] {
            if !v.is_empty() {
                gcp.insert(name.into(), v.into());
            }
        }
        if let Some(granted) = payload.pointer("/authorizationInfo/0/granted") {
            gcp.insert("granted".into(), granted.clone());
        }
        let mut details = Map::new();
        details.insert("gcp".into(), Value::Object(gcp));
        Normalised::Record(Box::new(ProviderRecord {
            record_id,
            time_ms,
            operation: operation(method).to_string(),
            native_operation: full_method.to_string(),
            actor: if principal.is_empty() {
                "unauthenticated".into()
            } else {
                principal.to_string()
            },
            actor_kind: if principal.ends_with(".gserviceaccount.com") {
                "service-account".into()
            } else if principal.is_empty() {
                "anonymous".into()
            } else {
                "user".into()
            },
            client_address: text(payload, "/requestMetadata/callerIp").to_string(),
            key_uri,
            native_version: version.to_string(),
            outcome,
            error_code: if code == 0 {
                String::new()
            } else {
                code_name(code).to_string()
            },
            reason: text(payload, "/status/message").to_string(),
            provider_request_id: String::new(),
            keygate_request_id: request_id_in_user_agent(user_agent),
            details,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry as the Cloud KMS emulator (and Cloud Logging) writes it.
    const ENCRYPT: &str = r#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","status":{},"authenticationInfo":{"principalEmail":"keygate-tests@keygate-emulator.iam.gserviceaccount.com"},"requestMetadata":{"callerIp":"127.0.0.1","callerSuppliedUserAgent":"keygate/0.1.0 keygate-request-id/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b,gzip(gfe)","requestAttributes":{"time":"2026-12-06T10:00:00.123456Z","auth":{}},"destinationAttributes":{}},"serviceName":"cloudkms.googleapis.com","methodName":"Encrypt","authorizationInfo":[{"resource":"projects/p/locations/global/keyRings/r/cryptoKeys/k","permission":"cloudkms.cryptoKeyVersions.useToEncrypt","granted":true,"resourceAttributes":{}}],"resourceName":"projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3","request":{"@type":"type.googleapis.com/google.cloud.kms.v1.EncryptRequest","name":"projects/p/locations/global/keyRings/r/cryptoKeys/k"},"response":{"@type":"type.googleapis.com/google.cloud.kms.v1.EncryptResponse","name":"projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3"}},"insertId":"5f1c0a0b1c2d3e4f","resource":{"type":"cloudkms_cryptokey","labels":{"project_id":"p","location":"global","key_ring_id":"r","crypto_key_id":"k"}},"timestamp":"2026-12-06T10:00:00.123456Z","severity":"INFO","logName":"projects/p/logs/cloudaudit.googleapis.com%2Fdata_access","receiveTimestamp":"2026-12-06T10:00:00.2Z"}"#;

    fn norm(text: &str) -> Normalised {
        Gcp.normalise(&serde_json::from_str(text).unwrap(), &Hasher::new(&[3; 32]))
    }

    #[test]
    fn a_cloud_kms_entry_normalises() {
        let Normalised::Record(r) = norm(ENCRYPT) else {
            panic!()
        };
        assert_eq!(r.record_id, "5f1c0a0b1c2d3e4f");
        assert_eq!(
            r.key_uri,
            "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k"
        );
        assert_eq!(r.native_version, "3");
        assert_eq!((r.operation.as_str(), r.outcome), ("Encrypt", "ok"));
        assert_eq!(
            r.keygate_request_id.as_deref(),
            Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(r.actor_kind, "service-account");
        assert_eq!(r.client_address, "127.0.0.1");
        assert_eq!(r.time_ms % 1000, 123);
    }

    #[test]
    fn failures_other_services_and_garbage() {
        let denied = ENCRYPT.replace(
            "\"status\":{}",
            "\"status\":{\"code\":7,\"message\":\"Permission denied\"}",
        );
        let Normalised::Record(r) = norm(&denied) else {
            panic!()
        };
        assert_eq!(
            (r.outcome, r.error_code.as_str()),
            ("denied", "PERMISSION_DENIED")
        );
        let full = ENCRYPT.replace(
            "\"methodName\":\"Encrypt\"",
            "\"methodName\":\"google.cloud.kms.v1.KeyManagementService.AsymmetricSign\"",
        );
        let Normalised::Record(r) = norm(&full) else {
            panic!()
        };
        assert_eq!(r.operation, "Sign");
        let other = ENCRYPT.replace(
            "cloudkms.googleapis.com\",\"methodName",
            "storage.googleapis.com\",\"methodName",
        );
        assert!(matches!(norm(&other), Normalised::Ignored(_)));
        assert!(matches!(
            norm("{\"textPayload\":\"x\"}"),
            Normalised::Malformed(_)
        ));
    }
}
