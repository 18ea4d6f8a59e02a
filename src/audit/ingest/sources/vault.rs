//! OpenBao / HashiCorp Vault file audit device records.
//!
//! Each request is logged twice, as a `request` and a `response` record with the same
//! `request.id`; the response holds everything (the outcome included), so it is the one
//! ingested. Vault HMACs tokens, accessors and request/response data itself; keygate keeps
//! the HMACs it finds (Vault's `sys/audit-hash` finds them) and never copies `data` values,
//! only their field names. Only requests to Transit mounts are key operations.

use super::super::record::{Normalised, Normaliser, ProviderRecord, parse_time, text};
use super::one_line;
use crate::audit::hmac::Hasher;
use serde_json::{Map, Value, json};

/// The request header carrying keygate's request id, as Vault logs audited headers.
pub const REQUEST_ID_HEADER: &str = "x-keygate-request-id";

pub struct Vault;

/// keygate's operation and the key name for a Transit path (after the mount).
fn transit_operation<'a>(
    rest: &'a str,
    operation: &str,
    data: Option<&Value>,
) -> Option<(String, &'a str)> {
    let segments: Vec<&str> = rest.split('/').collect();
    let has = |field: &str| data.and_then(|d| d.get(field)).is_some();
    let op = |name: &str| name.to_string();
    Some(match segments.as_slice() {
        ["encrypt", name] => (op("Encrypt"), *name),
        ["decrypt", name] => (op("Decrypt"), *name),
        ["rewrap", name] => (op("ReEncrypt"), *name),
        ["datakey", _, name] => (op("GenerateDataKey"), *name),
        ["sign", name] | ["sign", name, _] => (op("Sign"), *name),
        ["verify", name] | ["verify", name, _] if has("hmac") => (op("VerifyMac"), *name),
        ["verify", name] | ["verify", name, _] => (op("Verify"), *name),
        ["hmac", name] | ["hmac", name, _] => (op("GenerateMac"), *name),
        ["keys", name] => match operation {
            "create" | "update" => (op("CreateKey"), *name),
            "read" => (op("GetKey"), *name),
            "delete" => (op("DestroyKey"), *name),
            other => (format!("transit/keys/{other}"), *name),
        },
        ["keys", name, "rotate"] => (op("RotateKey"), *name),
        ["keys", name, "config"] => (op("UpdateKeyConfig"), *name),
        ["keys", name, "trim"] => (op("TrimKeyVersions"), *name),
        ["keys", name, "import" | "import_version"] => (op("ImportKey"), *name),
        ["keys", name, "soft-delete"] => (op("SoftDeleteKey"), *name),
        ["keys", name, "soft-delete-restore"] => (op("RestoreKey"), *name),
        ["export", _, name] | ["export", _, name, _] => (op("ExportKey"), *name),
        ["backup", name] => (op("BackupKey"), *name),
        ["restore", name] => (op("RestoreKeyBackup"), *name),
        ["keys"] | [""] => (op("ListKeys"), ""),
        ["wrapping_key"] => (op("GetWrappingKey"), ""),
        ["random", ..] | ["hash", ..] | ["cache-config"] => return None,
        _ => (format!("transit/{rest}"), ""),
    })
}

