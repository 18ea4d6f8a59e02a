//! keygate's Google Cloud KMS provider.
//!
//! One [`GcpKmsProvider`] serves one project and location through Google's official
//! `google-cloud-kms-v1` SDK, built with [`GcpKmsProvider::new`]`(name, `[`GcpKmsConfig`]`)`.
//! What the gateway relies on:
//!
//! - **URIs**: `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K` (minted by
//!   `create_key` in the configured key ring, which is created on first use). Keys of other
//!   projects or locations are refused with `InvalidInput`.
//! - **Keys**: GOOGLE_SYMMETRIC_ENCRYPTION, EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384,
//!   RSA_SIGN_PSS_2048_SHA256, RSA_SIGN_PSS_3072_SHA256, RSA_DECRYPT_OAEP_3072_SHA256 and
//!   HMAC_SHA256, as `aes-256-gcm`, `ecdsa-p256`, `ecdsa-p384`, `rsa-2048-pss`,
//!   `rsa-3072-pss`, `rsa-3072-oaep` and `hmac-sha256`. keygate's key id, name, owner,
//!   purpose, environment and crypto-period are labels (see `labels.rs`); symmetric keys get
//!   `rotationPeriod` = the crypto-period and `nextRotationTime` one period out.
//! - **Versions**: keygate's versions are the CryptoKeyVersions in id order (`keys.rs`);
//!   every operation names its exact version (`pins_version`). `rotate` adds a version and
//!   makes it primary, or adopts one Cloud KMS's own schedule made (`lifecycle.rs`).
//! - **Integrity**: CRC32C of every input sent, and every reply's checksums, `verified_*`
//!   flags and names checked (`integrity.rs`); a mismatch is `IntegrityFailed`, which the
//!   guard retries a limited number of times, as Google advises.
//! - **Request ids**: Cloud KMS returns none, so keygate's own goes into each request's
//!   `User-Agent`, which Cloud Audit Logs record as `callerSuppliedUserAgent`, and is the
//!   provider request id of every reply (`user_agent.rs`).
//! - **Destruction**: `schedule_destroy` schedules every live version (Cloud KMS destroys
//!   them after the key's `destroyScheduledDuration`, which a pending window may not
//!   exceed); `cancel_destroy` restores them (disabled); `destroy` only checks.
//! - **Retries and timeouts**: the SDK makes one attempt per request, bounded by `timeout`;
//!   RESOURCE_EXHAUSTED (429) is `Throttled`, outages `Unavailable`, for the guard to retry.
//! - **Import**: import jobs with RSA-OAEP-3072-SHA-256 (+ AES-KWP) wrapping (`import.rs`).

mod algorithms;
mod client;
mod config;
mod crypto;
mod errors;
mod import;
mod integrity;
mod keys;
mod labels;
mod lifecycle;
mod listing;
mod names;
mod provider;
mod signing;
mod user_agent;

pub use algorithms::SUPPORTED;
pub use config::{CredentialsConfig, GcpKmsConfig, GcpKmsFactory, ProtectionLevelConfig, factory};
pub use names::SCHEME;
pub use provider::GcpKmsProvider;
pub use user_agent::{REQUEST_ID_TOKEN, request_id_in, user_agent};

/// The provider kind in configuration: `kind = "gcp-kms"`.
pub const KIND: &str = "gcp-kms";

/// The key URI of a Cloud KMS crypto key resource name.
pub fn key_uri(crypto_key_name: &str) -> keygate_provider::KeyUri {
    names::uri(crypto_key_name)
}

/// The label a key keygate created carries its keygate key id in.
pub const KEY_ID_LABEL: &str = labels::KEY_ID;

/// The URI and resource-name parsers, for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::names::{valid_id, version_id, version_name};
    use keygate_provider::{KeyUri, Result};

    /// The crypto key name `uri` names, for an instance in project `p`, location `l`, key
    /// ring `r`.
    pub fn key_name<'u>(p: &str, l: &str, r: &str, uri: &'u KeyUri) -> Result<&'u str> {
        crate::names::Place {
            project: p.into(),
            location: l.into(),
            key_ring: r.into(),
        }
        .key_name("fuzz", uri)
    }
}
