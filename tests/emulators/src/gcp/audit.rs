//! Cloud Audit Logs: one `LogEntry` per API call, appended as a JSON Lines file.
//!
//! Field names are those of Cloud Logging's `LogEntry` and the `AuditLog` payload as Google
//! documents them, so what reads this file reads an export of real Cloud KMS audit logs
//! (a sink to Cloud Storage or `gcloud logging read --format=json`, one entry per line):
//!
//! - `logName`: `projects/P/logs/cloudaudit.googleapis.com%2Factivity` for methods that
//!   need an ADMIN_WRITE permission (create, update, destroy, restore, import), else
//!   `…%2Fdata_access` (reads of metadata, and every cryptographic operation);
//! - `timestamp`, `receiveTimestamp`, `insertId`, `severity`, `resource` (`type`
//!   `cloudkms_keyring`, `cloudkms_cryptokey`, `cloudkms_cryptokeyversion`,
//!   `cloudkms_importjob` or `audited_resource`, and `labels`);
//! - `protoPayload`: `@type` `type.googleapis.com/google.cloud.audit.AuditLog`,
//!   `serviceName` `cloudkms.googleapis.com`, `methodName` (`Encrypt`, `CreateCryptoKey`,
//!   …), `resourceName`, `authenticationInfo.principalEmail`, `authorizationInfo`,
//!   `requestMetadata.callerIp` and `.callerSuppliedUserAgent` (the request's User-Agent,
//!   as sent), `status` (`{}` on success, else `code` and `message`), `request` (its `@type`
//!   and the resource name; never plaintext, ciphertext or key material) and, on success,
//!   `response` (`@type` and `name` when the reply has one).
//!
//! Requests refused by the test hooks (injected 429/503) are not logged: they stand for
//! Google's front end refusing a request before it reaches Cloud KMS.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::model::ts;
use super::names::{Resource, Tail, Target};

/// The principal every entry names: the emulator checks no credentials.
pub const DEFAULT_PRINCIPAL: &str = "keygate-tests@keygate-emulator.iam.gserviceaccount.com";

