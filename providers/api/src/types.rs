use crate::{Algorithm, KeyUri, SecretBytes};
use std::collections::BTreeMap;
use std::time::Duration;

/// A provider's answer plus the backend's own request id (AWS `x-amzn-RequestId`, Vault
/// `request_id`, …), so the audit log can join gateway events to the backend's audit stream.
#[derive(Debug)]
pub struct Replied<T> {
    pub value: T,
    pub request_id: Option<String>,
}

impl<T> Replied<T> {
    /// A reply from a backend that has no request ids of its own (the local provider).
    pub fn local(value: T) -> Self {
        Self {
            value,
            request_id: None,
        }
    }

    pub fn with_request_id(value: T, request_id: Option<String>) -> Self {
        Self { value, request_id }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Replied<U> {
        Replied {
            value: f(self.value),
            request_id: self.request_id,
        }
    }
}

/// What the gateway asks a provider to create.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// keygate's name for the key (`payments/card-dek`); providers may use it in their own
    /// names, labels or aliases.
    pub name: String,
    /// keygate's immutable key id.
    pub key_id: String,
    pub algorithm: Algorithm,
    pub owner: String,
    pub environment: String,
    /// Fixed at creation; providers with automatic rotation set their period from it.
    pub crypto_period: Duration,
    /// Extra labels/tags to carry into the backend.
    pub labels: BTreeMap<String, String>,
}

/// The state of a key as the backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKeyState {
    Enabled,
    Disabled,
    PendingDestruction,
    Destroyed,
}

/// One version of a key. `number` counts from 1 in creation order; `provider_version` is the
/// backend's own name for it (a Vault version, a GCP cryptoKeyVersion, a PKCS#11 object id…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionInfo {
    pub number: u32,
    pub provider_version: String,
}

#[derive(Debug, Clone)]
pub struct ProviderKey {
    pub uri: KeyUri,
    pub algorithm: Algorithm,
    pub state: ProviderKeyState,
    /// Oldest first; the last is the primary (used for new encryptions and signatures).
    pub versions: Vec<KeyVersionInfo>,
}

/// A key of another provider instance that an instance cannot work without (the local
/// provider's root-key wrapper); the gateway refuses to destroy or disable it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededKey {
    /// The instance holding the key.
    pub provider: String,
    /// As that instance describes it (its canonical URI, as in keygate's catalog).
    pub uri: KeyUri,
    /// The version in use, if one is: retiring it is refused too.
    pub version: Option<u32>,
}

/// What a backend does about rotating one key by itself (see
/// [`crate::KeyProvider::own_rotation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnRotation {
    /// The backend does not rotate the key: keygate does.
    Never,
    /// The backend rotated the key and this version, newer than keygate's newest, is primary
    /// there.
    Made(KeyVersionInfo),
    /// The backend rotates the key but has not since keygate's newest version; when it next
    /// will, if it says (Unix milliseconds).
    Expected { at_ms: Option<i64> },
}

/// One item of a batch request ([`crate::KeyProvider::encrypt_batch`],
/// [`crate::KeyProvider::decrypt_batch`]): a plaintext or a backend blob, with its associated
/// data.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub data: &'a [u8],
    pub aad: &'a [u8],
}

/// The exact key version an operation uses. The gateway resolves it from its catalog, so a
/// provider need not look the key up first.
#[derive(Debug, Clone)]
pub struct VersionRef {
    pub uri: KeyUri,
    pub algorithm: Algorithm,
    pub version: u32,
    pub provider_version: String,
}

#[derive(Debug, Clone, Copy)]
pub struct DataKeySpec {
    /// Length of the data key in bytes (32 for AES-256).
    pub len: usize,
}

/// A data key: its plaintext (for the caller to use and discard) and the same key sealed under
/// the provider key (for the caller to store).
#[derive(Debug)]
pub struct DataKey {
    pub plaintext: SecretBytes,
    pub sealed: Vec<u8>,
}

