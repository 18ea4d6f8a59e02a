//! Encrypt and Decrypt for the Kubernetes KMS v2 plugin: keygate's own operations, plus the
//! limits the kube-apiserver enforces (key ids and ciphertexts at most 1 kB, annotations at
//! most 32 kB), checked in the pipeline so a refused call is audited like any other, and
//! bound to the plugin's one key.

use super::crypto::{Decrypt, Encrypt, Opened, Sealed};
use crate::gateway::runner::{Exec, Operation, Reads, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;

/// The apiserver refuses a key id or a ciphertext longer than this (and so does the plugin).
pub const MAX_KEY_ID_BYTES: usize = 1024;
pub const MAX_CIPHERTEXT_BYTES: usize = 1024;
/// The apiserver refuses annotations (keys and values together) longer than this.
pub const MAX_ANNOTATIONS_BYTES: usize = 32 * 1024;

/// The key id the apiserver stores with each object: the key's immutable id and the version
/// that sealed it, so a rotation changes it and the apiserver sees its data as stale.
pub fn key_id(sealed_key_id: &str, version: u32) -> String {
    format!("{sealed_key_id}/v{version}")
}

/// Where a plugin call comes from, for its audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsCall {
    /// The apiserver's Encrypt or Decrypt.
    Request,
    /// The probe a Status call runs.
    StatusProbe,
}

impl KmsCall {
    fn as_str(self) -> &'static str {
        match self {
            KmsCall::Request => "request",
            KmsCall::StatusProbe => "status-probe",
        }
    }
}

pub struct KmsEncrypt {
    pub encrypt: Encrypt,
    pub call: KmsCall,
}

impl Operation for KmsEncrypt {
    type Output = Sealed;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::Encrypt
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        self.encrypt.check(settings)
    }

    fn target(&self) -> Target<'_> {
        self.encrypt.target()
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Sealed, GatewayError> {
        cx.detail("kms_plugin", self.call.as_str());
        let sealed = self.encrypt.execute(cx).await?;
        cx.detail("kms_key_id", key_id(&sealed.key_id, sealed.key_version));
        if sealed.ciphertext.len() > MAX_CIPHERTEXT_BYTES {
            let key = cx.key()?;
            return Err(GatewayError::KmsCiphertextTooLarge {
                key: key.name.clone(),
                algorithm: key.algorithm.to_string(),
                len: sealed.ciphertext.len(),
            });
        }
        Ok(sealed)
    }
}

pub struct KmsDecrypt {
    pub decrypt: Decrypt,
    /// The key the plugin serves (name or id): ciphertexts of any other key are refused.
    pub key: String,
    /// What the apiserver says it was sealed under (informational: the ciphertext names its
    /// key and version itself).
    pub key_id: String,
    /// The length of the annotations' keys and values together.
    pub annotations_bytes: usize,
    pub call: KmsCall,
}

impl Operation for KmsDecrypt {
    type Output = Opened;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::Decrypt
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        validate::size("key_id", "key_id", self.key_id.len(), MAX_KEY_ID_BYTES)?;
        validate::size(
            "ciphertext",
            "ciphertext",
            self.decrypt.ciphertext.len(),
            MAX_CIPHERTEXT_BYTES,
        )?;
        validate::size(
            "annotations",
            "annotations (keys and values)",
            self.annotations_bytes,
            MAX_ANNOTATIONS_BYTES,
        )?;
        self.decrypt.check(settings)
    }

    fn target(&self) -> Target<'_> {
        self.decrypt.target()
    }

    fn ready(&self, cx: &Exec<'_, Reads>) -> Result<(), GatewayError> {
        let key = cx.key()?;
        if key.id != self.key && key.name != self.key {
            return Err(GatewayError::invalid(
                "ciphertext",
                format!(
                    "the ciphertext was made under key '{}', not under '{}', the key this KMS plugin serves",
                    key.name, self.key
                ),
            ));
        }
        Ok(())
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Opened, GatewayError> {
        cx.detail("kms_plugin", self.call.as_str());
        if !self.key_id.is_empty() {
            cx.detail("kms_key_id", self.key_id.clone());
        }
        self.decrypt.execute(cx).await
    }
}
