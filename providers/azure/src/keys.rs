//! Key metadata: tags, state, versions and public keys, as keygate sees them.
//!
//! **Versions.** Key Vault names versions with opaque ids. keygate numbers them 1, 2, … in
//! creation order, and writes the number on each version it makes (tag `keygate-version`),
//! because creation times have one-second resolution and a key rotated within the second of
//! its creation would otherwise have two versions in no particular order. Versions made
//! outside keygate (the rotation policy, the portal) carry no number and take their place by
//! creation time. `KeyVersionInfo::provider_version` is the Key Vault version id.

use crate::names;
use azure_security_keyvault_keys::models::{CurveName, JsonWebKey, KeyProperties, KeyType};
use keygate_provider::der::{P256_OID, P384_OID, ec_spki, rsa_spki};
use keygate_provider::{KeySpec, KeyVersionInfo, ProviderKeyState};
use std::collections::HashMap;

/// Tag names keygate writes (Key Vault allows 15 tags per key).
pub mod tag {
    pub const KEY_ID: &str = "keygate-key-id";
    pub const NAME: &str = "keygate-name";
    pub const ALGORITHM: &str = "keygate-algorithm";
    pub const OWNER: &str = "keygate-owner";
    pub const PURPOSE: &str = "keygate-purpose";
    pub const ENVIRONMENT: &str = "keygate-environment";
    pub const CRYPTO_PERIOD_DAYS: &str = "keygate-crypto-period-days";
    /// keygate's number for this version.
    pub const VERSION: &str = "keygate-version";
}

/// Key Vault's limit on tags per key.
pub const MAX_TAGS: usize = 15;

pub fn crypto_period_days(spec: &KeySpec) -> u64 {
    spec.crypto_period.as_secs().div_ceil(86_400)
}

/// The tags of a new key's first version.
pub fn tags(spec: &KeySpec) -> HashMap<String, String> {
    let mut tags: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        (tag::KEY_ID, spec.key_id.clone()),
        (tag::NAME, spec.name.clone()),
        (tag::ALGORITHM, spec.algorithm.to_string()),
        (tag::OWNER, spec.owner.clone()),
        (tag::PURPOSE, spec.algorithm.purpose().to_string()),
        (tag::ENVIRONMENT, spec.environment.clone()),
        (
            tag::CRYPTO_PERIOD_DAYS,
            crypto_period_days(spec).to_string(),
        ),
        (tag::VERSION, "1".to_string()),
    ] {
        tags.insert(k.to_string(), v);
    }
    tags
}

pub fn state(enabled: Option<bool>) -> ProviderKeyState {
    if enabled == Some(false) {
        ProviderKeyState::Disabled
    } else {
        ProviderKeyState::Enabled
    }
}

/// One version as listed: its id, creation time and keygate number (if tagged).
pub struct Listed {
    pub id: String,
    pub created: i64,
    pub number: Option<u32>,
}

impl Listed {
    pub fn from_properties(p: &KeyProperties) -> Option<Self> {
        let (_, _, version) = names::parse_kid(p.kid.as_deref()?)?;
        Some(Self {
            id: version.to_string(),
            created: p
                .attributes
                .as_ref()
                .and_then(|a| a.created)
                .map_or(0, |t| t.unix_timestamp()),
            number: p
                .tags
                .as_ref()
                .and_then(|t| t.get(tag::VERSION))
                .and_then(|n| n.parse().ok()),
        })
    }
}

/// Versions oldest first, numbered from 1.
pub fn versions(mut listed: Vec<Listed>) -> Vec<KeyVersionInfo> {
    listed.sort_by(|a, b| {
        (a.created, a.number.unwrap_or(u32::MAX), &a.id).cmp(&(
            b.created,
            b.number.unwrap_or(u32::MAX),
            &b.id,
        ))
    });
    listed
        .into_iter()
        .enumerate()
        .map(|(i, v)| KeyVersionInfo {
            number: i as u32 + 1,
            provider_version: v.id,
        })
        .collect()
}

/// The key's SubjectPublicKeyInfo (DER) from its JWK: `n`/`e`, or `crv`/`x`/`y`.
pub fn spki(jwk: &JsonWebKey) -> Option<Vec<u8>> {
    match jwk.kty.as_ref()? {
        KeyType::Rsa | KeyType::RsaHsm => Some(rsa_spki(jwk.n.as_deref()?, jwk.e.as_deref()?)),
        KeyType::Ec | KeyType::EcHsm => {
            let (oid, field) = match jwk.crv.as_ref()? {
                CurveName::P256 => (P256_OID, 32),
                CurveName::P384 => (P384_OID, 48),
                _ => return None,
            };
            let mut point = vec![0x04];
            for coordinate in [jwk.x.as_deref()?, jwk.y.as_deref()?] {
                if coordinate.len() > field {
                    return None;
                }
                point.extend(std::iter::repeat_n(0u8, field - coordinate.len()));
                point.extend_from_slice(coordinate);
            }
            ec_spki(oid, &point)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, created: i64, number: Option<u32>) -> Listed {
        Listed {
            id: id.into(),
            created,
            number,
        }
    }

    #[test]
    fn versions_follow_creation_then_keygate_numbers() {
        // Created within the same second: the tags decide; untagged ones come after.
        let v = versions(vec![
            listed("bbb", 100, Some(2)),
            listed("zzz", 100, None),
            listed("aaa", 100, Some(1)),
            listed("ccc", 200, None),
        ]);
        let ids: Vec<&str> = v.iter().map(|v| v.provider_version.as_str()).collect();
        assert_eq!(ids, ["aaa", "bbb", "zzz", "ccc"]);
        assert_eq!(v[3].number, 4);
    }

    #[test]
    fn ec_spki_is_padded_to_the_field() {
        let jwk = JsonWebKey {
            kty: Some(KeyType::Ec),
            crv: Some(CurveName::P256),
            x: Some(vec![1; 31]),
            y: Some(vec![2; 32]),
            ..Default::default()
        };
        let der = spki(&jwk).expect("spki");
        let bits = keygate_provider::spki_public_key_bits(&der).expect("bits");
        assert_eq!(bits.len(), 65);
        assert_eq!(&bits[..2], &[0x04, 0x00]);
    }
}
