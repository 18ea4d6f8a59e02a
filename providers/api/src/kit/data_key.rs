//! Data keys for backends without a data key call of their own: random bytes sealed with the
//! provider's `encrypt`.

use super::{Op, require_purpose};
use crate::{DataKey, DataKeySpec, KeyProvider, KeyPurpose, ProviderError, Replied, Result};
use crate::{SecretBytes, VersionRef};

/// The largest data key one call hands out.
pub const MAX_DATA_KEY_LEN: usize = 1024;

/// `len` random bytes from the system RNG, in a zeroizing buffer.
pub fn random_data_key(provider: &str, len: usize) -> Result<SecretBytes> {
    check_len(provider, len)?;
    let mut bytes = SecretBytes::zeroed(len);
    aws_lc_rs::rand::fill(bytes.expose_mut())
        .map_err(|_| ProviderError::internal(provider, "the system RNG failed"))?;
    Ok(bytes)
}

/// Refuses a data key length outside 1..=[`MAX_DATA_KEY_LEN`].
pub fn check_len(provider: &str, len: usize) -> Result<()> {
    if (1..=MAX_DATA_KEY_LEN).contains(&len) {
        return Ok(());
    }
    Err(ProviderError::invalid(
        provider,
        format!("data keys are 1 to {MAX_DATA_KEY_LEN} bytes, asked for {len}"),
    ))
}

/// Seals `plaintext` (a data key drawn by the caller, e.g. from an HSM's RNG) under `key`
/// with the provider's `encrypt`, and returns both.
pub async fn seal_data_key<P: KeyProvider + ?Sized>(
    provider: &P,
    key: &VersionRef,
    plaintext: SecretBytes,
    aad: &[u8],
) -> Result<Replied<DataKey>> {
    require_purpose(
        provider.name(),
        key,
        KeyPurpose::Encrypt,
        Op::GenerateDataKey,
    )?;
    let sealed = provider.encrypt(key, &plaintext, aad).await?;
    Ok(sealed.map(|sealed| DataKey { plaintext, sealed }))
}

/// The default [`KeyProvider::generate_data_key`]: [`random_data_key`], then
/// [`seal_data_key`] (which checks the key's purpose).
pub async fn generate_data_key<P: KeyProvider + ?Sized>(
    provider: &P,
    key: &VersionRef,
    spec: DataKeySpec,
    aad: &[u8],
) -> Result<Replied<DataKey>> {
    let plaintext = random_data_key(provider.name(), spec.len)?;
    seal_data_key(provider, key, plaintext, aad).await
}