/// What is signed: the message itself, or a digest the caller already computed with the
/// algorithm's hash.
#[derive(Debug, Clone, Copy)]
pub enum SignInput<'a> {
    Message(&'a [u8]),
    Digest(&'a [u8]),
}

/// A public key as DER SubjectPublicKeyInfo.
#[derive(Debug, Clone)]
pub struct PublicKeyInfo {
    pub spki_der: Vec<u8>,
}

/// What rotating a backend's own master key did (see
/// [`crate::KeyProvider::rotate_master_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterKeyRotation {
    /// The master key's generation now in force (counts rotations).
    pub generation: u32,
    /// How many wrapped keys were rewrapped under the new master key.
    pub rewrapped: usize,
    /// The key (in another provider) that sealed the new root key, if one did: the evidence
    /// an operator needs before destroying the key that sealed the previous one.
    pub sealed_by: Option<NeededKey>,
}

/// What a backend can do. The gateway refuses, with a clear message, any call outside it.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub algorithms: Vec<Algorithm>,
    pub rotate: bool,
    pub disable: bool,
    pub destroy: bool,
    pub list: bool,
    /// Sign/verify accept a precomputed digest.
    pub sign_digest: bool,
    /// Operations use the exact version a [`VersionRef`] names. Without it (AWS KMS) the
    /// backend encrypts and signs with the key's newest material whatever version is asked,
    /// and its blobs name their own version.
    pub pins_version: bool,
    /// The backend signs digests only: messages are hashed in keygate first
    /// ([`crate::kit::prehash`]), so a message never reaches it.
    pub digest_only: bool,
    /// Bring-your-own-key: [`crate::KeyProvider::import_parameters`] and
    /// [`crate::KeyProvider::import_key`] work.
    pub import: bool,
    /// [`crate::KeyProvider::setting_conflicts`] reads a key's backend settings.
    pub settings: bool,
}

/// A backend setting of a key that contradicts what keygate sets or relies on (deletion
/// protection off, automatic rotation off where keygate turned it on, material exportable),
/// for posture scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingConflict {
    /// The backend's own name for the setting (`deletion_allowed`, `KeyRotationEnabled`).
    pub setting: String,
    /// What keygate sets or relies on, and why.
    pub expected: String,
    /// What the backend holds.
    pub found: String,
}

impl Capabilities {
    pub fn supports(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }
}

#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub page_size: u32,
    /// Opaque token from the previous [`Listing`]; empty for the first page.
    pub page_token: String,
}

/// A key the backend holds, whether or not keygate created it (inventory).
#[derive(Debug, Clone)]
pub struct ListedKey {
    pub uri: KeyUri,
    pub algorithm: Option<Algorithm>,
    pub state: ProviderKeyState,
    /// keygate's key id, when the backend carries it (tag, label, metadata).
    pub keygate_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub keys: Vec<ListedKey>,
    pub next_page_token: String,
}

/// How key material is wrapped for import (BYOK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WrappingAlgorithm {
    /// The material itself encrypted with RSA-OAEP (SHA-1, MGF1-SHA-1): symmetric keys only,
    /// since the material must fit one RSA block.
    RsaOaepSha1,
    /// The material itself encrypted with RSA-OAEP (SHA-256, MGF1-SHA-256): symmetric keys
    /// only, since the material must fit one RSA block.
    RsaOaepSha256,
    /// CKM_RSA_AES_KEY_WRAP with SHA-1 OAEP: an ephemeral AES-256 key wrapped with
    /// RSA-OAEP-SHA-1, then the material wrapped with AES-KWP (RFC 5649) under it.
    RsaAesKeyWrapSha1,
    /// CKM_RSA_AES_KEY_WRAP: an ephemeral AES-256 key wrapped with RSA-OAEP-SHA-256, then the
    /// material wrapped with AES-KWP (RFC 5649) under it. The one wrap every cloud accepts.
    RsaAesKeyWrapSha256,
}

