//! The vault's keys, their versions, soft-deleted keys and rotation policies,
//! plus their JSON shapes (JWK, attributes, `kid`, `recoveryId`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::crypto::{self, Material};
use super::errors::{KvError, KvResult};

/// Soft delete is always on, purge protection off, as in a default vault.
pub const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";
pub const RECOVERABLE_DAYS: i64 = 90;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

#[derive(Debug, Default)]
pub struct Vault {
    pub keys: BTreeMap<String, KeyItem>,
    pub deleted: BTreeMap<String, Deleted>,
    /// Managed HSM mode: `-HSM` key types only, and symmetric `oct-HSM` keys.
    pub managed_hsm: bool,
}

#[derive(Debug)]
pub struct KeyItem {
    pub name: String,
    pub versions: Vec<KeyVersion>,
    pub rotation_policy: Option<RotationPolicy>,
}

#[derive(Debug)]
pub struct Deleted {
    pub item: KeyItem,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

#[derive(Debug, Clone)]
pub struct KeyVersion {
    pub id: String,
    pub kty: &'static str,
    pub material: Material,
    pub key_ops: Vec<String>,
    pub attrs: Attrs,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Attrs {
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone)]
pub struct RotationPolicy {
    pub lifetime_actions: Vec<Value>,
    pub expiry_time: Option<String>,
    pub created: i64,
    pub updated: i64,
}

/// Key operations Key Vault knows, in its spelling.
pub const ALL_OPS: &[&str] = &[
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
    "import",
    "export",
];

/// The operations a key type supports.
pub fn supported_ops(kty: &str) -> &'static [&'static str] {
    if kty.starts_with("EC") {
        &["sign", "verify", "import"]
    } else if kty.starts_with("oct") {
        &["encrypt", "decrypt", "wrapKey", "unwrapKey", "import"]
    } else {
        &[
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
            "import",
        ]
    }
}

pub fn default_ops(kty: &str) -> Vec<String> {
    let ops: &[&str] = if kty.starts_with("EC") {
        &["sign", "verify"]
    } else if kty.starts_with("oct") {
        &["encrypt", "decrypt", "wrapKey", "unwrapKey"]
    } else {
        &[
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        ]
    };
    ops.iter().map(|s| s.to_string()).collect()
}

impl KeyVersion {
    pub fn kid(&self, base: &str, name: &str) -> String {
        format!("{base}/keys/{name}/{}", self.id)
    }

    pub fn jwk(&self, base: &str, name: &str) -> KvResult<Value> {
        let mut m = Map::new();
        m.insert("kid".into(), self.kid(base, name).into());
        m.insert("kty".into(), self.kty.into());
        m.insert("key_ops".into(), json!(self.key_ops));
        if let Material::Ec { curve, .. } = &self.material {
            m.insert("crv".into(), (*curve).into());
        }
        let members = crypto::public_members(&self.material).map_err(|e| KvError::internal(e.0))?;
        for (k, v) in members {
            m.insert(k.into(), b64url(&v).into());
        }
        Ok(Value::Object(m))
    }

    pub fn bundle(&self, base: &str, name: &str) -> KvResult<Value> {
        let mut out = json!({"key": self.jwk(base, name)?, "attributes": self.attrs.to_json()});
        if !self.tags.is_empty() {
            out["tags"] = json!(self.tags);
        }
        Ok(out)
    }

    /// The `KeyProperties` shape used by listings.
    pub fn properties(&self, kid: String) -> Value {
        let mut out = json!({"kid": kid, "attributes": self.attrs.to_json()});
        if !self.tags.is_empty() {
            out["tags"] = json!(self.tags);
        }
        out
    }

    /// Refuses an operation the key's type, key_ops, state or validity window forbid.
    pub fn check_op(&self, op: &str) -> KvResult<()> {
        if !supported_ops(self.kty).contains(&op) {
            return Err(KvError::bad_parameter(format!(
                "Key type {} does not support operation {op}.",
                self.kty
            )));
        }
        if !self.key_ops.iter().any(|o| o == op) {
            return Err(KvError::forbidden(format!(
                "Operation {op} is not permitted on this key."
            )));
        }
        if !self.attrs.enabled {
            return Err(KvError::forbidden(format!(
                "Operation {op} is not allowed on a disabled key."
            )));
        }
        let t = now();
        if self.attrs.nbf.is_some_and(|nbf| t < nbf) {
            return Err(KvError::forbidden(format!(
                "Operation {op} is not allowed: the key is not yet valid (nbf)."
            )));
        }
        if self.attrs.exp.is_some_and(|exp| t >= exp) {
            return Err(KvError::forbidden(format!(
                "Operation {op} is not allowed: the key has expired (exp)."
            )));
        }
        Ok(())
    }
}

