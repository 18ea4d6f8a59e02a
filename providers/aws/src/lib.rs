//! keygate's AWS KMS provider.
//!
//! One [`AwsKmsProvider`] serves one account and region through `aws-sdk-kms`. Keys are named
//! `awskms:///arn:aws:kms:REGION:ACCOUNT:key/ID`; the blob `encrypt` returns is KMS's own
//! CiphertextBlob, unchanged (it names the key and key material itself, so any version of the
//! key decrypts it). See `keys.rs` for how versions follow rotations.

mod algorithms;
mod arn;
mod client;
mod config;
mod errors;
mod inputs;
mod keys;
mod lookup;
mod provider;

pub use algorithms::{MAX_KMS_INPUT, SUPPORTED};
pub use config::{AwsKmsConfig, CredentialsConfig, RetryConfig};
pub use provider::{AAD_CONTEXT_KEY, AwsKmsProvider, DELETION_WINDOW_DAYS};

/// The URI scheme of AWS KMS keys.
pub const SCHEME: &str = arn::SCHEME;

/// The key URI for a KMS key ARN.
pub fn key_uri(arn: &str) -> keygate_provider::KeyUri {
    arn::uri(arn)
}
