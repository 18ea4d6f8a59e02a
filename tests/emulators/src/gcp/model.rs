//! The emulator's resources (key rings, crypto keys, versions), their state
//! rules, and their JSON rendering.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::crypto::{self, Material};
use super::errors::{ApiError, ApiResult};
use super::names;

/// Cloud KMS's default scheduled-destruction window: 30 days.
pub const DEFAULT_DESTROY_WINDOW_SECS: i64 = 30 * 24 * 3600;

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub fn parse_ts(field: &str, s: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid(format!(
                "Invalid value at '{field}': '{s}' is not an RFC 3339 timestamp."
            ))
        })
}

/// Parses a proto3 JSON duration such as `"86400s"` or `"1.5s"` into whole seconds.
pub fn parse_duration(field: &str, s: &str) -> ApiResult<i64> {
    let bad = || {
        ApiError::invalid(format!(
            "Invalid value at '{field}': '{s}' is not a duration like '86400s'."
        ))
    };
    let secs = s.strip_suffix('s').ok_or_else(bad)?;
    let whole = secs.split('.').next().unwrap_or_default();
    whole.parse::<i64>().map_err(|_| bad())
}

#[derive(Debug, Default)]
pub struct Store {
    pub rings: BTreeMap<String, KeyRing>,
}

#[derive(Debug)]
pub struct KeyRing {
    pub name: String,
    pub create_time: DateTime<Utc>,
    pub keys: BTreeMap<String, CryptoKey>,
    pub import_jobs: BTreeMap<String, super::import::ImportJob>,
}

#[derive(Debug)]
pub struct CryptoKey {
    pub name: String,
    pub purpose: &'static str,
    pub algorithm: &'static str,
    pub protection_level: &'static str,
    pub create_time: DateTime<Utc>,
    pub rotation_period_secs: Option<i64>,
    pub next_rotation_time: Option<DateTime<Utc>>,
    pub labels: BTreeMap<String, String>,
    pub destroy_window_secs: i64,
    pub import_only: bool,
    pub primary: Option<u32>,
    pub versions: Vec<Version>,
}

#[derive(Debug)]
pub struct Version {
    pub number: u32,
    pub state: &'static str,
    pub algorithm: &'static str,
    pub create_time: DateTime<Utc>,
    pub destroy_time: Option<DateTime<Utc>>,
    pub destroy_event_time: Option<DateTime<Utc>>,
    pub material: Option<Material>,
    /// Set on versions made by `cryptoKeyVersions.import`.
    pub imported: Option<Imported>,
}

/// Where an imported version's material came from.
#[derive(Debug)]
pub struct Imported {
    pub import_job: String,
    pub import_time: DateTime<Utc>,
    /// Set when the material could not be unwrapped (state IMPORT_FAILED).
    pub failure_reason: Option<String>,
}

/// Which algorithms fit which purpose.
pub fn algorithm_purpose(algorithm: &str) -> Option<&'static str> {
    match algorithm {
        "GOOGLE_SYMMETRIC_ENCRYPTION" => Some("ENCRYPT_DECRYPT"),
        "EC_SIGN_P256_SHA256"
        | "EC_SIGN_P384_SHA384"
        | "RSA_SIGN_PSS_2048_SHA256"
        | "RSA_SIGN_PSS_3072_SHA256" => Some("ASYMMETRIC_SIGN"),
        "RSA_DECRYPT_OAEP_3072_SHA256" => Some("ASYMMETRIC_DECRYPT"),
        "HMAC_SHA256" => Some("MAC"),
        _ => None,
    }
}

impl Store {
    pub fn ring(&self, name: &str) -> ApiResult<&KeyRing> {
        self.rings
            .get(name)
            .ok_or_else(|| ApiError::not_found(&format!("KeyRing {name}")))
    }

    /// A crypto key, with pending destructions and rotations applied first.
    pub fn key_mut(&mut self, ring: &str, id: &str) -> ApiResult<&mut CryptoKey> {
        let r = self
            .rings
            .get_mut(ring)
            .ok_or_else(|| ApiError::not_found(&format!("KeyRing {ring}")))?;
        let key = r.keys.get_mut(id).ok_or_else(|| {
            ApiError::not_found(&format!("CryptoKey {}", names::key_name(ring, id)))
        })?;
        key.settle(Utc::now())?;
        Ok(key)
    }
}

impl KeyRing {
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "createTime": ts(self.create_time)})
    }
}

