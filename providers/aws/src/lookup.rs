//! Reading keys back: metadata, tags and versions (rotations), as keygate's view of a key.

use crate::arn;
use crate::keys::{self, tag};
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::types::{KeyMetadata, Tag};
use keygate_provider::{KeyUri, KeyVersionInfo, ProviderError, ProviderKey, Replied, Result};
use std::sync::atomic::Ordering;

impl AwsKmsProvider {
    pub(crate) async fn metadata(
        &self,
        op: &'static str,
        uri: &KeyUri,
    ) -> Result<Replied<KeyMetadata>> {
        let request = self.client.describe_key().key_id(self.key_id(uri)?);
        self.call(op, uri.as_str(), request.send())
            .await?
            .field("KeyMetadata", |o| o.key_metadata)
    }

    pub(crate) async fn tags(&self, op: &'static str, key_id: &str) -> Result<Vec<Tag>> {
        let mut tags = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let request = self
                .client
                .list_resource_tags()
                .key_id(key_id)
                .set_marker(marker.take());
            let out = self.call(op, key_id, request.send()).await?.out;
            tags.extend(out.tags.unwrap_or_default());
            match out.next_marker {
                Some(m) if out.truncated => marker = Some(m),
                _ => return Ok(tags),
            }
        }
    }

    pub(crate) async fn versions(
        &self,
        op: &'static str,
        metadata: &KeyMetadata,
    ) -> Result<Vec<KeyVersionInfo>> {
        if !keys::rotates(metadata) {
            return Ok(keys::versions(&[]));
        }
        if !self.rotations_listed.load(Ordering::Relaxed) {
            return self.counted_versions(op, metadata.key_id()).await;
        }
        let mut rotations = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let result = self
                .client
                .list_key_rotations()
                .key_id(metadata.key_id())
                .set_marker(marker.take())
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 501) => {
                    // The endpoint lacks ListKeyRotations (LocalStack 4.10): count keygate's
                    // own rotations from now on.
                    self.rotations_listed.store(false, Ordering::Relaxed);
                    return self.counted_versions(op, metadata.key_id()).await;
                }
                Err(e) => return Err(self.sdk(op, metadata.key_id(), e)),
            };
            rotations.extend(out.rotations.unwrap_or_default());
            match out.next_marker {
                Some(m) if out.truncated => marker = Some(m),
                _ => break,
            }
        }
        Ok(keys::versions(&rotations))
    }

    /// Versions from the rotation count keygate keeps in a tag, for endpoints without
    /// ListKeyRotations.
    pub(crate) async fn counted_versions(
        &self,
        op: &'static str,
        key_id: &str,
    ) -> Result<Vec<KeyVersionInfo>> {
        let tags = self.tags(op, key_id).await?;
        let count = keys::tag_value(&tags, tag::ROTATIONS)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(keys::counted_versions(count))
    }

    /// The keygate view of a key from its metadata: tags and rotations fetched as needed.
    pub(crate) async fn provider_key(
        &self,
        op: &'static str,
        metadata: &KeyMetadata,
    ) -> Result<ProviderKey> {
        let arn = metadata
            .arn()
            .ok_or_else(|| self.at(op, metadata.key_id()).missing("key ARN"))?;
        // Only an RSA signing key needs its tags to know its algorithm (PSS or PKCS#1).
        let tags = if metadata.key_usage() == Some(&aws_sdk_kms::types::KeyUsageType::SignVerify)
            && metadata
                .key_spec()
                .is_some_and(|s| s.as_str().starts_with("RSA_"))
        {
            self.tags(op, metadata.key_id()).await?
        } else {
            Vec::new()
        };
        let algorithm = keys::algorithm(metadata, &tags).ok_or_else(|| {
            ProviderError::unsupported(
                &self.name,
                format!(
                    "key {arn} of spec {:?} and usage {:?}",
                    metadata.key_spec().map(|s| s.as_str()),
                    metadata.key_usage().map(|u| u.as_str())
                ),
            )
        })?;
        Ok(ProviderKey {
            uri: arn::uri(arn),
            algorithm,
            state: keys::state(metadata),
            versions: self.versions(op, metadata).await?,
        })
    }

    pub(crate) async fn rotation_count(
        &self,
        op: &'static str,
        uri: &KeyUri,
    ) -> Result<(KeyMetadata, Vec<KeyVersionInfo>)> {
        let metadata = self.metadata(op, uri).await?.value;
        let versions = self.versions(op, &metadata).await?;
        Ok((metadata, versions))
    }
}
