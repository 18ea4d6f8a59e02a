//! Import jobs and `cryptoKeyVersions.import`, with real unwrapping.
//!
//! An import job holds an RSA key pair made at creation (3072 or 4096 bits, as its method
//! says) and is ACTIVE for three days, as Cloud KMS's are. Imported material is unwrapped
//! the way Cloud KMS documents it:
//!
//! - `RSA_OAEP_{3072,4096}_{SHA1,SHA256}_AES_256`: the wrapped key is an RSA-OAEP
//!   ciphertext (MGF1 with the same hash, no label) of a fresh AES-256 key, followed by the
//!   material wrapped under that key with AES-KWP (RFC 5649);
//! - `RSA_OAEP_{3072,4096}_SHA256`: the material itself, RSA-OAEP-SHA-256 encrypted
//!   (symmetric keys only: it must fit one RSA block).
//!
//! The material is raw key bytes for symmetric and HMAC keys and a PKCS#8 private key for
//! asymmetric ones. It is then the version's material: it encrypts, signs or MACs like any.
//! A request that is malformed is refused at once; material that does not unwrap or parse
//! makes a version in state IMPORT_FAILED with an `importFailureReason`, as Cloud KMS
//! reports a failed import.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, RsaKeyPair,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use zeroize::Zeroize;

use super::crypto::Material;
use super::errors::{ApiError, ApiResult, Code};
use super::json::{self as pj, ALGORITHM, IMPORT_METHOD, PROTECTION_LEVEL};
use super::model::{self, CryptoKey, Imported, Store, Version, ts};
use super::names;

/// How long an import job accepts material: three days, as in Cloud KMS.
const LIFETIME_SECS: i64 = 3 * 24 * 3600;

pub struct ImportJob {
    pub name: String,
    pub method: &'static str,
    pub protection_level: &'static str,
    pub create_time: DateTime<Utc>,
    pub expire_time: DateTime<Utc>,
    /// PKCS#8 of the job's RSA key.
    private_key: Vec<u8>,
    public_pem: String,
}

impl std::fmt::Debug for ImportJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportJob")
            .field("name", &self.name)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// (RSA key size, OAEP hash of the first part, whether AES-KWP follows).
fn method_shape(method: &str) -> Option<(KeySize, &'static OaepAlgorithm, bool)> {
    Some(match method {
        "RSA_OAEP_3072_SHA1_AES_256" => (KeySize::Rsa3072, &OAEP_SHA1_MGF1SHA1, true),
        "RSA_OAEP_4096_SHA1_AES_256" => (KeySize::Rsa4096, &OAEP_SHA1_MGF1SHA1, true),
        "RSA_OAEP_3072_SHA256_AES_256" => (KeySize::Rsa3072, &OAEP_SHA256_MGF1SHA256, true),
        "RSA_OAEP_4096_SHA256_AES_256" => (KeySize::Rsa4096, &OAEP_SHA256_MGF1SHA256, true),
        "RSA_OAEP_3072_SHA256" => (KeySize::Rsa3072, &OAEP_SHA256_MGF1SHA256, false),
        "RSA_OAEP_4096_SHA256" => (KeySize::Rsa4096, &OAEP_SHA256_MGF1SHA256, false),
        _ => return None,
    })
}

