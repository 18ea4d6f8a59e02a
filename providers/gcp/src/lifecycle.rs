//! Keys coming and going: create (labels, automatic rotation from the crypto-period), rotate,
//! enable and disable (version states), and destruction through Cloud KMS's own schedule.

use crate::keys::{self, id_of};
use crate::provider::GcpKmsProvider;
use crate::{algorithms, labels, names};
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose as Purpose;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState as VState;
use google_cloud_kms_v1::model::{CryptoKey, CryptoKeyVersion, CryptoKeyVersionTemplate};
use google_cloud_wkt::{Duration as WktDuration, FieldMask, Timestamp};
use keygate_provider::{
    KeySpec, KeyUri, KeyVersionInfo, ProviderError, ProviderKey, Replied, Result,
};
use std::time::{Duration, SystemTime};

/// How long a new version may stay PENDING_GENERATION or PENDING_IMPORT before keygate gives
/// up waiting (the guard's deadline usually ends the wait first).
const READY_WAIT: Duration = Duration::from_secs(120);
const READY_POLL: Duration = Duration::from_millis(100);

fn wkt_duration(p: &GcpKmsProvider, d: Duration) -> Result<WktDuration> {
    WktDuration::try_from(d)
        .map_err(|e| ProviderError::invalid(&p.name, format!("duration {d:?}: {e}")))
}

fn timestamp(p: &GcpKmsProvider, t: SystemTime) -> Result<Timestamp> {
    Timestamp::try_from(t).map_err(|e| ProviderError::internal(&p.name, format!("time: {e}")))
}

