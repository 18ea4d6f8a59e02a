//! keygate's embedded key provider (`local://KEY_ID`).
//!
//! Keys live in the gateway's data directory, one file per key, each version's material sealed
//! with AES-256-GCM under a data-encryption key (DEK) of its own. The DEKs live in the keyring,
//! wrapped under a key-encryption key (KEK), itself wrapped under the root key: derived from a
//! passphrase with Argon2id, or sealed by a key in another provider such as an HSM (the envelope
//! pattern; production), or generated and stored beside the keys (dev mode
//! only: anyone who can read the data directory can read the keys, and the gateway says so
//! loudly at start-up). Destroying a key erases its DEKs (cryptographic erasure); rotating the
//! master key replaces the KEK and rewraps every DEK.
//!
//! Cryptography is aws-lc-rs: AES-256-GCM, ECDSA P-256/P-384, Ed25519, RSA-OAEP (SHA-256),
//! RSA-PSS and PKCS#1 v1.5 signatures (SHA-256), HMAC-SHA-256.

mod config;
mod envelope;
mod keyring;
mod master_key;
mod material;
mod provider;
mod sealing;
mod store;

pub use config::{LocalConfig, LocalFactory, MasterKeyWrap, factory};
pub use envelope::{EnvelopeError, EnvelopeRecord, RootWrapper};
pub use master_key::{MasterKey, MasterKeyError, MasterKeySource};
pub use provider::{ERASURE_STATEMENT, ERASURE_STATEMENT_ENVELOPE, LocalProvider};

/// The URI scheme of keys held by this provider.
pub const SCHEME: &str = "local";

/// The key-blob parser, for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use keygate_provider::{Algorithm, SecretBytes};

    /// Opens `blob` (AES-256-GCM: nonce, ciphertext, tag) under a fixed key.
    pub fn open_aes_blob(blob: &[u8], aad: &[u8]) -> bool {
        let key = SecretBytes::new(vec![7u8; 32]);
        let key = crate::material::LoadedKey::load(Algorithm::Aes256Gcm, &key).expect("an AES key");
        key.decrypt(blob, aad).is_ok()
    }
}
