//! Keys coming and going: create (with its alias and automatic rotation), rotate, enable and
//! disable, and KMS's deletion window.

use crate::algorithms;
use crate::arn;
use crate::keys::{self, tag};
use crate::provider::{AwsKmsProvider, DELETION_WINDOW_DAYS};
use aws_sdk_kms::types::Tag;
use keygate_provider::{
    KeySpec, KeyUri, KeyVersionInfo, OwnRotation, ProviderError, ProviderKey, ProviderKeyState,
    Replied, Result,
};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn tag(p: &AwsKmsProvider, key: &str, value: &str) -> Result<Tag> {
    Tag::builder()
        .tag_key(key)
        .tag_value(value)
        .build()
        .map_err(|e| ProviderError::invalid(&p.name, format!("tag {key}: {e}")))
}

pub(crate) async fn create_key(p: &AwsKmsProvider, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
    create(p, spec, false).await
}

/// Creates the key with its tags and alias; `external`: with no material (origin EXTERNAL),
/// waiting for an import, and without automatic rotation (KMS cannot rotate imported
/// material).
pub(crate) async fn create(
    p: &AwsKmsProvider,
    spec: &KeySpec,
    external: bool,
) -> Result<Replied<ProviderKey>> {
    const OP: &str = "create key";
    let (kms_spec, usage) = algorithms::key_spec(spec.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("algorithm {}", spec.algorithm))
    })?;
    let days = keys::crypto_period_days(spec).to_string();
    let mut tags = vec![
        (tag::KEY_ID, spec.key_id.as_str()),
        (tag::NAME, spec.name.as_str()),
        (tag::ALGORITHM, spec.algorithm.as_str()),
        (tag::OWNER, spec.owner.as_str()),
        (tag::PURPOSE, spec.algorithm.purpose().as_str()),
        (tag::ENVIRONMENT, spec.environment.as_str()),
        (tag::CRYPTO_PERIOD_DAYS, days.as_str()),
    ];
    tags.extend(spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut request = p
        .client
        .create_key()
        .key_spec(kms_spec)
        .key_usage(usage)
        .description(keys::description(spec));
    if external {
        request = request.origin(aws_sdk_kms::types::OriginType::External);
    }
    for (k, v) in tags {
        request = request.tags(tag(p, k, v)?);
    }
    let created = p
        .call(OP, &spec.name, request.send())
        .await?
        .field("KeyMetadata", |o| o.key_metadata)?;
    let metadata = created.value;
    let key_id = metadata.key_id().to_string();
    if let Some(a) = metadata.arn() {
        p.learn_account(a);
    }

    let alias = arn::alias_for(&spec.name);
    let aliased = p
        .client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id);
    if let Err(err) = p.call("create alias", &alias, aliased.send()).await {
        // Don't leave an unnamed key behind; KMS's shortest window applies.
        let _ = p
            .client
            .schedule_key_deletion()
            .key_id(&key_id)
            .pending_window_in_days(7)
            .send()
            .await;
        return Err(err);
    }
    if keys::rotates(&metadata)
        && let Some(days) = keys::native_rotation_days(keys::crypto_period_days(spec))
    {
        let request = p
            .client
            .enable_key_rotation()
            .key_id(&key_id)
            .rotation_period_in_days(days);
        p.call("enable automatic rotation", &key_id, request.send())
            .await?;
    }
    let key = p.provider_key(OP, &metadata).await?;
    Ok(Replied::with_request_id(key, created.request_id))
}

/// KMS rotates a key by itself when its automatic rotation is on; a rotation it made since
/// keygate's newest version shows in ListKeyRotations (endpoints without it, like LocalStack,
/// never show one, so keygate rotates once the grace has passed).
pub(crate) async fn own_rotation(
    p: &AwsKmsProvider,
    key: &KeyUri,
    newest: &KeyVersionInfo,
) -> Result<Replied<OwnRotation>> {
    const OP: &str = "read automatic rotation";
    let metadata = p.metadata(OP, key).await?.value;
    if !keys::rotates(&metadata) {
        return Ok(Replied::local(OwnRotation::Never));
    }
    let request = p.client.get_key_rotation_status().key_id(metadata.key_id());
    let status = p.call(OP, key.as_str(), request.send()).await?;
    // Only the rotation keygate set up counts: KMS on another period (turned on by hand, or
    // clamped to KMS's range) is not waited for, and the settings finding reports it.
    let tags = p.tags(OP, metadata.key_id()).await?;
    let wanted = keys::tag_value(&tags, keys::tag::CRYPTO_PERIOD_DAYS)
        .and_then(|d| d.parse().ok())
        .and_then(keys::native_rotation_days);
    if !status.out.key_rotation_enabled()
        || wanted.is_none()
        || status.out.rotation_period_in_days() != wanted
    {
        return Ok(Replied::with_request_id(
            OwnRotation::Never,
            status.request_id,
        ));
    }
    let versions = p.versions(OP, &metadata).await?;
    let known = versions
        .iter()
        .position(|v| v.provider_version == newest.provider_version);
    let own = match (known, versions.last()) {
        (Some(i), Some(last)) if i + 1 < versions.len() => OwnRotation::Made(last.clone()),
        _ => OwnRotation::Expected {
            at_ms: status
                .out
                .next_rotation_date()
                .and_then(|d| d.to_millis().ok()),
        },
    };
    Ok(Replied::with_request_id(own, status.request_id))
}

