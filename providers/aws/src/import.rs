//! BYOK into KMS: an EXTERNAL-origin key (made by `prepare_import`), GetParametersForImport
//! for a wrapping public key and import token, then ImportKeyMaterial: material that does not
//! expire, or (`ImportOptions::material_expires_at`) `KEY_MATERIAL_EXPIRES` with `ValidTo`.
//! A re-import (after the material expired or was deleted) is the same call on the same key
//! with `ImportType=EXISTING_KEY_MATERIAL` for symmetric encryption keys (the only keys that
//! take the parameter; KMS assumes it for the others once material was imported): KMS takes
//! only the material the key had.
//!
//! LocalStack 4.10 accepts `ValidTo` and `ImportType` but neither expires material nor
//! compares re-imported material with the old; DeleteImportedKeyMaterial leaves the key
//! `PendingImport`, as expiry does in KMS.
//!
//! LocalStack 4.10 unwraps RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256 and RSA_AES_KEY_WRAP_SHA_256,
//! but not RSA_AES_KEY_WRAP_SHA_1 (it answers KMSInvalidStateException).

use crate::lifecycle;
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, ImportType, OriginType, WrappingKeySpec,
};
use aws_smithy_types::{Blob, DateTime};
use keygate_provider::{
    ImportOptions, ImportParams, ImportSpec, KeySpec, KeyUri, KeyVersionInfo, ProviderError,
    Replied, Result, WrappedKey, WrappingAlgorithm,
};
use std::time::{Duration, SystemTime};

fn algorithm_spec(wrapping: WrappingAlgorithm) -> AlgorithmSpec {
    match wrapping {
        WrappingAlgorithm::RsaOaepSha1 => AlgorithmSpec::RsaesOaepSha1,
        WrappingAlgorithm::RsaOaepSha256 => AlgorithmSpec::RsaesOaepSha256,
        WrappingAlgorithm::RsaAesKeyWrapSha1 => AlgorithmSpec::RsaAesKeyWrapSha1,
        WrappingAlgorithm::RsaAesKeyWrapSha256 => AlgorithmSpec::RsaAesKeyWrapSha256,
    }
}

pub(crate) async fn prepare_import(p: &AwsKmsProvider, spec: &KeySpec) -> Result<Replied<KeyUri>> {
    let created = lifecycle::create(p, spec, true).await?;
    Ok(Replied::with_request_id(
        created.value.uri,
        created.request_id,
    ))
}

pub(crate) async fn import_parameters(
    p: &AwsKmsProvider,
    spec: &ImportSpec,
) -> Result<Replied<ImportParams>> {
    const OP: &str = "get parameters for import";
    if !spec.wrapping.two_step() && !spec.algorithm.is_symmetric() {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{OP} for {}: RSA-OAEP alone wraps only symmetric material, not {}",
                spec.key, spec.algorithm
            ),
        ));
    }
    let request = p
        .client
        .get_parameters_for_import()
        .key_id(p.key_id(&spec.key)?)
        .wrapping_algorithm(algorithm_spec(spec.wrapping))
        .wrapping_key_spec(WrappingKeySpec::Rsa3072);
    let sent = p.call(OP, spec.key.as_str(), request.send()).await?;
    let request_id = sent.request_id.clone();
    let out = sent.out;
    let at = p.at(OP, spec.key.as_str());
    let public = out.public_key().ok_or_else(|| at.missing("PublicKey"))?;
    let token = out
        .import_token()
        .ok_or_else(|| at.missing("ImportToken"))?;
    let expires_at = out.parameters_valid_to().and_then(|t| {
        u64::try_from(t.secs())
            .ok()
            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    });
    Ok(Replied::with_request_id(
        ImportParams {
            wrapping: spec.wrapping,
            wrapping_key_spki_der: public.as_ref().to_vec(),
            import_token: token.as_ref().to_vec(),
            expires_at,
        },
        request_id,
    ))
}

pub(crate) async fn import_key(
    p: &AwsKmsProvider,
    uri: &KeyUri,
    wrapped: &WrappedKey,
    params: &ImportParams,
    options: &ImportOptions,
) -> Result<Replied<KeyVersionInfo>> {
    let op = if options.reimport_version.is_some() {
        "re-import key material"
    } else {
        "import key material"
    };
    let now = SystemTime::now();
    if params.expires_at.is_some_and(|t| t <= now) {
        return Err(ProviderError::precondition(
            &p.name,
            format!("{op} into {uri}: the import token has expired; ask for new import parameters"),
        ));
    }
    if let Some(version) = &options.reimport_version
        && version != crate::keys::ORIGINAL
    {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{op} into {uri}: KMS keys with imported material have one version ('{}'), not '{version}'",
                crate::keys::ORIGINAL
            ),
        ));
    }
    let mut request = p
        .client
        .import_key_material()
        .key_id(p.key_id(uri)?)
        .import_token(Blob::new(params.import_token.clone()))
        .encrypted_key_material(Blob::new(wrapped.expose().to_vec()));
    request = match options.material_expires_at {
        None => request.expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire),
        Some(at) => {
            let secs = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .filter(|_| at > now)
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .ok_or_else(|| {
                    ProviderError::invalid(
                        &p.name,
                        format!("{op} into {uri}: the material's expiry must be in the future"),
                    )
                })?;
            request
                .expiration_model(ExpirationModelType::KeyMaterialExpires)
                .valid_to(DateTime::from_secs(secs))
        }
    };
    if options.reimport_version.is_some() {
        let metadata = p.metadata(op, uri).await?.value;
        if metadata.origin() != Some(&OriginType::External) {
            return Err(ProviderError::precondition(
                &p.name,
                format!(
                    "{op} into {uri}: the key's material was not imported (origin {:?})",
                    metadata.origin()
                ),
            ));
        }
        // Only symmetric encryption keys take ImportType; for the others KMS assumes the
        // existing material once some was imported.
        if metadata.key_spec() == Some(&aws_sdk_kms::types::KeySpec::SymmetricDefault) {
            request = request.import_type(ImportType::ExistingKeyMaterial);
        }
    }
    let sent = p.call(op, uri.as_str(), request.send()).await?;
    Ok(Replied::with_request_id(
        KeyVersionInfo {
            number: 1,
            provider_version: crate::keys::ORIGINAL.into(),
        },
        sent.request_id,
    ))
}
