//! Encrypt, Decrypt, GenerateDataKey, ReEncrypt.

use super::envelope::{self, HEADER_LEN};
use super::{CallMeta, Gateway, GatewayError, Scope, validate};
use crate::catalog::{KeyRecord, VersionRecord};
use crate::pb;
use crate::policy::Action;
use keygate_provider::{DataKeySpec, SecretBytes};
use std::sync::Arc;

/// Data keys: 16-64 bytes, 32 (AES-256) by default.
const DATA_KEY_DEFAULT: usize = 32;
const DATA_KEY_MIN: usize = 16;
const DATA_KEY_MAX: usize = 64;

impl Gateway {
    fn check_aad(&self, key: &KeyRecord, aad: &[u8]) -> Result<(), GatewayError> {
        validate::size(
            "associated_data",
            aad.len(),
            self.limits.max_associated_data_bytes,
        )?;
        if !aad.is_empty() && !key.algorithm.is_symmetric() {
            return Err(GatewayError::InvalidArgument(format!(
                "key '{}' is {}, which takes no associated data; send none, or use an aes-256-gcm key",
                key.name, key.algorithm
            )));
        }
        Ok(())
    }

    /// What the provider binds: the envelope header and the caller's bytes for symmetric keys;
    /// nothing for RSA-OAEP (most backends have no label), whose header is checked by the
    /// catalog lookup instead.
    fn provider_aad(key: &KeyRecord, header: &[u8], aad: &[u8]) -> Vec<u8> {
        if key.algorithm.is_symmetric() {
            envelope::bound_aad(header, aad)
        } else {
            Vec::new()
        }
    }

    /// Seals `plaintext` under the key's primary version into a keygate ciphertext.
    async fn seal_with(
        &self,
        scope: &mut Scope<'_>,
        key: &KeyRecord,
        plaintext: &SecretBytes,
        aad: &[u8],
    ) -> Result<(Vec<u8>, u32), GatewayError> {
        if let Some(max) = key.algorithm.max_plaintext() {
            validate::size(
                &format!("plaintext for {}", key.algorithm),
                plaintext.len(),
                max,
            )?;
        }
        let version = key.primary();
        let header = envelope::header(&key.id, version.version)?;
        let provider = self.provider_for(key)?;
        let reply = self
            .provider_call(
                &key.provider,
                provider.encrypt(
                    &key.version_ref(version),
                    plaintext,
                    &Self::provider_aad(key, &header, aad),
                ),
            )
            .await?;
        scope.note_provider_request(reply.request_id);
        Ok((envelope::seal(&header, &reply.value), version.version))
    }

