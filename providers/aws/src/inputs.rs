//! Checks and shapes caller input before anything is sent: purpose, sizes, associated data,
//! sign input.

use crate::algorithms::MAX_KMS_INPUT;
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::types::MessageType;
use base64::Engine;
use keygate_provider::{
    Algorithm, KeyPurpose, KeyUri, ProviderError, Result, SignInput, VersionRef,
};

impl AwsKmsProvider {
    /// Refuses an operation the key's purpose does not allow, before calling AWS.
    pub(crate) fn require(
        &self,
        v: &VersionRef,
        purpose: KeyPurpose,
        op: &'static str,
    ) -> Result<()> {
        if v.algorithm.purpose() != purpose {
            return Err(ProviderError::precondition(
                &self.name,
                format!(
                    "{}: the key is a {} key ({}), not a {purpose} key",
                    self.at(op, v.uri.as_str()).what(),
                    v.algorithm.purpose(),
                    v.algorithm
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn too_big(
        &self,
        op: &'static str,
        key: &KeyUri,
        len: usize,
        limit: usize,
    ) -> ProviderError {
        ProviderError::invalid(
            &self.name,
            format!(
                "{}: input is {len} bytes, over the AWS KMS limit of {limit} bytes",
                self.at(op, key.as_str()).what()
            ),
        )
    }

    pub(crate) fn context(
        &self,
        v: &VersionRef,
        aad: &[u8],
        op: &'static str,
    ) -> Result<Option<String>> {
        if aad.is_empty() {
            return Ok(None);
        }
        if v.algorithm != Algorithm::Aes256Gcm {
            return Err(ProviderError::invalid(
                &self.name,
                format!(
                    "{}: AWS KMS takes associated data (an encryption context) only with symmetric keys, not {}",
                    self.at(op, v.uri.as_str()).what(),
                    v.algorithm
                ),
            ));
        }
        Ok(Some(base64::engine::general_purpose::STANDARD.encode(aad)))
    }

    /// KMS's Sign/Verify input: the message (RAW) while under KMS's size limit, else its
    /// digest computed here; or the caller's digest, checked for length.
    pub(crate) fn sign_input(
        &self,
        v: &VersionRef,
        input: SignInput<'_>,
        op: &'static str,
    ) -> Result<(Vec<u8>, MessageType)> {
        let digest_len = v.algorithm.digest_len().unwrap_or(32);
        match input {
            SignInput::Message(m) if m.len() <= MAX_KMS_INPUT => Ok((m.to_vec(), MessageType::Raw)),
            SignInput::Message(m) => {
                let alg = if digest_len == 48 {
                    &aws_lc_rs::digest::SHA384
                } else {
                    &aws_lc_rs::digest::SHA256
                };
                Ok((
                    aws_lc_rs::digest::digest(alg, m).as_ref().to_vec(),
                    MessageType::Digest,
                ))
            }
            SignInput::Digest(d) if d.len() == digest_len => Ok((d.to_vec(), MessageType::Digest)),
            SignInput::Digest(d) => Err(ProviderError::invalid(
                &self.name,
                format!(
                    "{}: a {} digest is {digest_len} bytes, got {}",
                    self.at(op, v.uri.as_str()).what(),
                    v.algorithm,
                    d.len()
                ),
            )),
        }
    }
}
