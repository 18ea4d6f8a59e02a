//! Encryption: encrypt, decrypt and data keys. Associated data travels as the encryption
//! context entry [`AAD_CONTEXT_KEY`].

use crate::algorithms::{self, MAX_KMS_INPUT};
use crate::provider::{AAD_CONTEXT_KEY, AwsKmsProvider};
use aws_sdk_kms::primitives::Blob;
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, DataKey, DataKeySpec, KeyPurpose, ProviderError, Replied, Result, SecretBytes,
    VersionRef,
};

pub(crate) async fn encrypt(
    p: &AwsKmsProvider,
    v: &VersionRef,
    plaintext: &SecretBytes,
    aad: &[u8],
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "encrypt";
    kit::require_purpose(&p.name, v, KeyPurpose::Encrypt, Op::Encrypt)?;
    let limit = v.algorithm.max_plaintext().unwrap_or(MAX_KMS_INPUT);
    if plaintext.len() > limit {
        return Err(p.too_big(OP, &v.uri, plaintext.len(), limit));
    }
    let alg = algorithms::encryption(v.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("encrypt with {}", v.algorithm))
    })?;
    let mut request = p
        .client
        .encrypt()
        .key_id(p.key_id(&v.uri)?)
        .plaintext(Blob::new(plaintext.expose()))
        .encryption_algorithm(alg);
    if let Some(ctx) = p.context(v, aad, OP)? {
        request = request.encryption_context(AAD_CONTEXT_KEY, ctx);
    }
    let sent = p.call(OP, v.uri.as_str(), request.send()).await?;
    Ok(sent
        .field("CiphertextBlob", |o| o.ciphertext_blob)?
        .map(Blob::into_inner))
}

pub(crate) async fn decrypt(
    p: &AwsKmsProvider,
    v: &VersionRef,
    blob: &[u8],
    aad: &[u8],
) -> Result<Replied<SecretBytes>> {
    const OP: &str = "decrypt";
    kit::require_purpose(&p.name, v, KeyPurpose::Encrypt, Op::Decrypt)?;
    let alg = algorithms::encryption(v.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("decrypt with {}", v.algorithm))
    })?;
    // KeyId is sent so that a blob made under another key fails instead of decrypting.
    let mut request = p
        .client
        .decrypt()
        .key_id(p.key_id(&v.uri)?)
        .ciphertext_blob(Blob::new(blob))
        .encryption_algorithm(alg);
    if let Some(ctx) = p.context(v, aad, OP)? {
        request = request.encryption_context(AAD_CONTEXT_KEY, ctx);
    }
    let sent = p.call(OP, v.uri.as_str(), request.send()).await?;
    Ok(sent
        .field("Plaintext", |o| o.plaintext)?
        .map(|b| SecretBytes::new(b.into_inner())))
}

pub(crate) async fn generate_data_key(
    p: &AwsKmsProvider,
    v: &VersionRef,
    spec: DataKeySpec,
    aad: &[u8],
) -> Result<Replied<DataKey>> {
    const OP: &str = "generate data key";
    kit::require_purpose(&p.name, v, KeyPurpose::Encrypt, Op::GenerateDataKey)?;
    if v.algorithm != Algorithm::Aes256Gcm {
        return Err(ProviderError::unsupported(
            &p.name,
            format!(
                "data keys under {} keys (AWS KMS makes them only under symmetric keys)",
                v.algorithm
            ),
        ));
    }
    kit::check_len(&p.name, spec.len)?;
    let mut request = p
        .client
        .generate_data_key()
        .key_id(p.key_id(&v.uri)?)
        .number_of_bytes(spec.len as i32);
    if let Some(ctx) = p.context(v, aad, OP)? {
        request = request.encryption_context(AAD_CONTEXT_KEY, ctx);
    }
    let sent = p.call(OP, v.uri.as_str(), request.send()).await?;
    sent.field("Plaintext or CiphertextBlob", |o| {
        Some(DataKey {
            plaintext: SecretBytes::new(o.plaintext?.into_inner()),
            sealed: o.ciphertext_blob?.into_inner(),
        })
    })
}
