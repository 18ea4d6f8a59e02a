//! A KMS key's settings that contradict keygate's, for posture scans: automatic rotation,
//! which keygate turns on (at the key's crypto-period) for every key KMS can rotate
//! (symmetric encryption keys with KMS-made material) whose crypto-period KMS can keep (90 to
//! 2560 days) when it creates one; found off, someone turned it off around keygate. Requests:
//! DescribeKey, then, for a key that rotates and is enabled (KMS answers nothing useful for
//! the others), its tags (the crypto-period) and GetKeyRotationStatus.
//!
//! Not read: KMS has no deletion-protection flag (a deletion always waits out its window,
//! which keygate's lifecycle already follows), and a key's usage is fixed at creation.

use crate::keys;
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::types::{KeyMetadata, KeyState};
use keygate_provider::{KeyUri, Replied, Result, SettingConflict};

pub(crate) async fn setting_conflicts(
    p: &AwsKmsProvider,
    key: &KeyUri,
) -> Result<Replied<Vec<SettingConflict>>> {
    const OP: &str = "read key settings";
    let described = p.metadata(OP, key).await?;
    if !checks_rotation(&described.value) {
        return Ok(described.map(|_| Vec::new()));
    }
    let tags = p.tags(OP, described.value.key_id()).await?;
    let period_days =
        keys::tag_value(&tags, keys::tag::CRYPTO_PERIOD_DAYS).and_then(|d| d.parse().ok());
    if period_days.and_then(keys::native_rotation_days).is_none() {
        return Ok(described.map(|_| Vec::new()));
    }
    let request = p.client.get_key_rotation_status().key_id(p.key_id(key)?);
    let sent = p.call(OP, key.as_str(), request.send()).await?;
    let conflicts = if sent.out.key_rotation_enabled() {
        Vec::new()
    } else {
        vec![SettingConflict {
            setting: "KeyRotationEnabled".into(),
            expected: "true: keygate turns on automatic rotation, at the crypto-period, for every key KMS can rotate at it".into(),
            found: "false".into(),
        }]
    };
    Ok(Replied::with_request_id(conflicts, sent.request_id))
}

fn checks_rotation(metadata: &KeyMetadata) -> bool {
    keys::rotates(metadata) && metadata.key_state() == Some(&KeyState::Enabled)
}