impl GcpKmsProvider {
    /// Checks the key ring exists, creating it when missing; once per process.
    pub(crate) async fn ensure_ring(&self, request_id: &str) -> Result<()> {
        self.ring_ready
            .get_or_try_init(|| async {
                let ring = self.place.ring_path();
                let get = self.client.get_key_ring().set_name(&ring);
                match self.call("get key ring", &ring, request_id, get).await {
                    Ok(_) => return Ok(()),
                    Err(ProviderError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
                let create = self
                    .client
                    .create_key_ring()
                    .set_parent(self.place.location_path())
                    .set_key_ring_id(&self.place.key_ring);
                match self.call("create key ring", &ring, request_id, create).await {
                    Ok(_) | Err(ProviderError::AlreadyExists { .. }) => {
                        tracing::info!(provider = %self.name, key_ring = %ring, "created the key ring");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            })
            .await
            .map(|_| ())
    }

    /// Waits until a version is no longer being generated or imported, and returns it.
    pub(crate) async fn settled_version(
        &self,
        op: &'static str,
        version: CryptoKeyVersion,
        request_id: &str,
    ) -> Result<CryptoKeyVersion> {
        let started = tokio::time::Instant::now();
        let mut version = version;
        while matches!(
            version.state,
            VState::PendingGeneration | VState::PendingImport
        ) {
            if started.elapsed() > READY_WAIT {
                return Err(ProviderError::unavailable(
                    &self.name,
                    format!(
                        "{op}: {} is still {:?} after {READY_WAIT:?}",
                        version.name, version.state
                    ),
                ));
            }
            tokio::time::sleep(READY_POLL).await;
            let get = self.client.get_crypto_key_version().set_name(&version.name);
            version = self
                .call(op, &version.name.clone(), request_id, get)
                .await?
                .out;
        }
        Ok(version)
    }
}

pub(crate) async fn create_key(p: &GcpKmsProvider, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
    const OP: &str = "create key";
    let (purpose, algorithm) = algorithms::to_gcp(spec.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("algorithm {}", spec.algorithm))
    })?;
    let request_id = p.request_id();
    p.ensure_ring(&request_id).await?;
    let mut key = CryptoKey::new()
        .set_purpose(purpose.clone())
        .set_version_template(
            CryptoKeyVersionTemplate::new()
                .set_algorithm(algorithm)
                .set_protection_level(p.protection_level.clone()),
        )
        .set_labels(labels::for_spec(spec))
        .set_destroy_scheduled_duration(wkt_duration(p, p.destroy_scheduled_duration)?);
    if purpose == Purpose::EncryptDecrypt {
        // Cloud KMS rotates symmetric keys itself on this schedule; keygate's own rotations
        // push nextRotationTime back, so the two never double up (see `rotate`).
        key = key
            .set_rotation_period(Box::new(wkt_duration(p, spec.crypto_period)?))
            .set_next_rotation_time(timestamp(p, SystemTime::now() + spec.crypto_period)?);
    }
    let request = p
        .client
        .create_crypto_key()
        .set_parent(p.place.ring_path())
        .set_crypto_key_id(names::crypto_key_id(spec))
        .set_crypto_key(key);
    let created = p.call(OP, &spec.name, &request_id, request).await?.out;
    // Asymmetric versions are generated asynchronously: wait until the first is usable.
    let versions = p.versions(OP, &created.name, &request_id).await?;
    for v in versions {
        p.settled_version(OP, v, &request_id).await?;
    }
    let (described, _, _) = p.provider_key(OP, &created.name, &request_id).await?;
    Ok(Replied::with_request_id(described, Some(request_id)))
}

/// A new primary version. For symmetric keys, a primary newer than the one keygate last
/// made (the `keygate-primary` label) was made by Cloud KMS's scheduled rotation since: it
/// is adopted rather than followed by another. Either way nextRotationTime moves a whole
/// rotation period on, so Cloud KMS does not rotate again right after keygate did.
pub(crate) async fn rotate(p: &GcpKmsProvider, uri: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
    const OP: &str = "rotate";
    let name = p.key_name(uri)?;
    let request_id = p.request_id();
    let key = p.crypto_key(OP, name, &request_id).await?;
    let symmetric = key.purpose == Purpose::EncryptDecrypt;
    let mine: u64 = key
        .labels
        .get(labels::PRIMARY)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let adopted = key
        .primary
        .as_ref()
        .filter(|v| symmetric && v.state == VState::Enabled && id_of(v).is_some_and(|id| id > mine))
        .cloned();
    let version = match adopted {
        Some(v) => v,
        None => {
            let create = p
                .client
                .create_crypto_key_version()
                .set_parent(name)
                .set_crypto_key_version(CryptoKeyVersion::new());
            let made = p.call(OP, name, &request_id, create).await?.out;
            let made = p.settled_version(OP, made, &request_id).await?;
            if made.state != VState::Enabled {
                return Err(ProviderError::internal(
                    &p.name,
                    format!(
                        "{OP} on {name}: the new version {} is {:?}",
                        made.name, made.state
                    ),
                ));
            }
            if symmetric {
                let id = names::version_id(&made.name).unwrap_or_default();
                let primary = p
                    .client
                    .update_crypto_key_primary_version()
                    .set_name(name)
                    .set_crypto_key_version_id(id);
                p.call(OP, name, &request_id, primary).await?;
            }
            made
        }
    };
    let id = names::version_id(&version.name)
        .ok_or_else(|| {
            p.at(OP, name, &request_id).bad_reply(format!(
                "the new version's name '{}' has no id",
                version.name
            ))
        })?
        .to_string();
    let mut labels = key.labels.clone();
    labels.insert(labels::PRIMARY.into(), id.clone());
    let mut update = CryptoKey::new().set_name(name).set_labels(labels);
    let mut paths = vec!["labels"];
    if symmetric && let Some(period) = key.rotation_period() {
        let period = Duration::try_from(**period).unwrap_or_default();
        if !period.is_zero() {
            update = update.set_next_rotation_time(timestamp(p, SystemTime::now() + period)?);
            paths.push("next_rotation_time");
        }
    }
    let request = p
        .client
        .update_crypto_key()
        .set_crypto_key(update)
        .set_update_mask(FieldMask::default().set_paths(paths));
    p.call("record rotation", name, &request_id, request)
        .await?;
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

async fn set_state(
    p: &GcpKmsProvider,
    op: &'static str,
    version: &str,
    state: VState,
    request_id: &str,
) -> Result<()> {
    let request = p
        .client
        .update_crypto_key_version()
        .set_crypto_key_version(CryptoKeyVersion::new().set_name(version).set_state(state))
        .set_update_mask(FieldMask::default().set_paths(["state"]));
    p.call(op, version, request_id, request).await?;
    Ok(())
}

/// Cloud KMS has no key-level switch: every version that can be is enabled or disabled.
pub(crate) async fn set_enabled(
    p: &GcpKmsProvider,
    uri: &KeyUri,
    enabled: bool,
) -> Result<Replied<()>> {
    let op = if enabled { "enable" } else { "disable" };
    let name = p.key_name(uri)?;
    let request_id = p.request_id();
    let versions = p.versions(op, name, &request_id).await?;
    let (from, to) = if enabled {
        (VState::Disabled, VState::Enabled)
    } else {
        (VState::Enabled, VState::Disabled)
    };
    let mut changed = 0;
    for v in versions.iter().filter(|v| v.state == from) {
        set_state(p, op, &v.name, to.clone(), &request_id).await?;
        changed += 1;
    }
    if enabled && changed == 0 && !versions.iter().any(|v| v.state == VState::Enabled) {
        return Err(ProviderError::precondition(
            &p.name,
            format!(
                "enable {name}: no version can be enabled (every one is destroyed or scheduled for destruction)"
            ),
        ));
    }
    Ok(Replied::with_request_id((), Some(request_id)))
}

/// Retires keygate's versions below `below` the way Cloud KMS stops a version decrypting and
/// verifying: the version is disabled. keygate's version N is the Nth by id (see
/// [`keys::infos`]). Idempotent: a version already disabled, or destroyed, stays so.
pub(crate) async fn retire_versions(
    p: &GcpKmsProvider,
    uri: &KeyUri,
    below: u32,
) -> Result<Replied<()>> {
    const OP: &str = "retire versions";
    let name = p.key_name(uri)?;
    let request_id = p.request_id();
    let versions = p.versions(OP, name, &request_id).await?;
    let retired = usize::try_from(below.saturating_sub(1)).unwrap_or(usize::MAX);
    for v in versions
        .iter()
        .take(retired)
        .filter(|v| v.state == VState::Enabled)
    {
        set_state(p, OP, &v.name, VState::Disabled, &request_id).await?;
    }
    Ok(Replied::with_request_id((), Some(request_id)))
}

pub(crate) async fn schedule_destroy(
    p: &GcpKmsProvider,
    uri: &KeyUri,
    window: Duration,
) -> Result<Replied<()>> {
    const OP: &str = "schedule destruction";
    let name = p.key_name(uri)?;
    let request_id = p.request_id();
    let key = p.crypto_key(OP, name, &request_id).await?;
    // Cloud KMS's default for keys created without one.
    let scheduled = key
        .destroy_scheduled_duration
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(Duration::from_secs(30 * 86_400));
    if window > scheduled {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{OP} on {name}: Cloud KMS destroys this key's versions {} after they are \
                 scheduled (its destroyScheduledDuration, fixed when the key was created), so a \
                 pending window of {} would end after the material is gone; ask for at most {}",
                humantime::format_duration(scheduled),
                humantime::format_duration(window),
                humantime::format_duration(scheduled),
            ),
        ));
    }
    let versions = p.versions(OP, name, &request_id).await?;
    for v in versions
        .iter()
        .filter(|v| matches!(v.state, VState::Enabled | VState::Disabled))
    {
        let request = p.client.destroy_crypto_key_version().set_name(&v.name);
        p.call(OP, &v.name, &request_id, request).await?;
    }
    Ok(Replied::with_request_id((), Some(request_id)))
}