impl Normaliser for Vault {
    fn source(&self) -> &'static str {
        "vault"
    }

    fn normalise(&self, r: &Value, hasher: &Hasher) -> Normalised {
        let Some(request) = r.get("request").filter(|v| v.is_object()) else {
            return Normalised::Malformed(
                "not an OpenBao/Vault audit record: no `request` object".into(),
            );
        };
        match text(r, "/type") {
            "response" => {}
            "request" => return Normalised::Ignored("the request half (its response is ingested)"),
            other => {
                return Normalised::Malformed(format!(
                    "not an OpenBao/Vault audit record: type '{other}' (expected request or response)"
                ));
            }
        }
        let Some(time_ms) = parse_time(text(r, "/time")) else {
            return Normalised::Malformed(format!("time '{}' is not RFC 3339", text(r, "/time")));
        };
        let path = text(r, "/request/path");
        let mount_type = text(r, "/request/mount_type");
        let mount = text(r, "/request/mount_point").trim_end_matches('/');
        if mount_type != "transit" || mount.is_empty() {
            return Normalised::Ignored("not a Transit request");
        }
        // (Vault's own internal requests, such as dev mode mounting `secret/`, have no id; they
        // are not Transit requests.)
        let id = text(r, "/request/id");
        if id.is_empty() {
            return Normalised::Malformed("the Transit record has no request.id".into());
        }
        let rest = path
            .strip_prefix(mount)
            .map(|p| p.trim_start_matches('/'))
            .unwrap_or(path);
        let operation = text(r, "/request/operation");
        let Some((op, key)) = transit_operation(rest, operation, request.get("data")) else {
            return Normalised::Ignored("not a key operation (random bytes, hashing, cache)");
        };
        let error = text(r, "/error");
        let outcome = if error.is_empty() {
            "ok"
        } else if error.contains("permission denied") {
            "denied"
        } else {
            "error"
        };
        let display_name = text(r, "/auth/display_name");
        let actor = if display_name.is_empty() {
            "unauthenticated".to_string()
        } else {
            display_name.to_string()
        };
        let address = text(r, "/request/remote_address");
        let client_address = match r.pointer("/request/remote_port").and_then(Value::as_u64) {
            Some(port) if !address.is_empty() => format!("{address}:{port}"),
            _ => address.to_string(),
        };
        let native_version = r
            .pointer("/response/data/key_version")
            .or_else(|| r.pointer("/request/data/key_version"))
            .and_then(Value::as_u64)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let keygate_request_id = request
            .pointer(&format!("/headers/{REQUEST_ID_HEADER}/0"))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && !v.starts_with("hmac-sha256:"))
            .map(str::to_string);
        let fields: Vec<&String> = request
            .get("data")
            .and_then(Value::as_object)
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        let mut vault = Map::new();
        vault.insert("path".into(), path.into());
        vault.insert("operation".into(), operation.into());
        vault.insert("mount".into(), mount.into());
        vault.insert("namespace".into(), text(r, "/request/namespace/id").into());
        vault.insert("token_type".into(), text(r, "/auth/token_type").into());
        for (name, pointer) in [
            ("client_token", "/auth/client_token"),
            ("token_accessor", "/auth/accessor"),
            ("request_client_token", "/request/client_token"),
        ] {
            let v = text(r, pointer);
            if !v.is_empty() {
                vault.insert(name.into(), hasher.protect(v).into());
            }
        }
        if let Some(policies) = r.pointer("/auth/policies") {
            vault.insert("policies".into(), policies.clone());
        }
        let entity = text(r, "/auth/entity_id");
        if !entity.is_empty() {
            vault.insert("entity_id".into(), entity.into());
        }
        vault.insert("request_fields".into(), json!(fields));
        let mut details = Map::new();
        details.insert("vault".into(), Value::Object(vault));
        Normalised::Record(Box::new(ProviderRecord {
            record_id: format!("response:{id}"),
            time_ms,
            native_operation: format!("{operation} {path}"),
            operation: op,
            actor,
            actor_kind: "vault-token".into(),
            client_address,
            key_uri: if key.is_empty() {
                String::new()
            } else {
                format!("hashivault://{mount}/keys/{key}")
            },
            native_version,
            outcome,
            error_code: if outcome == "denied" {
                "PERMISSION_DENIED".into()
            } else {
                String::new()
            },
            reason: one_line(error),
            provider_request_id: id.to_string(),
            keygate_request_id,
            details,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response record as OpenBao 2.7's file device writes it.
    const ENCRYPT: &str = r#"{"time":"2026-12-06T05:14:23.801884929Z","type":"response","auth":{"client_token":"hmac-sha256:6a5b","accessor":"hmac-sha256:237e","display_name":"token","policies":["root"],"token_policies":["root"],"token_type":"service","token_issue_time":"2026-12-06T05:14:20Z"},"request":{"id":"0e454a2c-dec3-8dbd-0eba-ad9df5db9cd0","client_id":"0DHq","operation":"update","mount_point":"transit/","mount_type":"transit","mount_accessor":"transit_5c93511a","mount_class":"secret","client_token":"hmac-sha256:6a5b","client_token_accessor":"hmac-sha256:237e","namespace":{"id":"root"},"path":"transit/encrypt/k1","data":{"plaintext":"hmac-sha256:f7a3"},"remote_address":"127.0.0.1","remote_port":60608,"headers":{"x-keygate-request-id":["abc-123"]}},"response":{"mount_point":"transit/","mount_type":"transit","data":{"ciphertext":"hmac-sha256:dd30","key_version":1}}}"#;

    const DENIED: &str = r#"{"time":"2026-12-06T05:14:23.825912989Z","type":"response","auth":{"token_type":"default"},"request":{"id":"e3ff8ecc","operation":"update","mount_point":"transit/","mount_type":"transit","client_token":"hmac-sha256:c7d0","namespace":{"id":"root"},"path":"transit/encrypt/k1","data":{"plaintext":"hmac-sha256:f7a3"},"remote_address":"127.0.0.1","remote_port":60624},"response":{"data":{"error":"hmac-sha256:ad8b"}},"error":"1 error occurred:\n\t* permission denied\n\n"}"#;

    fn norm(text: &str) -> Normalised {
        Vault.normalise(&serde_json::from_str(text).unwrap(), &Hasher::new(&[1; 32]))
    }

    #[test]
    fn a_transit_response_is_a_key_operation() {
        let Normalised::Record(r) = norm(ENCRYPT) else {
            panic!("{:?}", norm(ENCRYPT))
        };
        assert_eq!(r.operation, "Encrypt");
        assert_eq!(r.key_uri, "hashivault://transit/keys/k1");
        assert_eq!(
            r.provider_request_id,
            "0e454a2c-dec3-8dbd-0eba-ad9df5db9cd0"
        );
        assert_eq!(r.record_id, "response:0e454a2c-dec3-8dbd-0eba-ad9df5db9cd0");
        assert_eq!(r.keygate_request_id.as_deref(), Some("abc-123"));
        assert_eq!(r.outcome, "ok");
        assert_eq!(r.native_version, "1");
        assert_eq!(r.client_address, "127.0.0.1:60608");
        assert_eq!(r.actor, "token");
        let text = serde_json::to_string(&r.details).unwrap();
        assert!(text.contains("hmac-sha256:237e"), "{text}");
        assert!(text.contains("\"plaintext\""), "{text}");
        assert!(
            !text.contains("f7a3"),
            "data values are never copied: {text}"
        );
    }

    #[test]
    fn a_refused_token_is_denied() {
        let Normalised::Record(r) = norm(DENIED) else {
            panic!()
        };
        assert_eq!((r.outcome, r.actor.as_str()), ("denied", "unauthenticated"));
        assert_eq!(r.reason, "1 error occurred: * permission denied");
        assert_eq!(r.keygate_request_id, None);
    }

    #[test]
    fn request_halves_other_mounts_and_garbage_are_told_apart() {
        let request = ENCRYPT.replace("\"type\":\"response\"", "\"type\":\"request\"");
        assert!(matches!(norm(&request), Normalised::Ignored(_)));
        let sys = ENCRYPT
            .replace("\"mount_type\":\"transit\"", "\"mount_type\":\"system\"")
            .replace("transit/encrypt/k1", "sys/health");
        assert!(matches!(norm(&sys), Normalised::Ignored(_)));
        assert!(matches!(norm("{\"a\":1}"), Normalised::Malformed(_)));
        assert!(matches!(
            norm(&ENCRYPT.replace("2026-12-06T05:14:23.801884929Z", "soon")),
            Normalised::Malformed(_)
        ));
        let sign = ENCRYPT.replace("transit/encrypt/k1", "transit/sign/k1/sha2-256");
        let Normalised::Record(r) = norm(&sign) else {
            panic!()
        };
        assert_eq!(
            (r.operation.as_str(), r.key_uri.as_str()),
            ("Sign", "hashivault://transit/keys/k1")
        );
        let nested = ENCRYPT
            .replace(
                "\"mount_point\":\"transit/\"",
                "\"mount_point\":\"kms/transit/\"",
            )
            .replace("transit/encrypt/k1", "kms/transit/keys/k1/rotate");
        let Normalised::Record(r) = norm(&nested) else {
            panic!()
        };
        assert_eq!(
            (r.operation.as_str(), r.key_uri.as_str()),
            ("RotateKey", "hashivault://kms/transit/keys/k1")
        );
    }
}
