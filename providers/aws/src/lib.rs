//! keygate's AWS KMS provider.
//!
//! One [`AwsKmsProvider`] serves one account and region through `aws-sdk-kms`, built with
//! [`AwsKmsProvider::new`]`(name, `[`AwsKmsConfig`]`)`. What the gateway relies on:
//!
//! - **URIs**: `awskms:///arn:aws:kms:REGION:ACCOUNT:key/ID` (minted by `create_key`); alias
//!   ARNs, bare key ids and `alias/…` names are accepted too. ARNs of another region or
//!   account are refused with `InvalidInput`.
//! - **Blobs**: `encrypt` and `generate_data_key` return KMS's CiphertextBlob unchanged. It
//!   names the key and its key material itself, so it decrypts whichever version made it;
//!   KMS always encrypts with the newest material, whatever `VersionRef::version` says.
//!   Associated data travels as the encryption context `{"keygate:aad": base64(aad)}`
//!   (symmetric keys only; KMS has no context for RSA).
//! - **Versions**: see `keys.rs`: 1 is the original material, one more per rotation (from
//!   ListKeyRotations, or keygate's own count where the endpoint lacks it). Only symmetric
//!   encryption keys rotate; `rotate` on any other key is `Unsupported`.
//! - **Destruction**: `schedule_destroy` starts KMS's own 7-30 day window (other windows are
//!   refused); `cancel_destroy` cancels and re-enables; `destroy` sends nothing, since KMS
//!   deletes the key itself at the end of the window: it only checks the key is pending
//!   deletion or gone.
//! - **Request ids**: every reply carries `x-amzn-RequestId`; error messages include it.
//! - **Retries and timeouts**: the SDK makes one attempt per call, bounded by `timeout_ms`;
//!   throttling (ThrottlingException, LimitExceededException) is `Throttled` and outages
//!   `Unavailable` at once. keygate's guard retries them for idempotent operations (see
//!   `client.rs` for why there and not in the SDK), and its token bucket keeps the instance
//!   under KMS's request quota.

mod algorithms;
mod arn;
mod client;
mod config;
mod crypto;
mod errors;
mod import;
mod inputs;
mod keys;
mod lifecycle;
mod listing;
mod lookup;
mod objects;
mod provider;
mod settings;
mod signing;

pub use algorithms::{MAX_KMS_INPUT, SUPPORTED};
pub use config::{AwsKmsConfig, AwsKmsFactory, CredentialsConfig, factory};
pub use objects::{AwsAuditFeed, S3Objects};
pub use provider::{AAD_CONTEXT_KEY, AwsKmsProvider, DELETION_WINDOW_DAYS};

/// The URI scheme of AWS KMS keys.
pub const SCHEME: &str = arn::SCHEME;

/// The key URI for a KMS key ARN.
pub fn key_uri(arn: &str) -> keygate_provider::KeyUri {
    arn::uri(arn)
}

/// The URI and ARN parsers, for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::arn::{account_of, key_id};
}