    /// Opens a keygate ciphertext: resolves its key and version from the header, admits
    /// `action` on that key, and asks the provider.
    async fn open_with(
        &self,
        scope: &mut Scope<'_>,
        action: Action,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<(SecretBytes, Arc<KeyRecord>, u32), GatewayError> {
        validate::size(
            "ciphertext",
            ciphertext.len(),
            self.limits.max_plaintext_bytes + 4096 + HEADER_LEN,
        )?;
        let env = envelope::open(ciphertext)?;
        let key_id = env.key_id.to_string();
        let key = self.catalog.get_by_id(&key_id).ok_or_else(|| {
            GatewayError::InvalidArgument(format!(
                "ciphertext was made under key id {key_id}, which this gateway does not hold (a foreign or forged ciphertext)"
            ))
        })?;
        let key = scope.admit_record(key, action)?;
        self.check_aad(&key, aad)?;
        let version: &VersionRecord = key.version(env.key_version).ok_or_else(|| {
            GatewayError::InvalidArgument(format!(
                "ciphertext names version {} of key '{}', which has versions 1 to {}",
                env.key_version,
                key.name,
                key.primary().version
            ))
        })?;
        scope.note_version(version.version);
        let provider = self.provider_for(&key)?;
        let reply = self
            .provider_call(
                &key.provider,
                provider.decrypt(
                    &key.version_ref(version),
                    env.blob,
                    &Self::provider_aad(&key, env.header, aad),
                ),
            )
            .await?;
        scope.note_provider_request(reply.request_id);
        let version = version.version;
        Ok((reply.value, key, version))
    }

    pub async fn encrypt(
        &self,
        meta: &CallMeta,
        req: pb::EncryptRequest,
    ) -> Result<pb::EncryptResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::Encrypt);
        // Move the plaintext into a zeroizing buffer at once.
        let plaintext = SecretBytes::new(req.plaintext);
        let result = async {
            scope.authenticate()?;
            validate::size(
                "plaintext",
                plaintext.len(),
                self.limits.max_plaintext_bytes,
            )?;
            let key = scope.admit(&req.key)?;
            self.check_aad(&key, &req.associated_data)?;
            let (ciphertext, version) = self
                .seal_with(&mut scope, &key, &plaintext, &req.associated_data)
                .await?;
            scope.note_version(version);
            Ok(pb::EncryptResponse {
                ciphertext,
                key_id: key.id.clone(),
                key_version: version,
            })
        }
        .await;
        scope.finish(result).await
    }

    pub async fn decrypt(
        &self,
        meta: &CallMeta,
        req: pb::DecryptRequest,
    ) -> Result<pb::DecryptResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::Decrypt);
        let result = async {
            scope.authenticate()?;
            let (plaintext, key, version) = self
                .open_with(
                    &mut scope,
                    Action::Decrypt,
                    &req.ciphertext,
                    &req.associated_data,
                )
                .await?;
            Ok(pb::DecryptResponse {
                plaintext: plaintext.into_unprotected(),
                key_id: key.id.clone(),
                key_name: key.name.clone(),
                key_version: version,
            })
        }
        .await;
        scope.finish(result).await
    }

    pub async fn generate_data_key(
        &self,
        meta: &CallMeta,
        req: pb::GenerateDataKeyRequest,
    ) -> Result<pb::GenerateDataKeyResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::GenerateDataKey);
        let result = async {
            scope.authenticate()?;
            let len = match req.length_bytes as usize {
                0 => DATA_KEY_DEFAULT,
                n if (DATA_KEY_MIN..=DATA_KEY_MAX).contains(&n) => n,
                n => {
                    return Err(GatewayError::InvalidArgument(format!(
                        "length_bytes is {n}; data keys are {DATA_KEY_MIN} to {DATA_KEY_MAX} bytes"
                    )));
                }
            };
            let key = scope.admit(&req.key)?;
            if !key.algorithm.is_symmetric() {
                return Err(GatewayError::FailedPrecondition(format!(
                    "key '{}' is {}; data keys are sealed under symmetric keys (aes-256-gcm)",
                    key.name, key.algorithm
                )));
            }
            self.check_aad(&key, &req.associated_data)?;
            let version = key.primary();
            let header = envelope::header(&key.id, version.version)?;
            let provider = self.provider_for(&key)?;
            let reply = self
                .provider_call(
                    &key.provider,
                    provider.generate_data_key(
                        &key.version_ref(version),
                        DataKeySpec { len },
                        &Self::provider_aad(&key, &header, &req.associated_data),
                    ),
                )
                .await?;
            scope.note_provider_request(reply.request_id);
            scope.note_version(version.version);
            scope.detail("with_plaintext", !req.without_plaintext);
            let data_key = reply.value;
            Ok(pb::GenerateDataKeyResponse {
                // Dropping the SecretBytes zeroizes it when the caller asked for none.
                plaintext: if req.without_plaintext {
                    Vec::new()
                } else {
                    data_key.plaintext.into_unprotected()
                },
                ciphertext: envelope::seal(&header, &data_key.sealed),
                key_id: key.id.clone(),
                key_version: version.version,
            })
        }
        .await;
        scope.finish(result).await
    }

    /// Decrypts under the source key and encrypts under the destination; the plaintext stays
    /// in a zeroizing buffer inside the gateway.
    pub async fn re_encrypt(
        &self,
        meta: &CallMeta,
        req: pb::ReEncryptRequest,
    ) -> Result<pb::ReEncryptResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::ReEncrypt);
        let result = async {
            scope.authenticate()?;
            let (plaintext, source, source_version) = self
                .open_with(
                    &mut scope,
                    Action::ReEncrypt,
                    &req.ciphertext,
                    &req.source_associated_data,
                )
                .await?;
            let destination = if req.destination_key.is_empty() {
                source.clone()
            } else {
                scope.admit(&req.destination_key)?
            };
            self.check_aad(&destination, &req.destination_associated_data)?;
            scope.detail("source_key_id", source.id.clone());
            scope.detail("source_key_version", source_version);
            let (ciphertext, version) = self
                .seal_with(
                    &mut scope,
                    &destination,
                    &plaintext,
                    &req.destination_associated_data,
                )
                .await?;
            scope.note_key(&destination);
            scope.note_version(version);
            Ok(pb::ReEncryptResponse {
                ciphertext,
                source_key_id: source.id.clone(),
                source_key_version: source_version,
                key_id: destination.id.clone(),
                key_version: version,
            })
        }
        .await;
        scope.finish(result).await
    }
}