pub(crate) async fn rotate(p: &AwsKmsProvider, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
    const OP: &str = "rotate";
    let (metadata, before) = p.rotation_count(OP, key).await?;
    if !keys::rotates(&metadata) {
        return Err(ProviderError::unsupported(
            &p.name,
            format!(
                "rotating key {key}: AWS KMS rotates only symmetric encryption keys with KMS-made material (this one is {})",
                metadata
                    .key_spec()
                    .map(|s| s.as_str())
                    .unwrap_or("of unknown spec")
            ),
        ));
    }
    let request = p.client.rotate_key_on_demand().key_id(metadata.key_id());
    let request_id = p.call(OP, key.as_str(), request.send()).await?.request_id;
    if !p.rotations_listed.load(Ordering::Relaxed) {
        let count = (before.len() as u32).to_string();
        let request =
            p.client
                .tag_resource()
                .key_id(metadata.key_id())
                .tags(tag(p, tag::ROTATIONS, &count)?);
        p.call("record rotation", key.as_str(), request.send())
            .await?;
    }
    // The rotation may take a moment to show in ListKeyRotations.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let versions = p.versions(OP, &metadata).await?;
        if versions.len() > before.len()
            && let Some(newest) = versions.last()
        {
            return Ok(Replied::with_request_id(newest.clone(), request_id));
        }
        if Instant::now() > deadline {
            return Err(ProviderError::internal(
                &p.name,
                format!(
                    "rotating key {key}: KMS accepted the rotation{} but ListKeyRotations does not show it yet; describe the key later",
                    request_id
                        .as_deref()
                        .map(|r| format!(" (request id {r})"))
                        .unwrap_or_default()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn set_enabled(
    p: &AwsKmsProvider,
    key: &KeyUri,
    enabled: bool,
) -> Result<Replied<()>> {
    let id = p.key_id(key)?;
    let sent = if enabled {
        let request = p.client.enable_key().key_id(&id);
        p.call("enable", key.as_str(), request.send()).await?.done()
    } else {
        let request = p.client.disable_key().key_id(&id);
        p.call("disable", key.as_str(), request.send())
            .await?
            .done()
    };
    Ok(sent)
}

pub(crate) async fn schedule_destroy(
    p: &AwsKmsProvider,
    key: &KeyUri,
    window: Duration,
) -> Result<Replied<()>> {
    const OP: &str = "schedule destruction";
    // No window: a short-lived key whose TTL ended (its destruction was decided when it was
    // made). KMS deletes nothing sooner than its shortest window; the key is unusable at once.
    let window = if window.is_zero() {
        Duration::from_secs(DELETION_WINDOW_DAYS.start() * 86_400)
    } else {
        window
    };
    let secs = window.as_secs();
    let days = secs / 86_400;
    if !secs.is_multiple_of(86_400)
        || window.subsec_nanos() != 0
        || !DELETION_WINDOW_DAYS.contains(&days)
    {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{}: AWS KMS's deletion window is 7 to 30 whole days, asked for {window:?}",
                p.at(OP, key.as_str()).what()
            ),
        ));
    }
    let request = p
        .client
        .schedule_key_deletion()
        .key_id(p.key_id(key)?)
        .pending_window_in_days(days as i32);
    Ok(p.call(OP, key.as_str(), request.send()).await?.done())
}

/// Ends a pending deletion. KMS leaves the key disabled, which is the trait's contract
/// (using it again is a deliberate second step). A key that is not pending deletion (a retry
/// after the cancel went through) is already where a cancel leaves it.
pub(crate) async fn cancel_destroy(p: &AwsKmsProvider, key: &KeyUri) -> Result<Replied<()>> {
    const OP: &str = "cancel destruction";
    let id = p.key_id(key)?;
    let request = p.client.cancel_key_deletion().key_id(&id);
    match p.call(OP, key.as_str(), request.send()).await {
        Ok(cancelled) => Ok(cancelled.done()),
        Err(ProviderError::FailedPrecondition { .. }) => {
            let described = p.metadata(OP, key).await?;
            if keys::state(&described.value) == ProviderKeyState::PendingDestruction {
                return Err(ProviderError::precondition(
                    &p.name,
                    format!("{OP} of {key}: the key is pending deletion and KMS refused to cancel"),
                ));
            }
            Ok(Replied::with_request_id((), described.request_id))
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn destroy(p: &AwsKmsProvider, key: &KeyUri) -> Result<Replied<()>> {
    const OP: &str = "destroy";
    match p.metadata(OP, key).await {
        Err(ProviderError::NotFound { .. }) => Ok(Replied::local(())),
        Err(e) => Err(e),
        Ok(r) if keys::state(&r.value) == ProviderKeyState::PendingDestruction => {
            Ok(Replied::with_request_id((), r.request_id))
        }
        Ok(_) => Err(ProviderError::precondition(
            &p.name,
            format!(
                "{}: the key is not scheduled for deletion; schedule it first (AWS KMS deletes keys only at the end of their window)",
                p.at(OP, key.as_str()).what()
            ),
        )),
    }
}
