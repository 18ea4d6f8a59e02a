//! Key metadata: a CryptoKey and its CryptoKeyVersions as keygate's key, versions and state.
//!
//! Versions: keygate's versions are the key's CryptoKeyVersions in id order, numbered from 1
//! (for keys keygate creates, keygate version n is CryptoKeyVersion n); `provider_version`
//! is the CryptoKeyVersion id. Cloud KMS has no key-level state: keygate derives one from
//! the versions (see [`state`]).

use crate::algorithms;
use crate::names;
use crate::provider::GcpKmsProvider;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState as VState;
use google_cloud_kms_v1::model::{CryptoKey, CryptoKeyVersion};
use keygate_provider::{
    Algorithm, KeyUri, KeyVersionInfo, ProviderError, ProviderKey, ProviderKeyState, Result,
};

/// The CryptoKeyVersion id of a version, from its resource name.
pub fn id_of(v: &CryptoKeyVersion) -> Option<u64> {
    names::version_id(&v.name).and_then(|id| id.parse().ok())
}

/// Versions sorted by id, oldest first.
pub fn sorted(mut versions: Vec<CryptoKeyVersion>) -> Vec<CryptoKeyVersion> {
    versions.sort_by_key(|v| id_of(v).unwrap_or(u64::MAX));
    versions
}

pub fn infos(versions: &[CryptoKeyVersion]) -> Vec<KeyVersionInfo> {
    versions
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            Some(KeyVersionInfo {
                number: u32::try_from(i + 1).ok()?,
                provider_version: names::version_id(&v.name)?.to_string(),
            })
        })
        .collect()
}

fn gone(state: &VState) -> bool {
    matches!(
        state,
        VState::Destroyed | VState::ImportFailed | VState::GenerationFailed
    )
}

/// keygate's state of a key from its versions (sorted): destroyed when every version is;
/// pending destruction when some version is scheduled for it and none is usable or merely
/// disabled; otherwise enabled or disabled as the primary (newest, or Cloud KMS's primary
/// for symmetric keys) is.
pub fn state(key: &CryptoKey, versions: &[CryptoKeyVersion]) -> ProviderKeyState {
    if !versions.is_empty() && versions.iter().all(|v| gone(&v.state)) {
        return ProviderKeyState::Destroyed;
    }
    let live = |s: &VState| matches!(s, VState::Enabled | VState::Disabled);
    if versions.iter().any(|v| v.state == VState::DestroyScheduled)
        && !versions.iter().any(|v| live(&v.state))
    {
        return ProviderKeyState::PendingDestruction;
    }
    let primary = key.primary.as_ref().map(|p| p.state.clone()).or_else(|| {
        versions
            .iter()
            .rev()
            .find(|v| !gone(&v.state))
            .map(|v| v.state.clone())
    });
    match primary {
        Some(VState::Enabled) | Some(VState::PendingGeneration) | Some(VState::PendingImport) => {
            ProviderKeyState::Enabled
        }
        _ => ProviderKeyState::Disabled,
    }
}

/// The keygate algorithm of a key: its version template's.
pub fn algorithm(key: &CryptoKey) -> Option<Algorithm> {
    key.version_template
        .as_ref()
        .and_then(|t| algorithms::from_gcp(&t.algorithm))
}

impl GcpKmsProvider {
    pub(crate) async fn crypto_key(
        &self,
        op: &'static str,
        name: &str,
        request_id: &str,
    ) -> Result<CryptoKey> {
        let request = self.client.get_crypto_key().set_name(name);
        Ok(self.call(op, name, request_id, request).await?.out)
    }

    /// Every version of a key, sorted by id.
    pub(crate) async fn versions(
        &self,
        op: &'static str,
        name: &str,
        request_id: &str,
    ) -> Result<Vec<CryptoKeyVersion>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let request = self
                .client
                .list_crypto_key_versions()
                .set_parent(name)
                .set_page_size(1000)
                .set_page_token(token);
            let page = self.call(op, name, request_id, request).await?.out;
            all.extend(page.crypto_key_versions);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        Ok(sorted(all))
    }

    /// A key as keygate sees it, with its versions.
    pub(crate) async fn provider_key(
        &self,
        op: &'static str,
        name: &str,
        request_id: &str,
    ) -> Result<(ProviderKey, CryptoKey, Vec<CryptoKeyVersion>)> {
        let key = self.crypto_key(op, name, request_id).await?;
        let versions = self.versions(op, name, request_id).await?;
        let algorithm = algorithm(&key).ok_or_else(|| {
            ProviderError::unsupported(
                &self.name,
                format!(
                    "{op} on {name}: its algorithm {:?} has no keygate equivalent",
                    key.version_template.as_ref().map(|t| &t.algorithm)
                ),
            )
        })?;
        let described = ProviderKey {
            uri: names::uri(name),
            algorithm,
            state: state(&key, &versions),
            versions: infos(&versions),
        };
        Ok((described, key, versions))
    }

    /// The resource name a URI names, checked.
    pub(crate) fn key_name<'u>(&self, uri: &'u KeyUri) -> Result<&'u str> {
        self.place.key_name(&self.name, uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: u32, state: VState) -> CryptoKeyVersion {
        CryptoKeyVersion::new()
            .set_name(format!(
                "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/{id}"
            ))
            .set_state(state)
    }

    #[test]
    fn versions_sort_by_id_and_number_from_one() {
        let v = sorted(vec![
            version(10, VState::Enabled),
            version(2, VState::Enabled),
        ]);
        let i = infos(&v);
        assert_eq!(
            (
                i[0].number,
                i[0].provider_version.as_str(),
                i[1].number,
                i[1].provider_version.as_str()
            ),
            (1, "2", 2, "10")
        );
    }

    #[test]
    fn key_state_follows_the_versions() {
        let key = CryptoKey::new();
        let s = |vs: Vec<CryptoKeyVersion>| state(&key, &vs);
        assert_eq!(
            s(vec![version(1, VState::Enabled)]),
            ProviderKeyState::Enabled
        );
        assert_eq!(
            s(vec![
                version(1, VState::Enabled),
                version(2, VState::Disabled)
            ]),
            ProviderKeyState::Disabled
        );
        assert_eq!(
            s(vec![
                version(1, VState::Destroyed),
                version(2, VState::DestroyScheduled)
            ]),
            ProviderKeyState::PendingDestruction
        );
        assert_eq!(
            s(vec![
                version(1, VState::Destroyed),
                version(2, VState::Destroyed)
            ]),
            ProviderKeyState::Destroyed
        );
        assert_eq!(
            s(vec![
                version(1, VState::Enabled),
                version(2, VState::Destroyed)
            ]),
            ProviderKeyState::Enabled
        );
    }
}
