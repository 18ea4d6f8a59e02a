//! keygate's metadata as Cloud KMS labels.
//!
//! Label keys and values take only lower-case letters, digits, `_` and `-`, at most 63 of
//! them. Values are escaped reversibly: any other byte, and `_` itself, becomes `_` and two
//! hex digits (`svc:payments` → `svc_3apayments`, `Alice` → `_41lice`). A value longer than
//! 63 characters once escaped is cut, which only the owner or name of an unusual key needs.

use keygate_provider::KeySpec;
use std::collections::HashMap;

pub const KEY_ID: &str = "keygate-key-id";
pub const NAME: &str = "keygate-name";
pub const OWNER: &str = "keygate-owner";
pub const PURPOSE: &str = "keygate-purpose";
pub const ENVIRONMENT: &str = "keygate-environment";
/// The crypto-period in seconds, `7776000s`.
pub const CRYPTO_PERIOD: &str = "keygate-crypto-period";
/// The CryptoKeyVersion id keygate last made primary: a newer primary is one Cloud KMS's
/// own scheduled rotation made (see `lifecycle::rotate`).
pub const PRIMARY: &str = "keygate-primary";

const MAX: usize = 63;

pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    if out.len() > MAX {
        out.truncate(MAX);
        // Never leave half an escape at the end.
        if let Some(i) = out[MAX.saturating_sub(2)..].find('_') {
            out.truncate(MAX - 2 + i);
        }
    }
    out
}

/// The value [`escape`] was given, when the label was not cut.
pub fn unescape(label: &str) -> Option<String> {
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = label.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The labels of a key keygate creates.
pub fn for_spec(spec: &KeySpec) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .filter_map(|(k, v)| {
            let key = escape(k);
            // A label key must start with a letter; keygate's own keys come last and win.
            key.starts_with(|c: char| c.is_ascii_lowercase())
                .then(|| (key, escape(v)))
        })
        .collect();
    for (key, value) in [
        (KEY_ID, spec.key_id.clone()),
        (NAME, spec.name.clone()),
        (OWNER, spec.owner.clone()),
        (PURPOSE, spec.algorithm.purpose().as_str().to_string()),
        (ENVIRONMENT, spec.environment.clone()),
        (CRYPTO_PERIOD, format!("{}s", spec.crypto_period.as_secs())),
        (PRIMARY, "1".to_string()),
    ] {
        labels.insert(key.to_string(), escape(&value));
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_escape_reversibly() {
        for v in [
            "alice",
            "svc:payments",
            "payments/card-dek",
            "Alice_B",
            "0190-ab",
        ] {
            let e = escape(v);
            assert!(
                e.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'),
                "{e}"
            );
            assert_eq!(unescape(&e).as_deref(), Some(v));
        }
        assert_eq!(escape("svc:payments"), "svc_3apayments");
        let long = escape(&"A".repeat(40));
        assert!(long.len() <= 63 && !long.ends_with('_'), "{long}");
        assert!(unescape(&long).is_some());
    }
}