impl ImportJob {
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if now >= self.expire_time {
            "EXPIRED"
        } else {
            "ACTIVE"
        }
    }

    pub fn to_json(&self) -> Value {
        let now = Utc::now();
        let mut m = Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert("importMethod".into(), self.method.into());
        m.insert("protectionLevel".into(), self.protection_level.into());
        m.insert("createTime".into(), ts(self.create_time).into());
        m.insert("generateTime".into(), ts(self.create_time).into());
        m.insert("expireTime".into(), ts(self.expire_time).into());
        if now >= self.expire_time {
            m.insert("expireEventTime".into(), ts(self.expire_time).into());
        }
        m.insert("state".into(), self.state(now).into());
        m.insert(
            "publicKey".into(),
            serde_json::json!({ "pem": self.public_pem }),
        );
        Value::Object(m)
    }

    /// The material in `wrapped`, or why it could not be unwrapped.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, String> {
        let (_, oaep, with_kwp) =
            method_shape(self.method).ok_or("the import job's method is unknown")?;
        let key = PrivateDecryptingKey::from_pkcs8(&self.private_key)
            .ok()
            .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())
            .ok_or_else(|| "the import job's key is unusable".to_string())?;
        let block = key.key_size_bytes();
        let (rsa_part, kwp_part) = if with_kwp {
            if wrapped.len() <= block {
                return Err(format!(
                    "the wrapped key is {} bytes; {} needs an RSA-OAEP part of {block} bytes followed by the AES-KWP wrapped material",
                    wrapped.len(),
                    self.method
                ));
            }
            wrapped.split_at(block)
        } else {
            (wrapped, &[][..])
        };
        let mut out = vec![0u8; key.min_output_size()];
        let opened = key
            .decrypt(oaep, rsa_part, &mut out, None)
            .map_err(|_| "RSA-OAEP decryption with the import job's key failed".to_string())?
            .to_vec();
        out.zeroize();
        if !with_kwp {
            return Ok(opened);
        }
        let mut kek_bytes = opened;
        if kek_bytes.len() != 32 {
            let len = kek_bytes.len();
            kek_bytes.zeroize();
            return Err(format!(
                "the RSA-OAEP part holds {len} bytes; an AES-256 key is 32"
            ));
        }
        let kek = AesKek::new(&AES_256, &kek_bytes);
        kek_bytes.zeroize();
        let kek = kek.map_err(|_| "the AES key is unusable".to_string())?;
        let mut material = vec![0u8; kwp_part.len()];
        let len = kek
            .unwrap_with_padding(kwp_part, &mut material)
            .map_err(|_| "AES-KWP (RFC 5649) unwrapping failed: the wrapped material was altered or wrapped under another key".to_string())?
            .len();
        material.truncate(len);
        Ok(material)
    }
}

/// Material of `algorithm` from imported bytes, checked the way Cloud KMS checks it.
fn material(algorithm: &str, mut bytes: Vec<u8>) -> Result<Material, String> {
    let fixed = |bytes: &[u8], what: &str| -> Result<[u8; 32], String> {
        <[u8; 32]>::try_from(bytes)
            .map_err(|_| format!("{what} key material is 32 bytes, got {}", bytes.len()))
    };
    let result = match algorithm {
        "GOOGLE_SYMMETRIC_ENCRYPTION" => fixed(&bytes, "AES-256").map(Material::Aes256),
        "HMAC_SHA256" => fixed(&bytes, "HMAC-SHA256").map(Material::Hmac),
        "EC_SIGN_P256_SHA256" | "EC_SIGN_P384_SHA384" => {
            let p384 = algorithm == "EC_SIGN_P384_SHA384";
            let alg = if p384 {
                &ECDSA_P384_SHA384_ASN1_SIGNING
            } else {
                &ECDSA_P256_SHA256_ASN1_SIGNING
            };
            EcdsaKeyPair::from_pkcs8(alg, &bytes)
                .map_err(|_| format!("the material is not a PKCS#8 private key for {algorithm}"))
                .map(|_| Material::Ec {
                    pkcs8: bytes.clone(),
                    p384,
                })
        }
        "RSA_SIGN_PSS_2048_SHA256" | "RSA_SIGN_PSS_3072_SHA256" => {
            let bits = if algorithm.contains("2048") {
                2048
            } else {
                3072
            };
            RsaKeyPair::from_pkcs8(&bytes)
                .map_err(|_| {
                    format!("the material is not a PKCS#8 RSA private key for {algorithm}")
                })
                .and_then(|kp| {
                    if kp.public_modulus_len() * 8 == bits {
                        Ok(Material::RsaSign {
                            pkcs8: bytes.clone(),
                        })
                    } else {
                        Err(format!(
                            "{algorithm} needs a {bits}-bit RSA key, got {} bits",
                            kp.public_modulus_len() * 8
                        ))
                    }
                })
        }
        "RSA_DECRYPT_OAEP_3072_SHA256" => PrivateDecryptingKey::from_pkcs8(&bytes)
            .map_err(|_| format!("the material is not a PKCS#8 RSA private key for {algorithm}"))
            .and_then(|k| {
                if k.key_size_bits() == 3072 {
                    k.as_der()
                        .map(|d| Material::RsaDecrypt {
                            pkcs8: d.as_ref().to_vec(),
                        })
                        .map_err(|_| "the RSA key cannot be re-encoded".to_string())
                } else {
                    Err(format!(
                        "{algorithm} needs a 3072-bit RSA key, got {} bits",
                        k.key_size_bits()
                    ))
                }
            }),
        other => Err(format!("{other} keys cannot be imported into the emulator")),
    };
    bytes.zeroize();
    result
}