impl WrappingAlgorithm {
    pub const ALL: [WrappingAlgorithm; 4] = [
        WrappingAlgorithm::RsaOaepSha1,
        WrappingAlgorithm::RsaOaepSha256,
        WrappingAlgorithm::RsaAesKeyWrapSha1,
        WrappingAlgorithm::RsaAesKeyWrapSha256,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WrappingAlgorithm::RsaOaepSha1 => "rsa-oaep-sha1",
            WrappingAlgorithm::RsaOaepSha256 => "rsa-oaep-sha256",
            WrappingAlgorithm::RsaAesKeyWrapSha1 => "rsa-aes-key-wrap-sha1",
            WrappingAlgorithm::RsaAesKeyWrapSha256 => "rsa-aes-key-wrap-sha256",
        }
    }

    /// Whether the OAEP step hashes with SHA-1 (else SHA-256).
    pub fn oaep_sha1(self) -> bool {
        matches!(
            self,
            WrappingAlgorithm::RsaOaepSha1 | WrappingAlgorithm::RsaAesKeyWrapSha1
        )
    }

    /// Whether the material goes under an ephemeral AES key (else straight under RSA-OAEP).
    pub fn two_step(self) -> bool {
        matches!(
            self,
            WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256
        )
    }
}

impl std::fmt::Display for WrappingAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WrappingAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown wrapping algorithm '{s}': expected one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

/// What [`crate::KeyProvider::import_parameters`] is asked for: a wrapping key for material
/// of `algorithm` to go into `key` (a key the backend created to receive imported material).
#[derive(Debug, Clone)]
pub struct ImportSpec {
    pub key: KeyUri,
    pub algorithm: Algorithm,
    pub wrapping: WrappingAlgorithm,
}

/// The backend's answer: the public key to wrap with and what must come back with the wrapped
/// material.
#[derive(Debug, Clone)]
pub struct ImportParams {
    pub wrapping: WrappingAlgorithm,
    /// The wrapping public key, DER SubjectPublicKeyInfo.
    pub wrapping_key_spki_der: Vec<u8>,
    /// An opaque token the backend wants back with the material (AWS's ImportToken); empty
    /// when it has none.
    pub import_token: Vec<u8>,
    /// When the wrapping key and token stop being accepted; `None` when they do not expire.
    pub expires_at: Option<std::time::SystemTime>,
}

/// How [`crate::KeyProvider::import_key_with`] imports: plainly (the default: material that
/// does not expire, into a key that has none yet), with an expiry, or again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// When the target deletes the imported material (AWS `ValidTo`); `None`: never.
    pub material_expires_at: Option<std::time::SystemTime>,
    /// A re-import: the same material again into the key's version that held it (its
    /// provider version), after it expired or was deleted; `None`: a first import.
    pub reimport_version: Option<String>,
}

impl ImportOptions {
    /// A first import of material that does not expire: what every import target takes.
    pub fn is_plain(&self) -> bool {
        self.material_expires_at.is_none() && self.reimport_version.is_none()
    }
}

/// Key material wrapped for import. Wrapped bytes are not plaintext, but they are key
/// material all the same: zeroized on drop, never printed.
pub struct WrappedKey(SecretBytes);

impl WrappedKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretBytes::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedKey([REDACTED; {} bytes])", self.0.len())
    }
}

/// Key material wrapped by its source (an HSM) for one import.
#[derive(Debug)]
pub struct WrappedForImport {
    pub wrapped: WrappedKey,
    /// The ephemeral AES key of a two-step wrap left the source to be OAEP-wrapped by the
    /// gateway (the source's OAEP lacks the hash the target asks for). The material itself
    /// never leaves the source unwrapped; the import record says when this happened.
    pub ephemeral_left_source: bool,
}
