//! Checks and shapes caller input before anything is sent: sizes, associated data, sign
//! input. (The purpose guard is the kit's.)

use crate::algorithms::MAX_KMS_INPUT;
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::types::MessageType;
use base64::Engine;
use keygate_provider::kit::{self, Op};
use keygate_provider::{Algorithm, KeyUri, ProviderError, Result, SignInput, VersionRef};

impl AwsKmsProvider {
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
        op: Op,
    ) -> Result<(Vec<u8>, MessageType)> {
        match input {
            SignInput::Message(m) if m.len() <= MAX_KMS_INPUT => Ok((m.to_vec(), MessageType::Raw)),
            long_or_digest => Ok((
                kit::prehash(&self.name, op, v, long_or_digest)?,
                MessageType::Digest,
            )),
        }
    }
}
