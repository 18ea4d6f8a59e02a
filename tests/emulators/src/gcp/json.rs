//! Proto3 JSON details the REST surface depends on: enums travel as names or
//! numbers (the Rust SDK asks for `$alt=json;enum-encoding=int`), int64 values
//! as strings, bytes as base64.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Map, Value};

use super::errors::{ApiError, ApiResult};

/// (name, number) pairs of one proto enum.
pub type EnumTable = &'static [(&'static str, i64)];

pub const PURPOSE: EnumTable = &[
    ("CRYPTO_KEY_PURPOSE_UNSPECIFIED", 0),
    ("ENCRYPT_DECRYPT", 1),
    ("ASYMMETRIC_SIGN", 5),
    ("ASYMMETRIC_DECRYPT", 6),
    ("RAW_ENCRYPT_DECRYPT", 7),
    ("MAC", 9),
    ("KEY_ENCAPSULATION", 10),
];

pub const ALGORITHM: EnumTable = &[
    ("CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED", 0),
    ("GOOGLE_SYMMETRIC_ENCRYPTION", 1),
    ("RSA_SIGN_PSS_2048_SHA256", 2),
    ("RSA_SIGN_PSS_3072_SHA256", 3),
    ("RSA_DECRYPT_OAEP_3072_SHA256", 9),
    ("EC_SIGN_P256_SHA256", 12),
    ("EC_SIGN_P384_SHA384", 13),
    ("HMAC_SHA256", 32),
];

pub const STATE: EnumTable = &[
    ("CRYPTO_KEY_VERSION_STATE_UNSPECIFIED", 0),
    ("ENABLED", 1),
    ("DISABLED", 2),
    ("DESTROYED", 3),
    ("DESTROY_SCHEDULED", 4),
    ("PENDING_GENERATION", 5),
    ("PENDING_IMPORT", 6),
    ("IMPORT_FAILED", 7),
    ("GENERATION_FAILED", 8),
];

pub const PROTECTION_LEVEL: EnumTable = &[
    ("PROTECTION_LEVEL_UNSPECIFIED", 0),
    ("SOFTWARE", 1),
    ("HSM", 2),
    ("EXTERNAL", 3),
    ("EXTERNAL_VPC", 4),
];

pub const IMPORT_METHOD: EnumTable = &[
    ("IMPORT_METHOD_UNSPECIFIED", 0),
    ("RSA_OAEP_3072_SHA1_AES_256", 1),
    ("RSA_OAEP_4096_SHA1_AES_256", 2),
    ("RSA_OAEP_3072_SHA256_AES_256", 3),
    ("RSA_OAEP_4096_SHA256_AES_256", 4),
    ("RSA_OAEP_3072_SHA256", 5),
    ("RSA_OAEP_4096_SHA256", 6),
];

/// An ImportJob's `state` (a CryptoKeyVersion's is [`STATE`]).
pub const IMPORT_JOB_STATE: EnumTable = &[
    ("IMPORT_JOB_STATE_UNSPECIFIED", 0),
    ("PENDING_GENERATION", 1),
    ("ACTIVE", 2),
    ("EXPIRED", 3),
];

pub const PUBLIC_KEY_FORMAT: EnumTable =
    &[("PUBLIC_KEY_FORMAT_UNSPECIFIED", 0), ("PEM", 1), ("DER", 2)];

/// Reads an enum field given as a name or a number; returns its name.
/// `None` when the field is absent or the unspecified value.
pub fn enum_field(obj: &Value, field: &str, table: EnumTable) -> ApiResult<Option<&'static str>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let found = match v {
                Value::String(s) => table.iter().find(|(n, _)| n == s),
                Value::Number(n) => n.as_i64().and_then(|n| table.iter().find(|(_, x)| *x == n)),
                _ => None,
            };
            match found {
                Some((_, 0)) => Ok(None),
                Some((name, _)) => Ok(Some(name)),
                None => Err(ApiError::invalid(format!(
                    "Invalid value at '{field}': {v} is not supported."
                ))),
            }
        }
    }
}

/// Parses an enum given in a query string (name or number).
pub fn enum_query(
    value: Option<&String>,
    field: &str,
    table: EnumTable,
) -> ApiResult<Option<&'static str>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => {
            let v = match s.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(s.as_str()),
            };
            let mut obj = Map::new();
            obj.insert(field.to_string(), v);
            enum_field(&Value::Object(obj), field, table)
        }
    }
}

