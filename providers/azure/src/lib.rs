//! keygate's Azure Key Vault provider (`kind = "azure-keyvault"`), on Microsoft's
//! `azure_security_keyvault_keys` and `azure_identity`.
//!
//! One [`AzureKeyVaultProvider`] serves one vault or Managed HSM, built with
//! [`AzureKeyVaultProvider::new`]`(name, `[`AzureKeyVaultConfig`]`)`. What the gateway relies on:
//!
//! - **URIs**: `azurekms://HOST/keys/NAME`; the Key Vault name is derived from keygate's name
//!   (see `names.rs`). A URI of another vault is refused with `InvalidInput`.
//! - **Keys**: RSA 2048/3072/4096 (RSA-OAEP-256; PS256 or RS256) and EC P-256/P-384
//!   (ES256/ES384), `-HSM` types when `hsm` is set or in a Managed HSM; in a Managed HSM also
//!   `oct-HSM` AES-256 keys (A256GCM, A256KW). `key_ops` are only what the purpose needs;
//!   owner, purpose, environment and crypto-period are tags; the rotation policy rotates
//!   after the crypto-period.
//! - **Versions**: Key Vault's opaque version ids are `provider_version`; keygate numbers
//!   them in creation order and tags each version it makes with its number (`keys.rs`).
//! - **Blobs**: one format byte, then Key Vault's output: RSA-OAEP-256 ciphertext, or for
//!   AES-GCM the HSM's IV and tag before the ciphertext; wrapped data keys are marked apart
//!   (`crypto.rs`). Every operation pins the version, so old versions keep decrypting.
//! - **Signatures**: Key Vault signs digests; messages are hashed here (the kit's
//!   `prehash`), and ECDSA's JWS `r‖s` is converted to and from DER.
//! - **Destruction**: `schedule_destroy` deletes (soft delete, recoverable); `cancel_destroy`
//!   recovers; `destroy` purges at the end of keygate's window.
//! - **BYOK**: `import_parameters` makes an import-only `RSA-HSM` key exchange key;
//!   `import_key` sends CKM_RSA_AES_KEY_WRAP material as a key transfer blob (`import.rs`).
//! - **Request ids**: `x-ms-client-request-id` is keygate's request id (Key Vault's
//!   AuditEvent `correlationId`); the reply's `x-ms-request-id` is the provider request id.
//! - **Retries**: the SDK makes one attempt; 429/5xx are `Throttled`/`Unavailable` with
//!   their `Retry-After` handed to the guard, which retries idempotent operations.

mod algorithms;
mod client;
mod config;
mod credentials;
mod crypto;
mod errors;
mod import;
mod keys;
mod lifecycle;
mod listing;
mod names;
mod provider;
mod signing;

pub use config::{AzureKeyVaultConfig, AzureKeyVaultFactory, CredentialConfig, factory};
pub use credentials::CertificateAssertion;
pub use keys::tag;
pub use provider::AzureKeyVaultProvider;

/// The `kind` of this provider's configuration sections.
pub const KIND: &str = "azure-keyvault";

/// The URI scheme of Key Vault keys.
pub const SCHEME: &str = names::SCHEME;

/// The algorithms an instance offers: a vault's, plus `aes-256-gcm` in a Managed HSM.
pub fn supported_algorithms(managed_hsm: bool) -> Vec<keygate_provider::Algorithm> {
    algorithms::supported(managed_hsm)
}

/// The URI and `kid` parsers, for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::names::{key_name, parse_kid, valid_name};
}
