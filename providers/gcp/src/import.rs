//! Bring your own key through Cloud KMS import jobs.
//!
//! `prepare_import` creates the receiving crypto key: import-only, with no version (the
//! imported material is its first), keygate's labels, and no rotation schedule (Cloud KMS
//! could only rotate it to material generated in Cloud KMS, not the HSM's).
//! `import_parameters` creates an import job in the key's key ring (RSA 3072 wrapping key:
//! `RSA_OAEP_3072_SHA256_AES_256` for [`WrappingAlgorithm::RsaAesKeyWrapSha256`],
//! `RSA_OAEP_3072_SHA256` for [`WrappingAlgorithm::RsaOaepSha256`]), waits until it is
//! ACTIVE, and returns its public key; the import token is the job's resource name.
//! `import_key` sends the wrapped material as a new version, waits for the import to finish,
//! and, for symmetric keys, makes the new version primary.

use crate::algorithms;
use crate::keys;
use crate::labels;
use crate::names;
use crate::provider::GcpKmsProvider;
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose as Purpose;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState as VState;
use google_cloud_kms_v1::model::import_job::{ImportJobState, ImportMethod};
use google_cloud_kms_v1::model::{CryptoKey, CryptoKeyVersionTemplate, ImportJob};
use google_cloud_wkt::{Duration as WktDuration, FieldMask};
use keygate_provider::{
    ImportParams, ImportSpec, KeySpec, KeyUri, KeyVersionInfo, ProviderError, Replied, Result,
    WrappedKey, WrappingAlgorithm,
};
use std::time::{Duration, SystemTime};

const POLL: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(120);

pub(crate) async fn prepare_import(p: &GcpKmsProvider, spec: &KeySpec) -> Result<Replied<KeyUri>> {
    const OP: &str = "prepare import";
    let (purpose, algorithm) = algorithms::to_gcp(spec.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("importing {} keys", spec.algorithm))
    })?;
    let request_id = p.request_id();
    p.ensure_ring(&request_id).await?;
    let key = CryptoKey::new()
        .set_purpose(purpose)
        .set_import_only(true)
        .set_version_template(
            CryptoKeyVersionTemplate::new()
                .set_algorithm(algorithm)
                .set_protection_level(p.protection_level.clone()),
        )
        .set_labels(labels::for_spec(spec))
        .set_destroy_scheduled_duration(
            WktDuration::try_from(p.destroy_scheduled_duration).map_err(|e| {
                ProviderError::invalid(&p.name, format!("destroy scheduled duration: {e}"))
            })?,
        );
    let request = p
        .client
        .create_crypto_key()
        .set_parent(p.place.ring_path())
        .set_crypto_key_id(names::crypto_key_id(spec))
        .set_skip_initial_version_creation(true)
        .set_crypto_key(key);
    let created = p.call(OP, &spec.name, &request_id, request).await?.out;
    Ok(Replied::with_request_id(
        names::uri(&created.name),
        Some(request_id),
    ))
}

/// Cloud KMS has no direct RSA-OAEP-SHA-1 import method.
fn method(wrapping: WrappingAlgorithm) -> Option<ImportMethod> {
    match wrapping {
        WrappingAlgorithm::RsaAesKeyWrapSha256 => Some(ImportMethod::RsaOaep3072Sha256Aes256),
        WrappingAlgorithm::RsaAesKeyWrapSha1 => Some(ImportMethod::RsaOaep3072Sha1Aes256),
        WrappingAlgorithm::RsaOaepSha256 => Some(ImportMethod::RsaOaep3072Sha256),
        WrappingAlgorithm::RsaOaepSha1 => None,
    }
}

/// The key ring part of a crypto key name.
fn ring_of(key_name: &str) -> &str {
    key_name
        .split_once("/cryptoKeys/")
        .map(|(ring, _)| ring)
        .unwrap_or(key_name)
}