/// Reads a bytes field (base64, standard or URL-safe alphabet). Absent means empty.
pub fn bytes_field(obj: &Value, field: &str) -> ApiResult<Vec<u8>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => decode_b64(s).ok_or_else(|| {
            ApiError::invalid(format!("Invalid value at '{field}': not valid base64."))
        }),
        Some(_) => Err(ApiError::invalid(format!(
            "Invalid value at '{field}': expected a base64 string."
        ))),
    }
}

pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let padded = match s.len() % 4 {
        2 => format!("{s}=="),
        3 => format!("{s}="),
        _ => s.to_string(),
    };
    STANDARD
        .decode(&padded)
        .or_else(|_| URL_SAFE.decode(&padded))
        .ok()
}

pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Reads an int64 wrapper field (string or number); `None` when absent.
pub fn int64_field(obj: &Value, field: &str) -> ApiResult<Option<i64>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("Invalid value at '{field}': not an int64."))),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("Invalid value at '{field}': not an int64."))),
        Some(_) => Err(ApiError::invalid(format!(
            "Invalid value at '{field}': not an int64."
        ))),
    }
}

pub fn string_field<'a>(obj: &'a Value, field: &str) -> ApiResult<Option<&'a str>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid(format!(
            "Invalid value at '{field}': expected a string."
        ))),
    }
}

/// CRC32C of `data`, as the int64 string proto3 JSON uses.
pub fn crc(data: &[u8]) -> String {
    crc32c::crc32c(data).to_string()
}

/// Checks a client-supplied CRC32C; true when one was supplied (and matched).
pub fn verify_crc(obj: &Value, crc_field: &str, data: &[u8], data_field: &str) -> ApiResult<bool> {
    match int64_field(obj, crc_field)? {
        None => Ok(false),
        Some(c) if c == i64::from(crc32c::crc32c(data)) => Ok(true),
        Some(_) => Err(ApiError::invalid(format!(
            "The checksum in field {crc_field} did not match the data in field {data_field}."
        ))),
    }
}

/// Rewrites the known enum fields of a response to numbers, for clients that
/// asked for `enum-encoding=int`.
pub fn enums_to_int(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let import_job = map.contains_key("importMethod");
            for (k, child) in map.iter_mut() {
                let table = match k.as_str() {
                    "purpose" => Some(PURPOSE),
                    "algorithm" => Some(ALGORITHM),
                    "state" if import_job => Some(IMPORT_JOB_STATE),
                    "state" => Some(STATE),
                    "importMethod" => Some(IMPORT_METHOD),
                    "protectionLevel" => Some(PROTECTION_LEVEL),
                    "publicKeyFormat" => Some(PUBLIC_KEY_FORMAT),
                    _ => None,
                };
                match (table, &child) {
                    (Some(t), Value::String(s)) => {
                        if let Some((_, n)) = t.iter().find(|(name, _)| name == s) {
                            *child = Value::from(*n);
                        }
                    }
                    _ => enums_to_int(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(enums_to_int),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_accept_names_and_numbers() {
        let v = json!({"a": 12, "b": "EC_SIGN_P256_SHA256", "c": 0, "d": 999});
        assert_eq!(
            enum_field(&v, "a", ALGORITHM).ok().flatten(),
            Some("EC_SIGN_P256_SHA256")
        );
        assert_eq!(
            enum_field(&v, "b", ALGORITHM).ok().flatten(),
            Some("EC_SIGN_P256_SHA256")
        );
        assert_eq!(enum_field(&v, "c", ALGORITHM).ok().flatten(), None);
        assert!(enum_field(&v, "d", ALGORITHM).is_err());
    }

    #[test]
    fn crc_checks_refuse_mismatches() {
        let v = json!({"c": crc(b"abc"), "bad": "1"});
        assert_eq!(verify_crc(&v, "c", b"abc", "x").ok(), Some(true));
        assert_eq!(verify_crc(&v, "none", b"abc", "x").ok(), Some(false));
        assert!(verify_crc(&v, "bad", b"abc", "x").is_err());
    }

    #[test]
    fn int_encoding_rewrites_known_enums() {
        let mut v =
            json!({"primary": {"state": "ENABLED", "algorithm": "HMAC_SHA256"}, "purpose": "MAC"});
        enums_to_int(&mut v);
        assert_eq!(
            v,
            json!({"primary": {"state": 1, "algorithm": 32}, "purpose": 9})
        );
    }
}
