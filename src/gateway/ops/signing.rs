//! Sign, Verify, GetPublicKey, GenerateMac, VerifyMac.

use super::key_target;
use crate::catalog::{KeyRecord, VersionRecord};
use crate::gateway::runner::{Exec, Operation, Reads, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;
use base64::Engine as _;
use keygate_provider::SignInput;

/// Signatures and MACs are at most a few hundred bytes; anything longer is not one.
const MAX_SIGNATURE: usize = 1024;

/// What the caller signs or verifies: the message, or its digest.
#[derive(Debug, Clone)]
pub enum Payload {
    Message(Vec<u8>),
    Digest(Vec<u8>),
}

fn check_payload(payload: &Option<Payload>, settings: &Settings<'_>) -> Result<(), GatewayError> {
    match payload {
        Some(Payload::Message(m)) => validate::size(
            "message",
            "message",
            m.len(),
            settings.limits.max_plaintext_bytes,
        ),
        Some(Payload::Digest(_)) => Ok(()),
        None => Err(GatewayError::invalid(
            "input",
            "send exactly one of `message` or `digest`",
        )),
    }
}

fn sign_input<'a>(
    key: &KeyRecord,
    payload: &'a Option<Payload>,
) -> Result<SignInput<'a>, GatewayError> {
    match payload {
        Some(Payload::Message(m)) => Ok(SignInput::Message(m)),
        Some(Payload::Digest(d)) => match key.algorithm.digest_len() {
            Some(len) if d.len() == len => Ok(SignInput::Digest(d)),
            Some(len) => Err(GatewayError::invalid(
                "digest",
                format!(
                    "digest is {} bytes; key '{}' ({}) signs a {len}-byte digest",
                    d.len(),
                    key.name,
                    key.algorithm
                ),
            )),
            None => Err(GatewayError::invalid(
                "digest",
                format!(
                    "key '{}' is {}, which signs the message itself; send `message`, not `digest`",
                    key.name, key.algorithm
                ),
            )),
        },
        None => Err(GatewayError::invalid(
            "input",
            "send exactly one of `message` or `digest`",
        )),
    }
}

/// Version 0 means the primary.
fn pick_version(key: &KeyRecord, requested: u32) -> Result<&VersionRecord, GatewayError> {
    if requested == 0 {
        return Ok(key.primary());
    }
    key.version(requested)
        .ok_or_else(|| GatewayError::VersionNotFound {
            key: key.name.clone(),
            version: requested,
            latest: key.primary().version,
        })
}

/// PEM of a DER SubjectPublicKeyInfo.
pub(super) fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

pub struct Sign {
    pub key: String,
    pub payload: Option<Payload>,
}

pub struct Signature {
    pub signature: Vec<u8>,
    pub key_id: String,
    pub key_version: u32,
    pub algorithm: String,
}

impl Operation for Sign {
    type Output = Signature;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::Sign
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        check_payload(&self.payload, settings)
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Signature, GatewayError> {
        let key = cx.key()?.clone();
        let input = sign_input(&key, &self.payload)?;
        let version = key.primary();
        cx.note_version(version.version);
        let signature = cx.sign(&key, version, input).await?;
        Ok(Signature {
            signature,
            key_id: key.id.clone(),
            key_version: version.version,
            algorithm: key.algorithm.as_str().into(),
        })
    }
}

pub struct Verify {
    pub key: String,
    pub payload: Option<Payload>,
    pub signature: Vec<u8>,
    /// 0: the primary version.
    pub key_version: u32,
}

pub struct Verification {
    pub valid: bool,
    pub key_version: u32,
}

impl Operation for Verify {
    type Output = Verification;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::Verify
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        check_payload(&self.payload, settings)?;
        validate::size(
            "signature",
            "signature",
            self.signature.len(),
            MAX_SIGNATURE,
        )
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Verification, GatewayError> {
        let key = cx.key()?.clone();
        let input = sign_input(&key, &self.payload)?;
        let version = pick_version(&key, self.key_version)?;
        crate::lifecycle::retirement::check_version(&key, version.version)?;
        cx.note_version(version.version);
        let valid = cx.verify(&key, version, input, &self.signature).await?;
        cx.detail("valid", valid);
        Ok(Verification {
            valid,
            key_version: version.version,
        })
    }
}

pub struct GetPublicKey {
    pub key: String,
    pub key_version: u32,
}

pub struct PublicKey {
    pub der: Vec<u8>,
    pub pem: String,
    pub algorithm: String,
    pub key_version: u32,
}

impl Operation for GetPublicKey {
    type Output = PublicKey;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetPublicKey
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<PublicKey, GatewayError> {
        let key = cx.key()?.clone();
        let version = pick_version(&key, self.key_version)?;
        cx.note_version(version.version);
        let info = cx.public_key(&key, version).await?;
        Ok(PublicKey {
            pem: pem(&info.spki_der),
            der: info.spki_der,
            algorithm: key.algorithm.as_str().into(),
            key_version: version.version,
        })
    }
}

pub struct GenerateMac {
    pub key: String,
    pub message: Vec<u8>,
}

pub struct Mac {
    pub mac: Vec<u8>,
    pub key_id: String,
    pub key_version: u32,
}

impl Operation for GenerateMac {
    type Output = Mac;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GenerateMac
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        validate::size(
            "message",
            "message",
            self.message.len(),
            settings.limits.max_plaintext_bytes,
        )
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Mac, GatewayError> {
        let key = cx.key()?.clone();
        let version = key.primary();
        cx.note_version(version.version);
        let mac = cx.mac(&key, version, &self.message).await?;
        Ok(Mac {
            mac,
            key_id: key.id.clone(),
            key_version: version.version,
        })
    }
}

pub struct VerifyMac {
    pub key: String,
    pub message: Vec<u8>,
    pub mac: Vec<u8>,
    pub key_version: u32,
}

impl Operation for VerifyMac {
    type Output = Verification;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::VerifyMac
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        validate::size(
            "message",
            "message",
            self.message.len(),
            settings.limits.max_plaintext_bytes,
        )?;
        validate::size("mac", "mac", self.mac.len(), MAX_SIGNATURE)
    }

    fn target(&self) -> Target<'_> {
        key_target(&self.key)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Verification, GatewayError> {
        let key = cx.key()?.clone();
        let version = pick_version(&key, self.key_version)?;
        crate::lifecycle::retirement::check_version(&key, version.version)?;
        cx.note_version(version.version);
        let valid = cx
            .verify_mac(&key, version, &self.message, &self.mac)
            .await?;
        cx.detail("valid", valid);
        Ok(Verification {
            valid,
            key_version: version.version,
        })
    }
}