pub(crate) async fn import_parameters(
    p: &GcpKmsProvider,
    spec: &ImportSpec,
) -> Result<Replied<ImportParams>> {
    const OP: &str = "create import job";
    let name = p.key_name(&spec.key)?;
    let import_method = method(spec.wrapping).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("importing with {}", spec.wrapping))
    })?;
    if !spec.wrapping.two_step() && !spec.algorithm.is_symmetric() {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{OP} for {}: RSA-OAEP alone wraps only symmetric material, not {}; use {}",
                spec.key,
                spec.algorithm,
                WrappingAlgorithm::RsaAesKeyWrapSha256
            ),
        ));
    }
    let request_id = p.request_id();
    let key = p.crypto_key(OP, name, &request_id).await?;
    if keys::algorithm(&key) != Some(spec.algorithm) {
        return Err(ProviderError::precondition(
            &p.name,
            format!(
                "{OP} for {}: the key is {:?}, not {}",
                spec.key,
                keys::algorithm(&key),
                spec.algorithm
            ),
        ));
    }
    let protection = key
        .version_template
        .as_ref()
        .map(|t| t.protection_level.clone())
        .unwrap_or_else(|| p.protection_level.clone());
    let id = format!("keygate-{}", uuid::Uuid::now_v7().simple());
    let request = p
        .client
        .create_import_job()
        .set_parent(ring_of(name))
        .set_import_job_id(id)
        .set_import_job(
            ImportJob::new()
                .set_import_method(import_method)
                .set_protection_level(protection),
        );
    let mut job = p.call(OP, name, &request_id, request).await?.out;
    let started = tokio::time::Instant::now();
    while job.state == ImportJobState::PendingGeneration {
        if started.elapsed() > WAIT {
            return Err(ProviderError::unavailable(
                &p.name,
                format!("{OP}: {} is still being generated after {WAIT:?}", job.name),
            ));
        }
        tokio::time::sleep(POLL).await;
        let get = p.client.get_import_job().set_name(&job.name);
        job = p.call(OP, &job.name.clone(), &request_id, get).await?.out;
    }
    let at = p.at(OP, name, &request_id);
    if job.state != ImportJobState::Active {
        return Err(at.bad_reply(format!("{} is {:?}, not ACTIVE", job.name, job.state)));
    }
    let pem_text = job
        .public_key
        .as_ref()
        .map(|k| k.pem.clone())
        .ok_or_else(|| at.bad_reply("the import job has no public key"))?;
    let der = pem::parse(&pem_text)
        .ok()
        .filter(|p| p.tag() == "PUBLIC KEY")
        .map(|p| p.into_contents())
        .ok_or_else(|| at.bad_reply("the import job's public key is not a PEM PUBLIC KEY"))?;
    let expires_at = job.expire_time.and_then(|t| SystemTime::try_from(t).ok());
    Ok(Replied::with_request_id(
        ImportParams {
            wrapping: spec.wrapping,
            wrapping_key_spki_der: der,
            import_token: job.name.into_bytes(),
            expires_at,
        },
        Some(request_id),
    ))
}

pub(crate) async fn import_key(
    p: &GcpKmsProvider,
    uri: &KeyUri,
    wrapped: &WrappedKey,
    params: &ImportParams,
) -> Result<Replied<KeyVersionInfo>> {
    const OP: &str = "import key";
    let name = p.key_name(uri)?;
    let job = std::str::from_utf8(&params.import_token)
        .ok()
        .filter(|job| {
            job.starts_with(&format!("{}/keyRings/", p.place.location_path()))
                && job.contains("/importJobs/")
        })
        .ok_or_else(|| {
            ProviderError::invalid(
                &p.name,
                format!("{OP} into {uri}: the import token is not an import job of this project and location"),
            )
        })?;
    if params.expires_at.is_some_and(|t| t <= SystemTime::now()) {
        return Err(ProviderError::precondition(
            &p.name,
            format!("{OP} into {uri}: import job {job} has expired; ask for new import parameters"),
        ));
    }
    let request_id = p.request_id();
    let key = p.crypto_key(OP, name, &request_id).await?;
    let algorithm = key
        .version_template
        .as_ref()
        .map(|t| t.algorithm.clone())
        .ok_or_else(|| {
            p.at(OP, name, &request_id)
                .bad_reply("the key has no version template")
        })?;
    let request = p
        .client
        .import_crypto_key_version()
        .set_parent(name)
        .set_import_job(job)
        .set_algorithm(algorithm)
        .set_wrapped_key(wrapped.expose().to_vec());
    let version = p.call(OP, name, &request_id, request).await?.out;
    let version = p.settled_version(OP, version, &request_id).await?;
    if version.state != VState::Enabled {
        let reason = if version.import_failure_reason.is_empty() {
            format!("{:?}", version.state)
        } else {
            version.import_failure_reason.clone()
        };
        return Err(ProviderError::invalid(
            &p.name,
            format!("{OP} into {uri}: Cloud KMS could not import the material: {reason}"),
        ));
    }
    let id = names::version_id(&version.name)
        .ok_or_else(|| {
            p.at(OP, name, &request_id)
                .bad_reply("the imported version has no id")
        })?
        .to_string();
    if key.purpose == Purpose::EncryptDecrypt {
        let primary = p
            .client
            .update_crypto_key_primary_version()
            .set_name(name)
            .set_crypto_key_version_id(&id);
        p.call(OP, name, &request_id, primary).await?;
        let mut labels = key.labels.clone();
        labels.insert(labels::PRIMARY.into(), id.clone());
        let update = p
            .client
            .update_crypto_key()
            .set_crypto_key(
                google_cloud_kms_v1::model::CryptoKey::new()
                    .set_name(name)
                    .set_labels(labels),
            )
            .set_update_mask(FieldMask::default().set_paths(["labels"]));
        p.call(OP, name, &request_id, update).await?;
    }
    let versions = p.versions(OP, name, &request_id).await?;
    let info = keys::infos(&versions)
        .into_iter()
        .find(|v| v.provider_version == id)
        .ok_or_else(|| {
            p.at(OP, name, &request_id)
                .bad_reply(format!("version {id} is not among the key's versions"))
        })?;
    Ok(Replied::with_request_id(info, Some(request_id)))
}
