//! Encrypt, Decrypt, GenerateDataKey, ReEncrypt.

use crate::catalog::{KeyRecord, VersionRecord};
use crate::gateway::envelope::{self, HEADER_LEN};
use crate::gateway::runner::{Admitted, Exec, Operation, Reads, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;
use keygate_provider::{DataKeySpec, SecretBytes};

/// Data keys: 16-64 bytes, 32 (AES-256) by default.
const DATA_KEY_DEFAULT: usize = 32;
const DATA_KEY_MIN: usize = 16;
const DATA_KEY_MAX: usize = 64;

/// A ciphertext longer than this cannot hold a plaintext within the limit.
pub(super) fn max_ciphertext(settings: &Settings<'_>) -> usize {
    settings.limits.max_plaintext_bytes + 4096 + HEADER_LEN
}

pub(super) fn check_aad(
    settings: &Settings<'_>,
    key: &KeyRecord,
    aad: &[u8],
) -> Result<(), GatewayError> {
    validate::size(
        "associated_data",
        "associated_data",
        aad.len(),
        settings.limits.max_associated_data_bytes,
    )?;
    if !aad.is_empty() && !key.algorithm.is_symmetric() {
        return Err(GatewayError::invalid(
            "associated_data",
            format!(
                "key '{}' is {}, which takes no associated data; send none, or use an aes-256-gcm key",
                key.name, key.algorithm
            ),
        ));
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

/// What sealing one plaintext sends to the backend: the primary version, the envelope
/// header, and the associated data bound to it.
pub(super) struct Sealing<'k> {
    pub version: &'k VersionRecord,
    pub header: [u8; HEADER_LEN],
    pub provider_aad: Vec<u8>,
}

/// Checks a plaintext against the key and prepares its sealing.
pub(super) fn sealing<'k>(
    key: &'k Admitted,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Sealing<'k>, GatewayError> {
    if let Some(max) = key.algorithm.max_plaintext() {
        validate::size(
            "plaintext",
            &format!("plaintext for {}", key.algorithm),
            plaintext.len(),
            max,
        )?;
    }
    let version = key.primary();
    let header = envelope::header(&key.id, version.version)?;
    let provider_aad = provider_aad(key, &header, aad);
    Ok(Sealing {
        version,
        header,
        provider_aad,
    })
}

/// Seals `plaintext` under the key's primary version into a keygate ciphertext.
pub(super) async fn seal(
    cx: &Exec<'_, Reads>,
    key: &Admitted,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<(Vec<u8>, u32), GatewayError> {
    let sealing = sealing(key, plaintext, aad)?;
    let blob = cx
        .encrypt(key, sealing.version, plaintext, &sealing.provider_aad)
        .await?;
    Ok((
        envelope::seal(&sealing.header, &blob),
        sealing.version.version,
    ))
}

/// Opens the ciphertext the call was admitted from.
async fn open(
    cx: &mut Exec<'_, Reads>,
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<(SecretBytes, Admitted, u32), GatewayError> {
    let key = cx.key()?.clone();
    let number = cx.ciphertext_version()?;
    cx.note_version(number);
    let plaintext = open_version(cx, &key, number, ciphertext, aad).await?;
    Ok((plaintext, key, number))
}

/// What opening one ciphertext sends to the backend: the version, the backend's blob and the
/// associated data bound to the header.
pub(super) struct Opening<'k, 'c> {
    pub version: &'k VersionRecord,
    pub blob: &'c [u8],
    pub provider_aad: Vec<u8>,
}

/// Checks `ciphertext`, whose header names version `number` of `key` (the caller checked the
/// header names `key`), and prepares its opening.
pub(super) fn opening<'k, 'c>(
    settings: &Settings<'_>,
    key: &'k Admitted,
    number: u32,
    ciphertext: &'c [u8],
    aad: &[u8],
) -> Result<Opening<'k, 'c>, GatewayError> {
    check_aad(settings, key, aad)?;
    let version: &VersionRecord =
        key.version(number)
            .ok_or_else(|| GatewayError::CiphertextVersionUnknown {
                key: key.name.clone(),
                version: number,
                latest: key.primary().version,
            })?;
    crate::lifecycle::retirement::check_version(key, number)?;
    if ciphertext.len() <= HEADER_LEN {
        return Err(GatewayError::CiphertextMalformed(format!(
            "ciphertext is truncated: {} bytes, shorter than a keygate header ({HEADER_LEN} bytes) plus a body",
            ciphertext.len()
        )));
    }
    let (header, blob) = ciphertext.split_at(HEADER_LEN);
    Ok(Opening {
        version,
        blob,
        provider_aad: provider_aad(key, header, aad),
    })
}

/// Opens `ciphertext`, whose header names version `number` of `key` (the caller checked the
/// header names `key`).
pub(super) async fn open_version(
    cx: &Exec<'_, Reads>,
    key: &Admitted,
    number: u32,
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<SecretBytes, GatewayError> {
    let opening = opening(&cx.settings(), key, number, ciphertext, aad)?;
    cx.decrypt(key, opening.version, opening.blob, &opening.provider_aad)
        .await
}

pub struct Encrypt {
    pub key: String,
    pub plaintext: SecretBytes,
    pub associated_data: Vec<u8>,
}

pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub key_id: String,
    pub key_version: u32,
}

impl Operation for Encrypt {
    type Output = Sealed;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::Encrypt
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        validate::size(
            "plaintext",
            "plaintext",
            self.plaintext.len(),
            settings.limits.max_plaintext_bytes,
        )
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Sealed, GatewayError> {
        let key = cx.key()?.clone();
        check_aad(&cx.settings(), &key, &self.associated_data)?;
        let (ciphertext, version) = seal(cx, &key, &self.plaintext, &self.associated_data).await?;
        cx.note_version(version);
        Ok(Sealed {
            ciphertext,
            key_id: key.id.clone(),
            key_version: version,
        })
    }
}

pub struct Decrypt {
    pub ciphertext: Vec<u8>,
    pub associated_data: Vec<u8>,
}

pub struct Opened {
    pub plaintext: SecretBytes,
    pub key_id: String,
    pub key_name: String,
    pub key_version: u32,
}

impl Operation for Decrypt {
    type Output = Opened;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::Decrypt
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        validate::size(
            "ciphertext",
            "ciphertext",
            self.ciphertext.len(),
            max_ciphertext(settings),
        )
    }

    fn target(&self) -> Target<'_> {
        Target::Ciphertext(&self.ciphertext)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Opened, GatewayError> {
        let (plaintext, key, key_version) =
            open(cx, &self.ciphertext, &self.associated_data).await?;
        Ok(Opened {
            plaintext,
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            key_version,
        })
    }
}

pub struct GenerateDataKey {
    pub key: String,
    /// 0: the default (32 bytes).
    pub length_bytes: u32,
    pub associated_data: Vec<u8>,
    pub without_plaintext: bool,
}

pub struct DataKeyOut {
    /// `None` when the caller asked for the sealed copy only.
    pub plaintext: Option<SecretBytes>,
    pub ciphertext: Vec<u8>,
    pub key_id: String,
    pub key_version: u32,
}

impl GenerateDataKey {
    fn len(&self) -> Result<usize, GatewayError> {
        match self.length_bytes as usize {
            0 => Ok(DATA_KEY_DEFAULT),
            n if (DATA_KEY_MIN..=DATA_KEY_MAX).contains(&n) => Ok(n),
            n => Err(GatewayError::invalid(
                "length_bytes",
                format!(
                    "length_bytes is {n}; data keys are {DATA_KEY_MIN} to {DATA_KEY_MAX} bytes"
                ),
            )),
        }
    }
}

impl Operation for GenerateDataKey {
    type Output = DataKeyOut;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GenerateDataKey
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        self.len().map(|_| ())
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    fn ready(&self, cx: &Exec<'_, Reads>) -> Result<(), GatewayError> {
        let key = cx.key()?;
        if key.algorithm.is_symmetric() {
            Ok(())
        } else {
            Err(GatewayError::DataKeyNeedsSymmetricKey {
                key: key.name.clone(),
                algorithm: key.algorithm.to_string(),
            })
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<DataKeyOut, GatewayError> {
        let len = self.len()?;
        let key = cx.key()?.clone();
        check_aad(&cx.settings(), &key, &self.associated_data)?;
        let version = key.primary();
        let header = envelope::header(&key.id, version.version)?;
        let data_key = cx
            .generate_data_key(
                &key,
                version,
                DataKeySpec { len },
                &provider_aad(&key, &header, &self.associated_data),
            )
            .await?;
        cx.note_version(version.version);
        cx.detail("with_plaintext", !self.without_plaintext);
        Ok(DataKeyOut {
            // Dropping the SecretBytes zeroizes it when the caller asked for none.
            plaintext: (!self.without_plaintext).then_some(data_key.plaintext),
            ciphertext: envelope::seal(&header, &data_key.sealed),
            key_id: key.id.clone(),
            key_version: version.version,
        })
    }
}

/// Decrypts under the source key and encrypts under the destination; the plaintext stays in
/// a zeroizing buffer inside the gateway.
pub struct ReEncrypt {
    pub ciphertext: Vec<u8>,
    pub source_associated_data: Vec<u8>,
    /// Empty: the source key's newest version.
    pub destination_key: String,
    pub destination_associated_data: Vec<u8>,
}

pub struct ReSealed {
    pub ciphertext: Vec<u8>,
    pub source_key_id: String,
    pub source_key_version: u32,
    pub key_id: String,
    pub key_version: u32,
}

impl Operation for ReEncrypt {
    type Output = ReSealed;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ReEncrypt
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        validate::size(
            "ciphertext",
            "ciphertext",
            self.ciphertext.len(),
            max_ciphertext(settings),
        )
    }

    fn target(&self) -> Target<'_> {
        Target::Ciphertext(&self.ciphertext)
    }

    fn second_key(&self) -> Option<&str> {
        Some(&self.destination_key)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<ReSealed, GatewayError> {
        let (plaintext, source, source_version) =
            open(cx, &self.ciphertext, &self.source_associated_data).await?;
        let destination = cx.destination().cloned().unwrap_or_else(|| source.clone());
        check_aad(
            &cx.settings(),
            &destination,
            &self.destination_associated_data,
        )?;
        cx.detail("source_key_id", source.id.clone());
        cx.detail("source_key_version", source_version);
        let (ciphertext, version) = seal(
            cx,
            &destination,
            &plaintext,
            &self.destination_associated_data,
        )
        .await?;
        cx.note_key(&destination);
        cx.note_version(version);
        Ok(ReSealed {
            ciphertext,
            source_key_id: source.id.clone(),
            source_key_version: source_version,
            key_id: destination.id.clone(),
            key_version: version,
        })
    }
}
