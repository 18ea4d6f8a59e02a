//! Sign, Verify, GetPublicKey, GenerateMac, VerifyMac.

use super::{CallMeta, Gateway, GatewayError, validate};
use crate::catalog::{KeyRecord, VersionRecord};
use crate::pb;
use crate::policy::Action;
use base64::Engine as _;
use keygate_provider::SignInput;

/// Signatures and MACs are at most a few hundred bytes; anything longer is not one.
const MAX_SIGNATURE: usize = 1024;

fn sign_input<'a>(
    gw: &Gateway,
    key: &KeyRecord,
    message: Option<&'a [u8]>,
    digest: Option<&'a [u8]>,
) -> Result<SignInput<'a>, GatewayError> {
    match (message, digest) {
        (Some(m), None) => {
            validate::size("message", m.len(), gw.limits.max_plaintext_bytes)?;
            Ok(SignInput::Message(m))
        }
        (None, Some(d)) => match key.algorithm.digest_len() {
            Some(len) if d.len() == len => Ok(SignInput::Digest(d)),
            Some(len) => Err(GatewayError::InvalidArgument(format!(
                "digest is {} bytes; key '{}' ({}) signs a {len}-byte digest",
                d.len(),
                key.name,
                key.algorithm
            ))),
            None => Err(GatewayError::InvalidArgument(format!(
                "key '{}' is {}, which signs the message itself; send `message`, not `digest`",
                key.name, key.algorithm
            ))),
        },
        _ => Err(GatewayError::InvalidArgument(
            "send exactly one of `message` or `digest`".into(),
        )),
    }
}

fn pick_version(key: &KeyRecord, requested: u32) -> Result<&VersionRecord, GatewayError> {
    if requested == 0 {
        return Ok(key.primary());
    }
    key.version(requested).ok_or_else(|| {
        GatewayError::NotFound(format!(
            "key '{}' has no version {requested} (it has 1 to {})",
            key.name,
            key.primary().version
        ))
    })
}

fn split_sign(input: &Option<pb::sign_request::Input>) -> (Option<&[u8]>, Option<&[u8]>) {
    match input {
        Some(pb::sign_request::Input::Message(m)) => (Some(m.as_slice()), None),
        Some(pb::sign_request::Input::Digest(d)) => (None, Some(d.as_slice())),
        None => (None, None),
    }
}

fn split_verify(input: &Option<pb::verify_request::Input>) -> (Option<&[u8]>, Option<&[u8]>) {
    match input {
        Some(pb::verify_request::Input::Message(m)) => (Some(m.as_slice()), None),
        Some(pb::verify_request::Input::Digest(d)) => (None, Some(d.as_slice())),
        None => (None, None),
    }
}

/// PEM of a DER SubjectPublicKeyInfo.
fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

impl Gateway {
    pub async fn sign(
        &self,
        meta: &CallMeta,
        req: pb::SignRequest,
    ) -> Result<pb::SignResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::Sign);
        let result = async {
            scope.authenticate()?;
            let key = scope.admit(&req.key)?;
            let (message, digest) = split_sign(&req.input);
            let input = sign_input(self, &key, message, digest)?;
            let version = key.primary();
            scope.note_version(version.version);
            let provider = self.provider_for(&key)?;
            let reply = self
                .provider_call(
                    &key.provider,
                    provider.sign(&key.version_ref(version), input),
                )
                .await?;
            scope.note_provider_request(reply.request_id);
            Ok(pb::SignResponse {
                signature: reply.value,
                key_id: key.id.clone(),
                key_version: version.version,
                algorithm: key.algorithm.as_str().into(),
            })
        }
        .await;
        scope.finish(result).await
    }

    pub async fn verify(
        &self,
        meta: &CallMeta,
        req: pb::VerifyRequest,
    ) -> Result<pb::VerifyResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::Verify);
        let result = async {
            scope.authenticate()?;
            let key = scope.admit(&req.key)?;
            let (message, digest) = split_verify(&req.input);
            let input = sign_input(self, &key, message, digest)?;
            validate::size("signature", req.signature.len(), MAX_SIGNATURE)?;
            let version = pick_version(&key, req.key_version)?;
            scope.note_version(version.version);
            let provider = self.provider_for(&key)?;
            let reply = self
                .provider_call(
                    &key.provider,
                    provider.verify(&key.version_ref(version), input, &req.signature),
                )
                .await?;
            scope.note_provider_request(reply.request_id);
            scope.detail("valid", reply.value);
            Ok(pb::VerifyResponse {
                valid: reply.value,
                key_version: version.version,
            })
        }
        .await;
        scope.finish(result).await
    }

    pub async fn get_public_key(
        &self,
        meta: &CallMeta,
        req: pb::GetPublicKeyRequest,
    ) -> Result<pb::GetPublicKeyResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::GetPublicKey);
        let result = async {
            scope.authenticate()?;
            let key = scope.admit(&req.key)?;
            let version = pick_version(&key, req.key_version)?;
            scope.note_version(version.version);
            let provider = self.provider_for(&key)?;
            let reply = self
                .provider_call(
                    &key.provider,
                    provider.public_key(&key.version_ref(version)),
                )
                .await?;
            scope.note_provider_request(reply.request_id);
            let der = reply.value.spki_der;
            Ok(pb::GetPublicKeyResponse {
                pem: pem(&der),
                der,
                algorithm: key.algorithm.as_str().into(),
                key_version: version.version,
            })
        }
        .await;
        scope.finish(result).await
    }

    pub async fn generate_mac(
        &self,
        meta: &CallMeta,
        req: pb::GenerateMacRequest,
    ) -> Result<pb::GenerateMacResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::GenerateMac);
        let result = async {
            scope.authenticate()?;
            validate::size(
                "message",
                req.message.len(),
                self.limits.max_plaintext_bytes,
            )?;
            let key = scope.admit(&req.key)?;
            let version = key.primary();
            scope.note_version(version.version);
            let provider = self.provider_for(&key)?;
            let reply = self
                .provider_call(
                    &key.provider,
                    provider.mac(&key.version_ref(version), &req.message),
                )
                .await?;
            scope.note_provider_request(reply.request_id);
            Ok(pb::GenerateMacResponse {
                mac: reply.value,
                key_id: key.id.clone(),
                key_version: version.version,
            })
        }
        .await;
        scope.finish(result).await
    }

    pub async fn verify_mac(
        &self,
        meta: &CallMeta,
        req: pb::VerifyMacRequest,
    ) -> Result<pb::VerifyMacResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::VerifyMac);
        let result = async {
            scope.authenticate()?;
            validate::size(
                "message",
                req.message.len(),
                self.limits.max_plaintext_bytes,
            )?;
            validate::size("mac", req.mac.len(), MAX_SIGNATURE)?;
            let key = scope.admit(&req.key)?;
            let version = pick_version(&key, req.key_version)?;
            scope.note_version(version.version);
            let provider = self.provider_for(&key)?;
            let reply = self
                .provider_call(
                    &key.provider,
                    provider.verify_mac(&key.version_ref(version), &req.message, &req.mac),
                )
                .await?;
            scope.note_provider_request(reply.request_id);
            scope.detail("valid", reply.value);
            Ok(pb::VerifyMacResponse {
                valid: reply.value,
                key_version: version.version,
            })
        }
        .await;
        scope.finish(result).await
    }
}
