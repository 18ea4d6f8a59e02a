//! Checks of the operations themselves: round trips, authentication failures, signatures
//! verified independently, MACs, and wrong-purpose refusals.

use super::Suite;
use crate::{DataKeySpec, KeyPurpose, ProviderError, SecretBytes, SignInput, VersionRef};

impl Suite<'_> {
    pub(super) async fn encryption(&mut self, v: &VersionRef) {
        let a = v.algorithm;
        let plaintext = SecretBytes::copy_from(b"conformance plaintext \x00\x01\x02");
        let aad: &[u8] = if a.rsa_bits().is_some() {
            b""
        } else {
            b"context"
        };
        let blob = match self.provider.encrypt(v, &plaintext, aad).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("encrypt failed: {e}")),
        };
        self.check(
            a,
            !blob
                .windows(plaintext.len())
                .any(|w| w == plaintext.expose()),
            "ciphertext does not contain the plaintext",
        );
        match self.provider.decrypt(v, &blob, aad).await {
            Ok(r) => self.check(
                a,
                r.value.expose() == plaintext.expose(),
                "decrypt returns the plaintext",
            ),
            Err(e) => self.fail(Some(a), format!("decrypt failed: {e}")),
        }
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        self.expect_auth_failure(v, &tampered, aad, "a tampered ciphertext")
            .await;
        self.expect_auth_failure(v, &blob[..blob.len() / 2], aad, "a truncated ciphertext")
            .await;
        if !aad.is_empty() {
            self.expect_auth_failure(v, &blob, b"other context", "different associated data")
                .await;
        }
        if a.is_symmetric() {
            match self
                .provider
                .generate_data_key(v, DataKeySpec { len: 32 }, aad)
                .await
            {
                Ok(r) => {
                    let dk = r.value;
                    self.check(a, dk.plaintext.len() == 32, "data key is 32 bytes");
                    match self.provider.decrypt(v, &dk.sealed, aad).await {
                        Ok(p) => self.check(
                            a,
                            p.value.expose() == dk.plaintext.expose(),
                            "sealed data key decrypts to its plaintext",
                        ),
                        Err(e) => self.fail(Some(a), format!("decrypting a data key failed: {e}")),
                    }
                }
                Err(e) => self.fail(Some(a), format!("generate_data_key failed: {e}")),
            }
        }
    }

    pub(super) async fn expect_auth_failure(
        &mut self,
        v: &VersionRef,
        blob: &[u8],
        aad: &[u8],
        what: &str,
    ) {
        match self.provider.decrypt(v, blob, aad).await {
            Ok(_) => self.fail(Some(v.algorithm), format!("decrypt accepted {what}")),
            Err(
                ProviderError::AuthenticationFailed { .. } | ProviderError::InvalidInput { .. },
            ) => {}
            Err(e) => self.fail(
                Some(v.algorithm),
                format!(
                    "decrypt of {what} gave {} instead of authentication_failed: {e}",
                    e.kind()
                ),
            ),
        }
    }

    pub(super) async fn signing(&mut self, v: &VersionRef) {
        let a = v.algorithm;
        let message = b"conformance message to sign";
        let signature = match self.provider.sign(v, SignInput::Message(message)).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("sign failed: {e}")),
        };
        match self
            .provider
            .verify(v, SignInput::Message(message), &signature)
            .await
        {
            Ok(r) => self.check(a, r.value, "verify accepts the signature"),
            Err(e) => self.fail(Some(a), format!("verify failed: {e}")),
        }
        match self
            .provider
            .verify(v, SignInput::Message(b"another message"), &signature)
            .await
        {
            Ok(r) => self.check(
                a,
                !r.value,
                "verify rejects a signature over another message",
            ),
            Err(ProviderError::InvalidInput { .. }) => {}
            Err(e) => self.fail(Some(a), format!("verify of a wrong message errored: {e}")),
        }
        match self.provider.public_key(v).await {
            Ok(r) => self.check(
                a,
                independent::verify(a, &r.value.spki_der, message, &signature),
                "signature verifies independently (aws-lc-rs) with the returned public key",
            ),
            Err(e) => self.fail(Some(a), format!("public_key failed: {e}")),
        }
    }

    pub(super) async fn macs(&mut self, v: &VersionRef) {
        let a = v.algorithm;
        let message = b"conformance message to mac";
        let tag = match self.provider.mac(v, message).await {
            Ok(r) => r.value,
            Err(e) => return self.fail(Some(a), format!("mac failed: {e}")),
        };
        self.check(a, tag.len() == 32, "HMAC-SHA-256 tag is 32 bytes");
        match self.provider.verify_mac(v, message, &tag).await {
            Ok(r) => self.check(a, r.value, "verify_mac accepts the tag"),
            Err(e) => self.fail(Some(a), format!("verify_mac failed: {e}")),
        }
        match self.provider.verify_mac(v, b"another message", &tag).await {
            Ok(r) => self.check(a, !r.value, "verify_mac rejects a tag over another message"),
            Err(e) => self.fail(
                Some(a),
                format!("verify_mac of a wrong message errored: {e}"),
            ),
        }
    }

    pub(super) async fn wrong_purpose(&mut self, v: &VersionRef) {
        let a = v.algorithm;
        let result = match a.purpose() {
            KeyPurpose::Encrypt | KeyPurpose::Mac => self
                .provider
                .sign(v, SignInput::Message(b"x"))
                .await
                .map(|_| ()),
            KeyPurpose::Sign => self
                .provider
                .encrypt(v, &SecretBytes::copy_from(b"x"), b"")
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => self.fail(Some(a), "a wrong-purpose operation succeeded"),
            Err(ProviderError::FailedPrecondition { .. } | ProviderError::Unsupported { .. }) => {}
            Err(e) => self.fail(
                Some(a),
                format!(
                    "wrong-purpose operation gave {} instead of failed_precondition: {e}",
                    e.kind()
                ),
            ),
        }
    }
}

/// Signature checks with aws-lc-rs, independent of the provider under test.
mod independent {
    use crate::Algorithm;
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

    pub fn verify(algorithm: Algorithm, spki_der: &[u8], message: &[u8], sig: &[u8]) -> bool {
        let alg: &'static dyn VerificationAlgorithm = match algorithm {
            Algorithm::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
            Algorithm::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::Rsa2048Pss | Algorithm::Rsa3072Pss | Algorithm::Rsa4096Pss => {
                &signature::RSA_PSS_2048_8192_SHA256
            }
            Algorithm::Rsa2048Pkcs1 | Algorithm::Rsa3072Pkcs1 | Algorithm::Rsa4096Pkcs1 => {
                &signature::RSA_PKCS1_2048_8192_SHA256
            }
            _ => return false,
        };
        let Some(raw) = crate::spki::spki_public_key_bits(spki_der) else {
            return false;
        };
        UnparsedPublicKey::new(alg, raw)
            .verify(message, sig)
            .is_ok()
    }
}