pub struct AuditLog {
    file: Mutex<std::fs::File>,
    principal: String,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

/// What one call was, for its entry.
pub struct Call {
    method: &'static str,
    permission: &'static str,
    admin_write: bool,
    resource_name: String,
    resource_type: &'static str,
    labels: Map<String, Value>,
    project: String,
}

impl Call {
    /// The audited method a request is, or `None` for one the emulator does not implement.
    pub fn of(target: &Target, http_method: &str) -> Option<Call> {
        use Resource as R;
        use Tail as T;
        let verb = target.verb.as_deref();
        let (method, permission, admin_write): (&'static str, &'static str, bool) =
            match (&target.resource, target.tail, http_method, verb) {
                (R::Location { .. }, T::KeyRings, "GET", None) => {
                    ("ListKeyRings", "cloudkms.keyRings.list", false)
                }
                (R::Location { .. }, T::KeyRings, "POST", None) => {
                    ("CreateKeyRing", "cloudkms.keyRings.create", true)
                }
                (R::KeyRing { .. }, T::None, "GET", None) => {
                    ("GetKeyRing", "cloudkms.keyRings.get", false)
                }
                (R::KeyRing { .. }, T::CryptoKeys, "GET", None) => {
                    ("ListCryptoKeys", "cloudkms.cryptoKeys.list", false)
                }
                (R::KeyRing { .. }, T::CryptoKeys, "POST", None) => {
                    ("CreateCryptoKey", "cloudkms.cryptoKeys.create", true)
                }
                (R::KeyRing { .. }, T::ImportJobs, "GET", None) => {
                    ("ListImportJobs", "cloudkms.importJobs.list", false)
                }
                (R::KeyRing { .. }, T::ImportJobs, "POST", None) => {
                    ("CreateImportJob", "cloudkms.importJobs.create", true)
                }
                (R::ImportJob { .. }, T::None, "GET", None) => {
                    ("GetImportJob", "cloudkms.importJobs.get", false)
                }
                (R::CryptoKey { .. }, T::None, "GET", None) => {
                    ("GetCryptoKey", "cloudkms.cryptoKeys.get", false)
                }
                (R::CryptoKey { .. }, T::None, "PATCH", None) => {
                    ("UpdateCryptoKey", "cloudkms.cryptoKeys.update", true)
                }
                (R::CryptoKey { .. }, T::None, "POST", Some("updatePrimaryVersion")) => (
                    "UpdateCryptoKeyPrimaryVersion",
                    "cloudkms.cryptoKeys.update",
                    true,
                ),
                (R::CryptoKey { .. } | R::Version { .. }, T::None, "POST", Some("encrypt")) => {
                    ("Encrypt", "cloudkms.cryptoKeyVersions.useToEncrypt", false)
                }
                (R::CryptoKey { .. }, T::None, "POST", Some("decrypt")) => {
                    ("Decrypt", "cloudkms.cryptoKeyVersions.useToDecrypt", false)
                }
                (R::CryptoKey { .. }, T::Versions, "GET", None) => (
                    "ListCryptoKeyVersions",
                    "cloudkms.cryptoKeyVersions.list",
                    false,
                ),
                (R::CryptoKey { .. }, T::Versions, "POST", None) => (
                    "CreateCryptoKeyVersion",
                    "cloudkms.cryptoKeyVersions.create",
                    true,
                ),
                (R::CryptoKey { .. }, T::Versions, "POST", Some("import")) => (
                    "ImportCryptoKeyVersion",
                    "cloudkms.cryptoKeyVersions.create",
                    true,
                ),
                (R::Version { .. }, T::None, "GET", None) => (
                    "GetCryptoKeyVersion",
                    "cloudkms.cryptoKeyVersions.get",
                    false,
                ),
                (R::Version { .. }, T::None, "PATCH", None) => (
                    "UpdateCryptoKeyVersion",
                    "cloudkms.cryptoKeyVersions.update",
                    true,
                ),
                (R::Version { .. }, T::None, "POST", Some("destroy")) => (
                    "DestroyCryptoKeyVersion",
                    "cloudkms.cryptoKeyVersions.destroy",
                    true,
                ),
                (R::Version { .. }, T::None, "POST", Some("restore")) => (
                    "RestoreCryptoKeyVersion",
                    "cloudkms.cryptoKeyVersions.restore",
                    true,
                ),
                (R::Version { .. }, T::None, "POST", Some("asymmetricSign")) => (
                    "AsymmetricSign",
                    "cloudkms.cryptoKeyVersions.useToSign",
                    false,
                ),
                (R::Version { .. }, T::None, "POST", Some("asymmetricDecrypt")) => (
                    "AsymmetricDecrypt",
                    "cloudkms.cryptoKeyVersions.useToDecrypt",
                    false,
                ),
                (R::Version { .. }, T::None, "POST", Some("macSign")) => {
                    ("MacSign", "cloudkms.cryptoKeyVersions.useToSign", false)
                }
                (R::Version { .. }, T::None, "POST", Some("macVerify")) => {
                    ("MacVerify", "cloudkms.cryptoKeyVersions.useToVerify", false)
                }
                (R::Version { .. }, T::PublicKey, "GET", None) => (
                    "GetPublicKey",
                    "cloudkms.cryptoKeyVersions.viewPublicKey",
                    false,
                ),
                _ => return None,
            };
        let (resource_name, resource_type) = match &target.resource {
            R::Location { parent } => (parent.clone(), "audited_resource"),
            R::KeyRing { name } => (name.clone(), "cloudkms_keyring"),
            R::CryptoKey { ring, id } => (format!("{ring}/cryptoKeys/{id}"), "cloudkms_cryptokey"),
            R::Version { ring, key, number } => (
                format!("{ring}/cryptoKeys/{key}/cryptoKeyVersions/{number}"),
                "cloudkms_cryptokeyversion",
            ),
            R::ImportJob { ring, id } => (format!("{ring}/importJobs/{id}"), "cloudkms_importjob"),
        };
        let parts: Vec<&str> = resource_name.split('/').collect();
        let part = |i: usize| parts.get(i).copied().unwrap_or_default().to_string();
        let mut labels = Map::new();
        labels.insert("project_id".into(), part(1).into());
        labels.insert("location".into(), part(3).into());
        if resource_type == "audited_resource" {
            labels.insert("service".into(), "cloudkms.googleapis.com".into());
            labels.insert("method".into(), method.into());
        } else {
            labels.insert("key_ring_id".into(), part(5).into());
        }
        match resource_type {
            "cloudkms_cryptokey" | "cloudkms_cryptokeyversion" => {
                labels.insert("crypto_key_id".into(), part(7).into());
            }
            "cloudkms_importjob" => {
                labels.insert("import_job_id".into(), part(7).into());
            }
            _ => {}
        }
        if resource_type == "cloudkms_cryptokeyversion" {
            labels.insert("crypto_key_version_id".into(), part(9).into());
        }
        Some(Call {
            method,
            permission,
            admin_write,
            project: part(1),
            resource_name,
            resource_type,
            labels,
        })
    }
}

impl AuditLog {
    /// Appends to `path`, creating it if needed.
    pub fn open(path: &Path, principal: &str) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
            principal: principal.to_string(),
        })
    }

    /// Appends the entry for `call`, which ended with `outcome`.
    pub fn record(
        &self,
        call: &Call,
        peer: Option<SocketAddr>,
        user_agent: Option<&str>,
        outcome: Result<&Value, &ApiError>,
    ) {
        let now = Utc::now();
        let log = if call.admin_write {
            "activity"
        } else {
            "data_access"
        };
        let status = match outcome {
            Ok(_) => json!({}),
            Err(e) => json!({"code": e.code.number(), "message": e.message}),
        };
        let mut request_metadata = Map::new();
        if let Some(peer) = peer {
            request_metadata.insert("callerIp".into(), peer.ip().to_string().into());
        }
        if let Some(ua) = user_agent {
            request_metadata.insert("callerSuppliedUserAgent".into(), ua.into());
        }
        request_metadata.insert(
            "requestAttributes".into(),
            json!({"time": ts(now), "auth": {}}),
        );
        request_metadata.insert("destinationAttributes".into(), json!({}));
        let name_field = if call.method.starts_with("Create") || call.method.starts_with("List") {
            "parent"
        } else {
            "name"
        };
        let mut payload = json!({
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": status,
            "authenticationInfo": {"principalEmail": self.principal},
            "requestMetadata": Value::Object(request_metadata),
            "serviceName": "cloudkms.googleapis.com",
            "methodName": call.method,
            "authorizationInfo": [{
                "resource": call.resource_name,
                "permission": call.permission,
                "granted": true,
                "resourceAttributes": {},
            }],
            "resourceName": call.resource_name,
            "request": {
                "@type": format!("type.googleapis.com/google.cloud.kms.v1.{}Request", call.method),
                (name_field): call.resource_name,
            },
        });
        if let Ok(reply) = outcome {
            let mut response = Map::new();
            response.insert(
                "@type".into(),
                format!(
                    "type.googleapis.com/google.cloud.kms.v1.{}Response",
                    call.method
                )
                .into(),
            );
            if let Some(name) = reply.get("name") {
                response.insert("name".into(), name.clone());
            }
            payload["response"] = Value::Object(response);
        }
        let severity = match (outcome.is_ok(), call.admin_write) {
            (false, _) => "ERROR",
            (true, true) => "NOTICE",
            (true, false) => "INFO",
        };
        let entry = json!({
            "protoPayload": payload,
            "insertId": uuid::Uuid::new_v4().simple().to_string(),
            "resource": {"type": call.resource_type, "labels": Value::Object(call.labels.clone())},
            "timestamp": ts(now),
            "severity": severity,
            "logName": format!("projects/{}/logs/cloudaudit.googleapis.com%2F{log}", call.project),
            "receiveTimestamp": ts(Utc::now()),
        });
        let mut line = entry.to_string();
        line.push('\n');
        match self.file.lock() {
            Ok(mut f) => {
                if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.flush()) {
                    tracing::warn!(error = %e, "cannot append to the Cloud KMS emulator's audit log");
                }
            }
            Err(_) => tracing::warn!("the Cloud KMS emulator's audit log lock is poisoned"),
        }
    }
}