/// `POST {ring}/importJobs?importJobId=ID` with `importMethod` and `protectionLevel`.
pub fn create(
    store: &mut Store,
    ring: &str,
    q: &std::collections::HashMap<String, String>,
    body: &Value,
) -> ApiResult<Value> {
    let id = q.get("importJobId").map(String::as_str).unwrap_or_default();
    if !names::valid_id(id) {
        return Err(ApiError::invalid(format!(
            "Invalid importJobId '{id}': must match [a-zA-Z0-9_-]{{1,63}}."
        )));
    }
    let method = pj::enum_field(body, "importMethod", IMPORT_METHOD)?
        .ok_or_else(|| ApiError::invalid("ImportJob.import_method is required."))?;
    let protection_level = pj::enum_field(body, "protectionLevel", PROTECTION_LEVEL)?
        .ok_or_else(|| ApiError::invalid("ImportJob.protection_level is required."))?;
    if !matches!(protection_level, "SOFTWARE" | "HSM") {
        return Err(ApiError::invalid(format!(
            "Protection level {protection_level} is not supported for import jobs."
        )));
    }
    let (size, _, _) = method_shape(method)
        .ok_or_else(|| ApiError::invalid(format!("Import method {method} is not supported.")))?;
    let name = names::import_job_name(ring, id);
    let r = store
        .rings
        .get_mut(ring)
        .ok_or_else(|| ApiError::not_found(&format!("KeyRing {ring}")))?;
    if r.import_jobs.contains_key(id) {
        return Err(ApiError::new(
            Code::AlreadyExists,
            format!("ImportJob {name} already exists."),
        ));
    }
    let key = PrivateDecryptingKey::generate(size)
        .map_err(|_| ApiError::internal("Import job key generation failed."))?;
    let private_key = key
        .as_der()
        .map_err(|_| ApiError::internal("Import job key export failed."))?
        .as_ref()
        .to_vec();
    let public_der = key
        .public_key()
        .as_der()
        .map_err(|_| ApiError::internal("Import job key export failed."))?
        .as_ref()
        .to_vec();
    let public_pem = pem::encode_config(
        &pem::Pem::new("PUBLIC KEY", public_der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    let now = Utc::now();
    let job = ImportJob {
        name,
        method,
        protection_level,
        create_time: now,
        expire_time: now + chrono::Duration::seconds(LIFETIME_SECS),
        private_key,
        public_pem,
    };
    let out = job.to_json();
    r.import_jobs.insert(id.to_string(), job);
    Ok(out)
}

pub fn get(store: &Store, ring: &str, id: &str) -> ApiResult<Value> {
    store
        .ring(ring)?
        .import_jobs
        .get(id)
        .map(ImportJob::to_json)
        .ok_or_else(|| {
            ApiError::not_found(&format!("ImportJob {}", names::import_job_name(ring, id)))
        })
}

pub fn list_items(store: &Store, ring: &str) -> ApiResult<Vec<Value>> {
    Ok(store
        .ring(ring)?
        .import_jobs
        .values()
        .map(ImportJob::to_json)
        .collect())
}

fn find_job<'s>(store: &'s Store, name: &str) -> ApiResult<&'s ImportJob> {
    let (ring, id) = name
        .rsplit_once("/importJobs/")
        .ok_or_else(|| ApiError::invalid(format!("Invalid import_job '{name}'.")))?;
    store
        .rings
        .get(ring)
        .and_then(|r| r.import_jobs.get(id))
        .ok_or_else(|| ApiError::not_found(&format!("ImportJob {name}")))
}

