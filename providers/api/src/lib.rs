//! The contract between the keygate gateway and a key backend.
//!
//! A backend (the embedded local provider, AWS KMS, Azure Key Vault, Google Cloud KMS,
//! Vault Transit, a PKCS#11 HSM) implements [`KeyProvider`]. The gateway never sees an SDK
//! type and a provider never sees a gateway type: everything crosses this crate.
//!
//! Invariants every provider keeps:
//! - key material never leaves the provider in plaintext, except a data key's plaintext in
//!   [`DataKey`], which the caller asked for (the envelope pattern);
//! - plaintext and secret material travel in [`SecretBytes`], which zeroizes on drop and never
//!   prints;
//! - an operation the backend lacks returns [`ProviderError::Unsupported`], never a fallback;
//! - error messages name the key URI and the operation, never a secret.

mod algorithm;
mod error;
mod provider;
mod secret;
mod secret_ref;
mod spki;
mod types;
mod uri;

pub mod context;
pub mod der;
pub mod kit;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use algorithm::{Algorithm, KeyPurpose, UnknownAlgorithm};
pub use error::{ProviderError, Result};
pub use provider::KeyProvider;
pub use secret::SecretBytes;
pub use secret_ref::{SecretRef, SecretRefError};
pub use spki::{der_tlv, spki_public_key_bits};
pub use types::{
    BatchItem, Capabilities, DataKey, DataKeySpec, ImportOptions, ImportParams, ImportSpec,
    KeySpec, KeyVersionInfo, ListedKey, Listing, MasterKeyRotation, NeededKey, OwnRotation,
    PageRequest, ProviderKey, ProviderKeyState, PublicKeyInfo, Replied, SettingConflict, SignInput,
    VersionRef, WrappedForImport, WrappedKey, WrappingAlgorithm,
};
pub use uri::KeyUri;