pub(crate) async fn cancel_destroy(p: &GcpKmsProvider, uri: &KeyUri) -> Result<Replied<()>> {
    const OP: &str = "cancel destruction";
    let name = p.key_name(uri)?;
    let request_id = p.request_id();
    let versions = p.versions(OP, name, &request_id).await?;
    if versions.iter().all(|v| v.state == VState::Destroyed) && !versions.is_empty() {
        return Err(ProviderError::precondition(
            &p.name,
            format!("{OP} on {name}: Cloud KMS has already destroyed every version"),
        ));
    }
    for v in versions
        .iter()
        .filter(|v| v.state == VState::DestroyScheduled)
    {
        let request = p.client.restore_crypto_key_version().set_name(&v.name);
        p.call(OP, &v.name, &request_id, request).await?;
    }
    Ok(Replied::with_request_id((), Some(request_id)))
}

pub(crate) async fn destroy(p: &GcpKmsProvider, uri: &KeyUri) -> Result<Replied<()>> {
    const OP: &str = "destroy";
    let name = p.key_name(uri)?;
    let request_id = p.request_id();
    let versions = p.versions(OP, name, &request_id).await?;
    let live: Vec<&str> = versions
        .iter()
        .filter(|v| matches!(v.state, VState::Enabled | VState::Disabled))
        .map(|v| names::version_id(&v.name).unwrap_or("?"))
        .collect();
    if !live.is_empty() {
        return Err(ProviderError::precondition(
            &p.name,
            format!(
                "{OP} on {name}: versions {} are not scheduled for destruction; schedule the \
                 key first (Cloud KMS destroys versions only at the end of their schedule)",
                live.join(", ")
            ),
        ));
    }
    Ok(Replied::with_request_id((), Some(request_id)))
}