/// `POST {key}/cryptoKeyVersions:import`.
pub fn import_version(
    store: &mut Store,
    ring: &str,
    key_id: &str,
    body: &Value,
) -> ApiResult<Value> {
    let algorithm = pj::enum_field(body, "algorithm", ALGORITHM)?
        .ok_or_else(|| ApiError::invalid("algorithm is required."))?;
    let job_name = pj::string_field(body, "importJob")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid("import_job is required."))?
        .to_string();
    if pj::string_field(body, "cryptoKeyVersion")?.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::new(
            Code::Unimplemented,
            "Re-importing into an existing CryptoKeyVersion is not implemented by the emulator.",
        ));
    }
    let mut wrapped = pj::bytes_field(body, "wrappedKey")?;
    if wrapped.is_empty() {
        wrapped = pj::bytes_field(body, "rsaAesWrappedKey")?;
    }
    if wrapped.is_empty() {
        return Err(ApiError::invalid("wrapped_key is required."));
    }
    let now = Utc::now();
    let (unwrapped, job_protection) = {
        let job = find_job(store, &job_name)?;
        if job.state(now) != "ACTIVE" {
            return Err(ApiError::precondition(format!(
                "ImportJob {job_name} is {}, not ACTIVE.",
                job.state(now)
            )));
        }
        let (_, _, with_kwp) =
            method_shape(job.method).unwrap_or((KeySize::Rsa3072, &OAEP_SHA256_MGF1SHA256, true));
        if !with_kwp && !matches!(algorithm, "GOOGLE_SYMMETRIC_ENCRYPTION" | "HMAC_SHA256") {
            return Err(ApiError::invalid(format!(
                "Import method {} can only import symmetric keys, not {algorithm}.",
                job.method
            )));
        }
        (job.unwrap(&wrapped), job.protection_level)
    };
    let key: &mut CryptoKey = store.key_mut(ring, key_id)?;
    if model::algorithm_purpose(algorithm) != Some(key.purpose) {
        return Err(ApiError::invalid(format!(
            "Algorithm {algorithm} is not compatible with purpose {} of {}.",
            key.purpose, key.name
        )));
    }
    if job_protection != key.protection_level {
        return Err(ApiError::invalid(format!(
            "ImportJob {job_name} has protection level {job_protection}, but {} has {}.",
            key.name, key.protection_level
        )));
    }
    let (state, material, failure_reason) = match unwrapped.and_then(|m| material(algorithm, m)) {
        Ok(m) => ("ENABLED", Some(m), None),
        Err(reason) => ("IMPORT_FAILED", None, Some(reason)),
    };
    let number = key.versions.iter().map(|v| v.number).max().unwrap_or(0) + 1;
    key.versions.push(Version {
        number,
        state,
        algorithm,
        create_time: now,
        destroy_time: None,
        destroy_event_time: None,
        material,
        imported: Some(Imported {
            import_job: job_name,
            import_time: now,
            failure_reason,
        }),
    });
    if state == "ENABLED" && key.purpose == "ENCRYPT_DECRYPT" && key.primary.is_none() {
        key.primary = Some(number);
    }
    Ok(key
        .version(number)?
        .to_json(&key.version_name(number), key.protection_level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_material_must_be_32_bytes_and_pkcs8_must_parse() {
        assert!(material("GOOGLE_SYMMETRIC_ENCRYPTION", vec![1; 32]).is_ok());
        let short = material("GOOGLE_SYMMETRIC_ENCRYPTION", vec![1; 16]).unwrap_err();
        assert!(short.contains("32 bytes"), "{short}");
        let junk = material("EC_SIGN_P256_SHA256", vec![0x30, 0x00]).unwrap_err();
        assert!(junk.contains("PKCS#8"), "{junk}");
    }
}
