//! End-to-end integrity as Google recommends for Cloud KMS: keygate sends the CRC32C of
//! every input (plaintext, associated data, ciphertext, digest, MAC data) and checks, on
//! every reply, that Cloud KMS verified them (`verified_*` flags), that the output's CRC32C
//! matches the output, and that the reply names the key version asked for. Any mismatch is
//! `IntegrityFailed`: the reply is discarded, never used.

use crate::errors::Attempt;
use keygate_provider::Result;

/// The CRC32C of `data`, as Cloud KMS's int64 checksum fields carry it.
pub fn crc(data: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(data))
}

/// The reply's checksum of `field` matches `data`.
pub fn check_crc(at: &Attempt<'_>, field: &str, data: &[u8], got: Option<i64>) -> Result<()> {
    match got {
        Some(c) if c == crc(data) => Ok(()),
        Some(_) => Err(at.integrity(format!(
            "the reply's {field} does not match the data it came with (corrupted on the way)"
        ))),
        None => Err(at.integrity(format!(
            "the reply has no {field} to check the data against"
        ))),
    }
}

/// Cloud KMS says it checked the CRC32C keygate sent for `field`.
pub fn check_verified(at: &Attempt<'_>, field: &str, verified: bool) -> Result<()> {
    if verified {
        Ok(())
    } else {
        Err(at.integrity(format!(
            "Cloud KMS did not confirm the {field} keygate sent (verified flag unset)"
        )))
    }
}

/// The reply is about the version (or key) asked for.
pub fn check_name(at: &Attempt<'_>, expected: &str, got: &str) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(at.integrity(format!("the reply names {got}, not {expected} as asked")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Attempt<'static> {
        Attempt {
            provider: "gcp",
            op: "encrypt",
            key: "k",
            request_id: "r",
        }
    }

    #[test]
    fn mismatches_are_integrity_failures() {
        assert!(check_crc(&at(), "ciphertext_crc32c", b"abc", Some(crc(b"abc"))).is_ok());
        let e = check_crc(&at(), "ciphertext_crc32c", b"abc", Some(crc(b"abc") ^ 1)).unwrap_err();
        assert_eq!(e.kind(), "integrity_failed");
        assert!(e.to_string().contains("ciphertext_crc32c"), "{e}");
        assert!(check_crc(&at(), "x", b"abc", None).is_err());
        assert!(check_verified(&at(), "plaintext_crc32c", false).is_err());
        assert!(check_name(&at(), "a", "b").is_err());
    }
}