impl Attrs {
    pub fn new(enabled: bool, nbf: Option<i64>, exp: Option<i64>) -> Self {
        let t = now();
        Self {
            enabled,
            nbf,
            exp,
            created: t,
            updated: t,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("enabled".into(), self.enabled.into());
        if let Some(nbf) = self.nbf {
            m.insert("nbf".into(), nbf.into());
        }
        if let Some(exp) = self.exp {
            m.insert("exp".into(), exp.into());
        }
        m.insert("created".into(), self.created.into());
        m.insert("updated".into(), self.updated.into());
        m.insert("recoveryLevel".into(), RECOVERY_LEVEL.into());
        m.insert("recoverableDays".into(), RECOVERABLE_DAYS.into());
        m.insert("exportable".into(), false.into());
        Value::Object(m)
    }
}

impl KeyItem {
    pub fn latest(&self) -> KvResult<&KeyVersion> {
        self.versions
            .last()
            .ok_or_else(|| KvError::key_not_found(&self.name))
    }

    /// A version by id; an empty id means the latest.
    pub fn version(&self, id: &str) -> KvResult<&KeyVersion> {
        if id.is_empty() {
            return self.latest();
        }
        self.versions
            .iter()
            .find(|v| v.id == id)
            .ok_or_else(|| KvError::key_not_found(&format!("{}/{id}", self.name)))
    }

    pub fn version_mut(&mut self, id: &str) -> KvResult<&mut KeyVersion> {
        let name = self.name.clone();
        let found = if id.is_empty() {
            self.versions.last_mut()
        } else {
            self.versions.iter_mut().find(|v| v.id == id)
        };
        found.ok_or_else(|| KvError::key_not_found(&format!("{name}/{id}")))
    }

    pub fn policy_json(&self, base: &str) -> Value {
        let id = format!("{base}/keys/{}/rotationpolicy", self.name);
        match &self.rotation_policy {
            Some(p) => {
                let mut attrs = json!({"created": p.created, "updated": p.updated});
                if let Some(e) = &p.expiry_time {
                    attrs["expiryTime"] = e.clone().into();
                }
                json!({"id": id, "lifetimeActions": p.lifetime_actions, "attributes": attrs})
            }
            // A key without a stored policy reports the service default.
            None => json!({
                "id": id,
                "lifetimeActions": [
                    {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}
                ],
                "attributes": {}
            }),
        }
    }
}

impl Deleted {
    pub fn recovery_id(&self, base: &str) -> String {
        format!("{base}/deletedkeys/{}", self.item.name)
    }

    pub fn bundle(&self, base: &str) -> KvResult<Value> {
        let mut out = self.item.latest()?.bundle(base, &self.item.name)?;
        out["recoveryId"] = self.recovery_id(base).into();
        out["deletedDate"] = self.deleted_date.into();
        out["scheduledPurgeDate"] = self.scheduled_purge_date.into();
        Ok(out)
    }

    pub fn properties(&self, base: &str) -> KvResult<Value> {
        let latest = self.item.latest()?;
        let mut out = latest.properties(format!("{base}/keys/{}", self.item.name));
        out["recoveryId"] = self.recovery_id(base).into();
        out["deletedDate"] = self.deleted_date.into();
        out["scheduledPurgeDate"] = self.scheduled_purge_date.into();
        Ok(out)
    }
}

/// Parses an ISO 8601 duration (`P90D`, `P1Y2M`, `PT12H`) into seconds.
/// Months count as 30 days and years as 365, as a policy check needs no more.
pub fn iso_duration_secs(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0i64;
    let mut any = false;
    let mut scan = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
                let n: i64 = num.parse().ok()?;
                total = total.checked_add(n.checked_mul(*mult)?)?;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    scan(
        date,
        &[
            ('Y', 365 * 86_400),
            ('M', 30 * 86_400),
            ('W', 7 * 86_400),
            ('D', 86_400),
        ],
    )?;
    if let Some(t) = time {
        scan(t, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(iso_duration_secs("P90D"), Some(90 * 86_400));
        assert_eq!(iso_duration_secs("P1Y"), Some(365 * 86_400));
        assert_eq!(iso_duration_secs("PT1H30M"), Some(5_400));
        assert_eq!(iso_duration_secs("P"), None);
        assert_eq!(iso_duration_secs("90D"), None);
        assert_eq!(iso_duration_secs("P9X"), None);
    }
}
