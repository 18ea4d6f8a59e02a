//! BYOK import requests and key families.

use super::duration;
use super::keys::key_to_pb;
use crate::gateway::ops::{
    ByokFamily, ByokImport, CreateKey, GetKeyFamily, ReimportByok, RetryByokImport,
};
use crate::pb;
use crate::time::rfc3339;

impl From<pb::ByokImportRequest> for ByokImport {
    fn from(r: pb::ByokImportRequest) -> Self {
        ByokImport {
            key: CreateKey {
                name: r.name,
                purpose: String::new(),
                algorithm: r.algorithm,
                owner: r.owner,
                environment: r.environment,
                crypto_period: duration(r.crypto_period),
                provider: r.source,
                labels: r.labels.into_iter().collect(),
                ttl: None,
                draft: None,
            },
            targets: r.targets,
            material_expiry: duration(r.material_expiry),
            validity: None,
        }
    }
}

impl From<pb::RetryByokImportRequest> for RetryByokImport {
    fn from(r: pb::RetryByokImportRequest) -> Self {
        RetryByokImport { key: r.key }
    }
}

impl From<pb::ReimportByokRequest> for ReimportByok {
    fn from(r: pb::ReimportByokRequest) -> Self {
        ReimportByok {
            key: r.key,
            targets: r.targets,
            material_expiry: duration(r.material_expiry),
            validity: None,
        }
    }
}

impl From<pb::GetKeyFamilyRequest> for GetKeyFamily {
    fn from(r: pb::GetKeyFamilyRequest) -> Self {
        GetKeyFamily { key: r.key }
    }
}

pub fn family_to_pb(f: &ByokFamily) -> pb::KeyFamily {
    let name_of = |id: &Option<String>| {
        id.as_deref()
            .and_then(|id| f.copies.iter().find(|k| k.id == id))
            .map(|k| k.name.clone())
            .unwrap_or_default()
    };
    pb::KeyFamily {
        original: Some(key_to_pb(&f.original)),
        state: f.family.state().into(),
        created_by: f.family.created_by.clone(),
        created_at: rfc3339(f.family.created_at_ms),
        copies: f
            .family
            .copies
            .iter()
            .map(|c| pb::KeyCopy {
                provider: c.provider.clone(),
                provider_kind: c.provider_kind.clone(),
                status: if c.imported { "imported" } else { "failed" }.into(),
                key_id: c.copy_key_id.clone().unwrap_or_default(),
                key_name: name_of(&c.copy_key_id),
                provider_uri: c.provider_uri.clone(),
                import_method: c.import_method.clone(),
                wrapping_key_id: c.wrapping_key_id.clone(),
                ephemeral_left_hsm: c.ephemeral_left_hsm,
                imported_at: c.imported_at_ms.map(rfc3339).unwrap_or_default(),
                imported_by: c.imported_by.clone(),
                import_expires_at: c.import_expires_at_ms.map(rfc3339).unwrap_or_default(),
                error: c.error.clone(),
                material_expires_at: c.material_expires_at_ms.map(rfc3339).unwrap_or_default(),
                material_validity: c.material_validity_ms.map(|ms| prost_types::Duration {
                    seconds: ms / 1000,
                    nanos: 0,
                }),
            })
            .collect(),
    }
}
