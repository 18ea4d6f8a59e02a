//! The purpose guard: a key is used only for what it is for, checked before the backend is
//! asked.

use super::Op;
use crate::{KeyPurpose, ProviderError, Result, VersionRef};

fn noun(purpose: KeyPurpose) -> &'static str {
    match purpose {
        KeyPurpose::Encrypt => "an encryption",
        KeyPurpose::Sign => "a signing",
        KeyPurpose::Mac => "a MAC",
    }
}

/// `FailedPrecondition` unless `key` is a `purpose` key; the message names the operation,
/// the key, what it is and what the operation needs.
pub fn require_purpose(
    provider: &str,
    key: &VersionRef,
    purpose: KeyPurpose,
    op: Op,
) -> Result<()> {
    let actual = key.algorithm.purpose();
    if actual == purpose {
        return Ok(());
    }
    Err(ProviderError::precondition(
        provider,
        format!(
            "{op} with {}: it is {} key ({}), not {} key",
            key.uri,
            noun(actual),
            key.algorithm,
            noun(purpose)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, KeyUri};

    #[test]
    fn names_the_operation_the_key_and_both_purposes() {
        let key = VersionRef {
            uri: KeyUri::new("local://k"),
            algorithm: Algorithm::EcdsaP256,
            version: 1,
            provider_version: "1".into(),
        };
        assert!(require_purpose("p", &key, KeyPurpose::Sign, Op::Sign).is_ok());
        let err = require_purpose("p", &key, KeyPurpose::Encrypt, Op::Encrypt).unwrap_err();
        assert_eq!(err.kind(), "failed_precondition");
        assert_eq!(
            err.to_string(),
            "p: encrypt with local://k: it is a signing key (ecdsa-p256), not an encryption key"
        );
    }
}