impl CryptoKey {
    /// Applies what time has made due: scheduled destructions that passed and
    /// automatic rotation at `nextRotationTime`.
    pub fn settle(&mut self, now: DateTime<Utc>) -> ApiResult<()> {
        for v in &mut self.versions {
            if v.state == "DESTROY_SCHEDULED" && v.destroy_time.is_some_and(|t| t <= now) {
                v.state = "DESTROYED";
                v.destroy_event_time = Some(now);
                v.material = None;
            }
        }
        if self.purpose == "ENCRYPT_DECRYPT"
            && let (Some(next), Some(period)) = (self.next_rotation_time, self.rotation_period_secs)
            && next <= now
            && period > 0
        {
            let n = self.add_version(now)?;
            self.primary = Some(n);
            let mut t = next;
            while t <= now {
                t += chrono::Duration::seconds(period);
            }
            self.next_rotation_time = Some(t);
        }
        Ok(())
    }

    /// Generates a new ENABLED version with the key's template algorithm.
    pub fn add_version(&mut self, now: DateTime<Utc>) -> ApiResult<u32> {
        let number = self.versions.iter().map(|v| v.number).max().unwrap_or(0) + 1;
        let material = crypto::generate(self.algorithm)
            .map_err(|_| ApiError::internal("Key generation failed."))?;
        self.versions.push(Version {
            number,
            state: "ENABLED",
            algorithm: self.algorithm,
            create_time: now,
            destroy_time: None,
            destroy_event_time: None,
            material: Some(material),
            imported: None,
        });
        Ok(number)
    }

    pub fn version(&self, number: u32) -> ApiResult<&Version> {
        self.versions
            .iter()
            .find(|v| v.number == number)
            .ok_or_else(|| {
                ApiError::not_found(&format!(
                    "CryptoKeyVersion {}/cryptoKeyVersions/{number}",
                    self.name
                ))
            })
    }

    pub fn version_mut(&mut self, number: u32) -> ApiResult<&mut Version> {
        let name = self.name.clone();
        self.versions
            .iter_mut()
            .find(|v| v.number == number)
            .ok_or_else(|| {
                ApiError::not_found(&format!(
                    "CryptoKeyVersion {name}/cryptoKeyVersions/{number}"
                ))
            })
    }

    pub fn version_name(&self, number: u32) -> String {
        format!("{}/cryptoKeyVersions/{number}", self.name)
    }

    /// Refuses a call that needs `purpose`.
    pub fn require_purpose(&self, purpose: &str) -> ApiResult<()> {
        if self.purpose == purpose {
            Ok(())
        } else {
            Err(ApiError::invalid(format!(
                "{} has purpose {}, but this operation requires purpose {purpose}.",
                self.name, self.purpose
            )))
        }
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), self.name.clone().into());
        if let Some(p) = self.primary.and_then(|n| self.version(n).ok()) {
            m.insert(
                "primary".into(),
                p.to_json(&self.version_name(p.number), self.protection_level),
            );
        }
        m.insert("purpose".into(), self.purpose.into());
        m.insert("createTime".into(), ts(self.create_time).into());
        if let Some(t) = self.next_rotation_time {
            m.insert("nextRotationTime".into(), ts(t).into());
        }
        if let Some(p) = self.rotation_period_secs {
            m.insert("rotationPeriod".into(), format!("{p}s").into());
        }
        m.insert(
            "versionTemplate".into(),
            json!({"protectionLevel": self.protection_level, "algorithm": self.algorithm}),
        );
        if !self.labels.is_empty() {
            m.insert("labels".into(), json!(self.labels));
        }
        if self.import_only {
            m.insert("importOnly".into(), true.into());
        }
        m.insert(
            "destroyScheduledDuration".into(),
            format!("{}s", self.destroy_window_secs).into(),
        );
        Value::Object(m)
    }
}

impl Version {
    pub fn to_json(&self, name: &str, protection_level: &str) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("state".into(), self.state.into());
        m.insert("protectionLevel".into(), protection_level.into());
        m.insert("algorithm".into(), self.algorithm.into());
        m.insert("createTime".into(), ts(self.create_time).into());
        m.insert("generateTime".into(), ts(self.create_time).into());
        if let Some(t) = self.destroy_time {
            m.insert("destroyTime".into(), ts(t).into());
        }
        if let Some(t) = self.destroy_event_time {
            m.insert("destroyEventTime".into(), ts(t).into());
        }
        if let Some(imported) = &self.imported {
            m.insert("importJob".into(), imported.import_job.clone().into());
            m.insert("importTime".into(), ts(imported.import_time).into());
            if let Some(reason) = &imported.failure_reason {
                m.insert("importFailureReason".into(), reason.clone().into());
            }
        }
        Value::Object(m)
    }

    /// The version's material, if its state lets it be used.
    pub fn usable(&self, name: &str) -> ApiResult<&Material> {
        if self.state != "ENABLED" {
            return Err(ApiError::precondition(format!(
                "{name} is not enabled, current state is: {}.",
                self.state
            )));
        }
        self.material
            .as_ref()
            .ok_or_else(|| ApiError::precondition(format!("{name} has no key material.")))
    }
}
