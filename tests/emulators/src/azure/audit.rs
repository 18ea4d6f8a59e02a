//! The AuditEvent diagnostic log: one JSON object per line for every request the vault
//! answers, with the field names Azure Monitor gives Key Vault's `AuditEvent` category
//! (`time`, `resourceId`, `operationName`, `resultType`, `resultSignature`, `durationMs`,
//! `callerIpAddress`, `correlationId`, `identity.claim`, `properties.requestUri`,
//! `properties.httpStatusCode`, …). `correlationId` is the client's
//! `x-ms-client-request-id`, which is how a client joins its own records to these.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value, json};

/// The resource id the records name (the emulator has no subscription of its own).
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";
const RESOURCE_GROUP: &str = "KEYGATE-EMULATOR";

/// An append-only JSON Lines file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    resource_id: String,
}

/// What one request was and how it ended.
pub struct Record<'a> {
    pub operation: &'static str,
    pub api_version: &'a str,
    pub status: u16,
    pub duration_ms: u128,
    pub caller_ip: Option<String>,
    pub client_request_id: Option<&'a str>,
    /// `None` for a request without a token (the bearer challenge).
    pub claim: Option<Map<String, Value>>,
    pub request_uri: String,
    /// The key (or key version) URL the request was about, if any.
    pub id: Option<String>,
    pub client_info: Option<&'a str>,
    pub result_description: &'a str,
}

impl AuditLog {
    /// Opens (creating or appending to) `path`.
    pub fn open(path: &Path, managed_hsm: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let kind = if managed_hsm { "MANAGEDHSMS" } else { "VAULTS" };
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            resource_id: format!(
                "/SUBSCRIPTIONS/{SUBSCRIPTION}/RESOURCEGROUPS/{RESOURCE_GROUP}/PROVIDERS/MICROSOFT.KEYVAULT/{kind}/EMULATOR"
            ),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record; a failed write is logged, never turned into a failed request.
    pub fn append(&self, r: &Record<'_>) {
        let status = axum::http::StatusCode::from_u16(r.status).ok();
        let signature: String = status
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown")
            .split_whitespace()
            .collect();
        let mut record = json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "resourceId": self.resource_id,
            "operationName": r.operation,
            "operationVersion": r.api_version,
            "category": "AuditEvent",
            "resultType": if r.status < 400 { "Success" } else { "Failure" },
            "resultSignature": signature,
            "resultDescription": r.result_description,
            "durationMs": r.duration_ms.to_string(),
            "callerIpAddress": r.caller_ip.clone().unwrap_or_default(),
            "correlationId": r.client_request_id.unwrap_or_default(),
            "properties": {
                "clientInfo": r.client_info.unwrap_or_default(),
                "requestUri": r.request_uri,
                "httpStatusCode": r.status,
            },
        });
        if let Some(id) = &r.id {
            record["properties"]["id"] = id.clone().into();
        }
        if let Some(claim) = &r.claim {
            record["identity"] = json!({ "claim": claim });
        }
        let mut line = record.to_string();
        line.push('\n');
        match self.file.lock() {
            Ok(mut f) => {
                if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.flush()) {
                    tracing::warn!(error = %e, path = %self.path.display(), "audit log write failed");
                }
            }
            Err(_) => tracing::warn!("audit log lock poisoned"),
        }
    }
}

/// The AuditEvent `operationName` of a request, from its method and path segments.
pub fn operation_name(method: &str, segs: &[&str]) -> &'static str {
    match (method, segs) {
        ("GET", ["keys"]) => "KeyList",
        ("GET", ["deletedkeys"]) => "KeyListDeleted",
        ("POST", ["keys", _, "create"]) => "KeyCreate",
        ("PUT", ["keys", _]) => "KeyImport",
        ("DELETE", ["keys", _]) => "KeyDelete",
        ("GET", ["keys", _]) | ("GET", ["keys", _, ""]) => "KeyGet",
        ("GET", ["keys", _, "versions"]) => "KeyListVersions",
        ("POST", ["keys", _, "rotate"]) => "KeyRotate",
        ("GET", ["keys", _, "rotationpolicy"]) => "KeyRotationPolicyGet",
        ("PUT", ["keys", _, "rotationpolicy"]) => "KeyRotationPolicySet",
        ("GET", ["keys", _, _]) => "KeyGet",
        ("PATCH", ["keys", ..]) => "KeyUpdate",
        ("POST", ["keys", _, _, op]) => match *op {
            "encrypt" => "KeyEncrypt",
            "decrypt" => "KeyDecrypt",
            "wrapkey" => "KeyWrap",
            "unwrapkey" => "KeyUnwrap",
            "sign" => "KeySign",
            "verify" => "KeyVerify",
            _ => "Unknown",
        },
        ("GET", ["deletedkeys", _]) => "KeyGetDeleted",
        ("DELETE", ["deletedkeys", _]) => "KeyPurge",
        ("POST", ["deletedkeys", _, "recover"]) => "KeyRecover",
        _ => "Unknown",
    }
}

/// The key URL a request names: `BASE/keys/NAME[/VERSION]` or `BASE/deletedkeys/NAME`.
pub fn target_id(base: &str, segs: &[&str]) -> Option<String> {
    match segs {
        ["keys", name]
        | [
            "keys",
            name,
            "create" | "rotate" | "versions" | "rotationpolicy",
        ] => Some(format!("{base}/keys/{name}")),
        ["keys", name, version] | ["keys", name, version, _] => {
            Some(format!("{base}/keys/{name}/{version}"))
        }
        ["deletedkeys", name] | ["deletedkeys", name, _] => {
            Some(format!("{base}/deletedkeys/{name}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_as_key_vault_names_them() {
        assert_eq!(
            operation_name("POST", &["keys", "k", "v", "encrypt"]),
            "KeyEncrypt"
        );
        assert_eq!(
            operation_name("POST", &["keys", "k", "v", "sign"]),
            "KeySign"
        );
        assert_eq!(operation_name("PUT", &["keys", "k"]), "KeyImport");
        assert_eq!(operation_name("GET", &["keys", "k", "v"]), "KeyGet");
        assert_eq!(operation_name("DELETE", &["deletedkeys", "k"]), "KeyPurge");
        assert_eq!(
            target_id("https://h", &["keys", "k", "v", "sign"]).as_deref(),
            Some("https://h/keys/k/v")
        );
    }
}
