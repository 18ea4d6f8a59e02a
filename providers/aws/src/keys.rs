//! Key metadata: KMS key state, tags and rotations as keygate's key, versions and listing.
//!
//! Versions: version 1 is the key's original material (`provider_version` "original"); each
//! completed rotation in ListKeyRotations adds one, oldest first, named by its KeyMaterialId
//! (or, where the service omits it, `rotated-<unix seconds>` of its RotationDate). Only
//! symmetric encryption keys rotate in KMS, so every other key has exactly one version.
//!
//! LocalStack 4.10 has no ListKeyRotations (it answers 501). Against such an endpoint the
//! provider counts the rotations it makes itself in the `keygate:rotations` tag, and version
//! n+1 is `keygate-rotation-n`; rotations made outside keygate are then not seen.

use crate::algorithms;
use aws_sdk_kms::types::{
    KeyMetadata, KeySpec, KeyState, KeyUsageType, OriginType, RotationsListEntry, Tag,
};
use keygate_provider::{Algorithm, KeyVersionInfo, ProviderKeyState};

pub const ORIGINAL: &str = "original";

/// Tag keys keygate writes on the keys it creates.
pub mod tag {
    pub const KEY_ID: &str = "keygate:key-id";
    pub const NAME: &str = "keygate:name";
    pub const ALGORITHM: &str = "keygate:algorithm";
    pub const OWNER: &str = "keygate:owner";
    pub const PURPOSE: &str = "keygate:purpose";
    pub const ENVIRONMENT: &str = "keygate:environment";
    pub const CRYPTO_PERIOD_DAYS: &str = "keygate:crypto-period-days";
    /// Rotations keygate made, counted only where ListKeyRotations is missing.
    pub const ROTATIONS: &str = "keygate:rotations";
}

pub fn state(metadata: &KeyMetadata) -> ProviderKeyState {
    match metadata.key_state() {
        Some(KeyState::Enabled) | Some(KeyState::Creating) | Some(KeyState::Updating) => {
            ProviderKeyState::Enabled
        }
        Some(KeyState::PendingDeletion) | Some(KeyState::PendingReplicaDeletion) => {
            ProviderKeyState::PendingDestruction
        }
        // Disabled, Unavailable (custom key store disconnected), PendingImport, and anything
        // newer: not usable now, but not on its way out either.
        _ => ProviderKeyState::Disabled,
    }
}

pub fn algorithm(metadata: &KeyMetadata, tags: &[Tag]) -> Option<Algorithm> {
    let tagged = tag_value(tags, tag::ALGORITHM).and_then(|a| a.parse().ok());
    algorithms::from_kms(metadata.key_spec()?, metadata.key_usage()?, tagged)
}

pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.tag_key() == key)
        .map(|t| t.tag_value())
}

/// Whether KMS keeps rotations for this key (symmetric encryption keys with KMS-made material).
pub fn rotates(metadata: &KeyMetadata) -> bool {
    metadata.key_spec() == Some(&KeySpec::SymmetricDefault)
        && metadata.key_usage() == Some(&KeyUsageType::EncryptDecrypt)
        && metadata.origin().is_none_or(|o| *o == OriginType::AwsKms)
}

/// Versions from the rotations ListKeyRotations returned (any order).
pub fn versions(rotations: &[RotationsListEntry]) -> Vec<KeyVersionInfo> {
    let mut done: Vec<&RotationsListEntry> = rotations
        .iter()
        .filter(|r| r.rotation_date().is_some())
        .collect();
    done.sort_by_key(|r| r.rotation_date().map(|d| (d.secs(), d.subsec_nanos())));
    let mut out = keys_original();
    for (i, r) in done.into_iter().enumerate() {
        let name = match (r.key_material_id(), r.rotation_date()) {
            (Some(id), _) if !id.is_empty() => id.to_string(),
            (_, Some(date)) => format!("rotated-{}", date.secs()),
            _ => continue,
        };
        out.push(KeyVersionInfo {
            number: i as u32 + 2,
            provider_version: name,
        });
    }
    out
}

/// Versions from a count of rotations (endpoints without ListKeyRotations): version n+1 is
/// `keygate-rotation-n`.
pub fn counted_versions(rotations: u32) -> Vec<KeyVersionInfo> {
    let mut out = keys_original();
    out.extend((1..=rotations).map(|n| KeyVersionInfo {
        number: n + 1,
        provider_version: format!("keygate-rotation-{n}"),
    }));
    out
}

fn keys_original() -> Vec<KeyVersionInfo> {
    vec![KeyVersionInfo {
        number: 1,
        provider_version: ORIGINAL.into(),
    }]
}

/// The description KMS shows for a keygate key (tags carry the same, machine-readably).
pub fn description(spec: &keygate_provider::KeySpec) -> String {
    format!(
        "keygate key {} (id {}); algorithm {}; owner {}; purpose {}; environment {}; crypto-period {} days",
        spec.name,
        spec.key_id,
        spec.algorithm,
        spec.owner,
        spec.algorithm.purpose(),
        spec.environment,
        crypto_period_days(spec)
    )
}

pub fn crypto_period_days(spec: &keygate_provider::KeySpec) -> u64 {
    spec.crypto_period.as_secs().div_ceil(86_400)
}

/// The automatic rotation period KMS is given for a key with this crypto-period, where KMS
/// can keep it (90 to 2560 days; a crypto-period of part of a day is rounded up to whole days):
/// a day shorter than the crypto-period where that is still 90 days or more, since KMS rotates
/// within a day of its date, so its new material is there when keygate's due date comes and
/// keygate adopts it. Other keys are rotated by keygate, so the two never both rotate one key.
pub fn native_rotation_days(crypto_period_days: u64) -> Option<i32> {
    let days = match crypto_period_days {
        90 => 90,
        d => d.checked_sub(1)?,
    };
    (90..=2560).contains(&days).then_some(days as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::DateTime;

    fn rotation(secs: i64, id: Option<&str>) -> RotationsListEntry {
        let mut b = RotationsListEntry::builder().rotation_date(DateTime::from_secs(secs));
        if let Some(id) = id {
            b = b.key_material_id(id);
        }
        b.build()
    }

    #[test]
    fn rotations_become_versions_oldest_first() {
        let v = versions(&[rotation(200, Some("m2")), rotation(100, None)]);
        let names: Vec<&str> = v.iter().map(|v| v.provider_version.as_str()).collect();
        assert_eq!(names, ["original", "rotated-100", "m2"]);
        assert_eq!(v[2].number, 3);
    }

    #[test]
    fn kms_rotates_only_crypto_periods_it_can_keep() {
        assert_eq!(native_rotation_days(30), None);
        assert_eq!(native_rotation_days(90), Some(90));
        assert_eq!(native_rotation_days(91), Some(90));
        assert_eq!(native_rotation_days(365), Some(364));
        assert_eq!(native_rotation_days(2561), Some(2560));
        assert_eq!(native_rotation_days(2562), None);
    }
}
