//! Keys and their lifecycle.

use super::duration;
use crate::catalog::KeyRecord;
use crate::gateway::ops;
use crate::pb;
use crate::time::rfc3339;

pub fn key_to_pb(key: &KeyRecord) -> pb::Key {
    pb::Key {
        id: key.id.clone(),
        name: key.name.clone(),
        owner: key.owner.clone(),
        purpose: key.purpose.as_str().into(),
        environment: key.environment.clone(),
        algorithm: key.algorithm.as_str().into(),
        provider: key.provider.clone(),
        provider_uri: key.provider_uri.to_string(),
        state: key.state.as_str().into(),
        primary_version: key.primary().version,
        versions: key
            .versions
            .iter()
            .map(|v| pb::KeyVersion {
                version: v.version,
                created_at: rfc3339(v.created_at_ms),
                retired: v.version < key.retired_below,
                staged: v.version > key.primary().version,
                ..Default::default()
            })
            .collect(),
        crypto_period: Some(prost_types::Duration {
            seconds: i64::try_from(key.crypto_period.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        created_at: rfc3339(key.created_at_ms),
        rotation_due_at: rfc3339(key.rotation_due_at_ms),
        destruction_at: key.destruction_at_ms.map(rfc3339).unwrap_or_default(),
        labels: key.labels.clone().into_iter().collect(),
        retired_below: key.retired_below,
        expires_at: key.expires_at_ms.map(rfc3339).unwrap_or_default(),
        usage_window: None,
    }
}

/// A key with, when asked for, its versions' usage.
pub fn key_view_to_pb(view: &ops::KeyView) -> pb::Key {
    let mut key = key_to_pb(&view.record);
    if let Some(usage) = &view.usage {
        key.usage_window = Some(prost_types::Duration {
            seconds: i64::try_from(usage.window.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        });
        for v in &mut key.versions {
            if let Some(u) = usage.versions.get(&v.version) {
                v.uses = u.uses;
                v.last_used_at = u.last_used_ms.map(rfc3339).unwrap_or_default();
            }
        }
    }
    key
}

impl From<pb::RetireKeyVersionsRequest> for ops::RetireKeyVersions {
    fn from(r: pb::RetireKeyVersionsRequest) -> Self {
        ops::RetireKeyVersions {
            key: r.key,
            below: r.below,
            force: r.force,
        }
    }
}

impl From<pb::CreateKeyRequest> for ops::CreateKey {
    fn from(r: pb::CreateKeyRequest) -> Self {
        ops::CreateKey {
            name: r.name,
            purpose: r.purpose,
            algorithm: r.algorithm,
            owner: r.owner,
            environment: r.environment,
            crypto_period: duration(r.crypto_period),
            provider: r.provider,
            labels: r.labels.into_iter().collect(),
            ttl: duration(r.ttl),
            draft: None,
        }
    }
}

impl From<pb::AdoptKeyRequest> for ops::AdoptKey {
    fn from(r: pb::AdoptKeyRequest) -> Self {
        ops::AdoptKey {
            provider_uri: r.provider_uri,
            key: ops::CreateKey {
                name: r.name,
                purpose: String::new(),
                algorithm: r.algorithm,
                owner: r.owner,
                environment: r.environment,
                crypto_period: duration(r.crypto_period),
                provider: r.provider,
                labels: r.labels.into_iter().collect(),
                ttl: None,
                draft: None,
            },
            key_id: None,
        }
    }
}

impl From<pb::GetKeyRequest> for ops::GetKey {
    fn from(r: pb::GetKeyRequest) -> Self {
        ops::GetKey {
            key: r.key,
            usage: r.usage,
        }
    }
}

impl From<pb::ListKeysRequest> for ops::ListKeys {
    fn from(r: pb::ListKeysRequest) -> Self {
        ops::ListKeys {
            owner: r.owner,
            environment: r.environment,
            page_size: r.page_size,
            page_token: r.page_token,
            expiring_within: duration(r.expiring_within),
            rotation_overdue: r.rotation_overdue,
        }
    }
}

impl From<ops::KeyPage> for pb::ListKeysResponse {
    fn from(p: ops::KeyPage) -> Self {
        pb::ListKeysResponse {
            keys: p.keys.iter().map(|k| key_to_pb(k)).collect(),
            next_page_token: p.next_page_token,
        }
    }
}

impl From<pb::RotateKeyRequest> for ops::RotateKey {
    fn from(r: pb::RotateKeyRequest) -> Self {
        ops::RotateKey {
            key: r.key,
            only_if_due_at_ms: None,
            step: match (r.stage, r.promote) {
                (_, true) => ops::RotationStep::Promote { staged_by_ms: None },
                (true, false) => ops::RotationStep::Stage,
                (false, false) => ops::RotationStep::Rotate,
            },
        }
    }
}

impl From<pb::EnableKeyRequest> for ops::SetKeyEnabled {
    fn from(r: pb::EnableKeyRequest) -> Self {
        ops::SetKeyEnabled {
            key: r.key,
            enabled: true,
        }
    }
}

impl From<pb::DisableKeyRequest> for ops::SetKeyEnabled {
    fn from(r: pb::DisableKeyRequest) -> Self {
        ops::SetKeyEnabled {
            key: r.key,
            enabled: false,
        }
    }
}

impl From<pb::ScheduleKeyDestructionRequest> for ops::ScheduleKeyDestruction {
    fn from(r: pb::ScheduleKeyDestructionRequest) -> Self {
        ops::ScheduleKeyDestruction {
            key: r.key,
            pending_window: duration(r.pending_window),
            family: r.family,
        }
    }
}

impl From<pb::CancelKeyDestructionRequest> for ops::CancelKeyDestruction {
    fn from(r: pb::CancelKeyDestructionRequest) -> Self {
        ops::CancelKeyDestruction { key: r.key }
    }
}

impl From<pb::ListInventoryRequest> for ops::ListInventory {
    fn from(r: pb::ListInventoryRequest) -> Self {
        ops::ListInventory {
            provider: r.provider,
            page_size: r.page_size,
            page_token: r.page_token,
        }
    }
}

impl From<ops::InventoryPage> for pb::ListInventoryResponse {
    fn from(p: ops::InventoryPage) -> Self {
        pb::ListInventoryResponse {
            keys: p
                .keys
                .into_iter()
                .map(|k| {
                    let (key_id, key_name) = k.managed.clone().unwrap_or_default();
                    pb::InventoryKey {
                        provider: k.provider,
                        provider_uri: k.provider_uri,
                        algorithm: k.algorithm,
                        state: k.state.as_str().into(),
                        managed: k.managed.is_some(),
                        key_id,
                        key_name,
                    }
                })
                .collect(),
            next_page_token: p.next_page_token,
        }
    }
}
