//! Key management: create, describe, list, rotate, enable, disable, destruction.

use super::{CallMeta, Gateway, GatewayError, validate};
use crate::catalog::{KeyRecord, KeyState, ListFilter, VersionRecord};
use crate::pb;
use crate::policy::{Action, KeyAttributes, Resource};
use crate::time::{now_ms, rfc3339};
use keygate_provider::{Algorithm, KeyPurpose, KeySpec};
use std::sync::Arc;
use std::time::Duration;

pub fn to_pb(key: &KeyRecord) -> pb::Key {
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
            })
            .collect(),
        crypto_period: Some(prost_types::Duration {
            seconds: key.crypto_period.as_secs() as i64,
            nanos: 0,
        }),
        created_at: rfc3339(key.created_at_ms),
        rotation_due_at: rfc3339(key.rotation_due_at_ms),
        destruction_at: key.destruction_at_ms.map(rfc3339).unwrap_or_default(),
        labels: key.labels.clone().into_iter().collect(),
    }
}

fn duration_from_pb(d: &prost_types::Duration) -> Option<Duration> {
    (d.seconds >= 0 && d.nanos >= 0).then(|| Duration::new(d.seconds as u64, d.nanos as u32))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Gateway {
    pub async fn create_key(
        &self,
        meta: &CallMeta,
        req: pb::CreateKeyRequest,
    ) -> Result<pb::Key, GatewayError> {
        let mut scope = self.scope(meta, Action::CreateKey);
        let result = async {
            scope.authenticate()?;
            validate::key_name(&req.name)?;
            scope.record.key_name = req.name.clone();
            validate::owner(&req.owner)?;
            let algorithm: Algorithm =
                req.algorithm
                    .parse()
                    .map_err(|e: keygate_provider::UnknownAlgorithm| {
                        GatewayError::InvalidArgument(e.0)
                    })?;
            let purpose = if req.purpose.is_empty() {
                algorithm.purpose()
            } else {
                req.purpose
                    .parse::<KeyPurpose>()
                    .map_err(|e| GatewayError::InvalidArgument(e.0))?
            };
            if purpose != algorithm.purpose() {
                return Err(GatewayError::InvalidArgument(format!(
                    "purpose '{purpose}' does not fit algorithm {algorithm}, which is for {}",
                    algorithm.purpose()
                )));
            }
            let environment = if req.environment.is_empty() {
                "dev".to_string()
            } else {
                req.environment.clone()
            };
            validate::environment(&environment)?;
            let period = req
                .crypto_period
                .as_ref()
                .and_then(duration_from_pb)
                .ok_or_else(|| {
                    GatewayError::InvalidArgument(
                        "every key needs a crypto-period: set `crypto_period` (e.g. 365 days)"
                            .into(),
                    )
                })?;
            if period < self.lifecycle.min_crypto_period
                || period > self.lifecycle.max_crypto_period
            {
                return Err(GatewayError::InvalidArgument(format!(
                    "crypto-period {} is outside the allowed range {} to {}",
                    crate::time::format_duration(period),
                    crate::time::format_duration(self.lifecycle.min_crypto_period),
                    crate::time::format_duration(self.lifecycle.max_crypto_period),
                )));
            }
            for (k, v) in &req.labels {
                if k.is_empty() || k.len() > 63 || v.len() > 256 {
                    return Err(GatewayError::InvalidArgument(format!(
                        "label '{}' is not valid: keys 1-63 bytes, values at most 256",
                        validate::truncate(k, 70)
                    )));
                }
            }
            let provider_name = if req.provider.is_empty() {
                self.providers.default_name().to_string()
            } else {
                req.provider.clone()
            };
            let provider = self.providers.get(&provider_name).ok_or_else(|| {
                GatewayError::InvalidArgument(format!(
                    "provider '{}' is not configured; configured: {}",
                    validate::truncate(&provider_name, 64),
                    self.providers.names().join(", ")
                ))
            })?;
            let id = uuid::Uuid::new_v4().to_string();
            scope.authorize(
                Action::CreateKey,
                &Resource::Key(KeyAttributes {
                    id: &id,
                    name: &req.name,
                    owner: &req.owner,
                    purpose: purpose.as_str(),
                    environment: &environment,
                    algorithm: algorithm.as_str(),
                    state: KeyState::Enabled.as_str(),
                    provider: &provider_name,
                }),
                period.as_secs() as i64,
            )?;
            if !provider.capabilities().supports(algorithm) {
                return Err(GatewayError::FailedPrecondition(format!(
                    "provider '{provider_name}' ({}) does not support algorithm {algorithm}",
                    provider.kind()
                )));
            }
            let _guard = self.create_lock.lock().await;
            if self.catalog.contains_name(&req.name) {
                return Err(GatewayError::AlreadyExists(format!(
                    "a key named '{}' already exists",
                    req.name
                )));
            }
            let spec = KeySpec {
                name: req.name.clone(),
                key_id: id.clone(),
                algorithm,
                owner: req.owner.clone(),
                environment: environment.clone(),
                crypto_period: period,
                labels: req.labels.clone().into_iter().collect(),
            };
            let created = self
                .provider_call(&provider_name, provider.create_key(&spec))
                .await?;
            scope.note_provider_request(created.request_id);
            let now = now_ms();
            let versions = created
                .value
                .versions
                .iter()
                .enumerate()
                .map(|(i, v)| VersionRecord {
                    version: i as u32 + 1,
                    provider_version: v.provider_version.clone(),
                    created_at_ms: now,
                })
                .collect::<Vec<_>>();
            if versions.is_empty() {
                return Err(GatewayError::Internal(format!(
                    "provider '{provider_name}' created a key with no versions"
                )));
            }
            let record = KeyRecord {
                id,
                name: req.name.clone(),
                owner: req.owner.clone(),
                purpose,
                environment,
                algorithm,
                provider: provider_name,
                provider_uri: created.value.uri,
                state: KeyState::Enabled,
                crypto_period: period,
                created_at_ms: now,
                rotation_due_at_ms: now.saturating_add(ms(period)),
                destruction_at_ms: None,
                labels: spec.labels,
                versions,
            };
            let record = self.catalog.insert(record).await?;
            scope.note_key(&record);
            scope.note_version(1);
            scope.detail("algorithm", algorithm.as_str());
            scope.detail("owner", record.owner.clone());
            scope.detail("crypto_period_seconds", period.as_secs());
            Ok(to_pb(&record))
        }
        .await;
        scope.finish(result).await
    }

    pub async fn get_key(
        &self,
        meta: &CallMeta,
        req: pb::GetKeyRequest,
    ) -> Result<pb::Key, GatewayError> {
        let mut scope = self.scope(meta, Action::GetKey);
        let result = async {
            scope.authenticate()?;
            let key = scope.admit(&req.key)?;
            Ok(to_pb(&key))
        }
        .await;
        scope.finish(result).await
    }

    /// Lists the keys the caller may see (GetKey permission), by name.
    pub async fn list_keys(
        &self,
        meta: &CallMeta,
        req: pb::ListKeysRequest,
    ) -> Result<pb::ListKeysResponse, GatewayError> {
        let mut scope = self.scope(meta, Action::GetKey);
        scope.record.action = "ListKeys".into();
        let result = async {
            let principal = scope.authenticate()?;
            let page_size = match req.page_size {
                0 => 100,
                n => n.min(1000) as usize,
            };
            let filter = ListFilter {
                owner: (!req.owner.is_empty()).then(|| req.owner.clone()),
                environment: (!req.environment.is_empty()).then(|| req.environment.clone()),
            };
            let mut keys = Vec::new();
            let mut after = req.page_token.clone();
            let context = scope.context(0);
            // Filter by permission page by page until the page is full or the catalog ends.
            loop {
                let batch = self.catalog.list(&filter, &after, page_size);
                let exhausted = batch.len() < page_size;
                for key in batch {
                    after = key.name.clone();
                    let decision = self.policy.authorize(
                        &principal,
                        Action::GetKey,
                        &Resource::Key(super::key_attributes(&key)),
                        &crate::policy::PolicyContext {
                            crypto_period_seconds: key.crypto_period.as_secs() as i64,
                            ..context.clone()
                        },
                    );
                    if decision.allowed {
                        keys.push(to_pb(&key));
                        if keys.len() == page_size {
                            break;
                        }
                    }
                }
                if exhausted || keys.len() == page_size {
                    let more = keys.len() == page_size
                        && !self.catalog.list(&filter, &after, 1).is_empty();
                    let next_page_token = if more { after } else { String::new() };
                    scope.detail("returned", keys.len());
                    return Ok(pb::ListKeysResponse {
                        keys,
                        next_page_token,
                    });
                }
            }
        }
        .await;
        scope.finish(result).await
    }

    pub async fn rotate_key(
        &self,
        meta: &CallMeta,
        req: pb::RotateKeyRequest,
    ) -> Result<pb::Key, GatewayError> {
        let mut scope = self.scope(meta, Action::RotateKey);
        let result = async {
            scope.authenticate()?;
            let key = scope.admit(&req.key)?;
            let (key, request_id) = self.rotate_record(&key).await?;
            scope.note_provider_request(request_id);
            scope.note_version(key.primary().version);
            Ok(to_pb(&key))
        }
        .await;
        scope.finish(result).await
    }

    /// The rotation itself, shared by RotateKey and the scheduler.
    pub(crate) async fn rotate_record(
        &self,
        key: &KeyRecord,
    ) -> Result<(Arc<KeyRecord>, Option<String>), GatewayError> {
        let provider = self.provider_for(key)?;
        let rotated = self
            .provider_call(&key.provider, provider.rotate(&key.provider_uri))
            .await?;
        let now = now_ms();
        let version = VersionRecord {
            version: key.primary().version + 1,
            provider_version: rotated.value.provider_version,
            created_at_ms: now,
        };
        let updated = self
            .catalog
            .add_version(key, version, now.saturating_add(ms(key.crypto_period)))
            .await?;
        Ok((updated, rotated.request_id))
    }

    pub async fn set_key_enabled(
        &self,
        meta: &CallMeta,
        key: &str,
        enabled: bool,
    ) -> Result<pb::Key, GatewayError> {
        let action = if enabled {
            Action::EnableKey
        } else {
            Action::DisableKey
        };
        let mut scope = self.scope(meta, action);
        let result = async {
            scope.authenticate()?;
            let key = scope.admit(key)?;
            let provider = self.provider_for(&key)?;
            let caps = provider.capabilities();
            if caps.disable {
                let reply = self
                    .provider_call(
                        &key.provider,
                        provider.set_enabled(&key.provider_uri, enabled),
                    )
                    .await?;
                scope.note_provider_request(reply.request_id);
            } else {
                // The gateway still refuses every use of a disabled key.
                scope.detail("enforced_by", "gateway");
            }
            let state = if enabled {
                KeyState::Enabled
            } else {
                KeyState::Disabled
            };
            let key = self.catalog.set_state(&key, state, None).await?;
            Ok(to_pb(&key))
        }
        .await;
        scope.finish(result).await
    }

    pub async fn schedule_destruction(
        &self,
        meta: &CallMeta,
        req: pb::ScheduleKeyDestructionRequest,
    ) -> Result<pb::Key, GatewayError> {
        let mut scope = self.scope(meta, Action::ScheduleKeyDestruction);
        let result = async {
            scope.authenticate()?;
            let window = match &req.pending_window {
                None => self.lifecycle.default_destruction_window,
                Some(d) => duration_from_pb(d).ok_or_else(|| {
                    GatewayError::InvalidArgument("pending_window is negative".into())
                })?,
            };
            let key = scope.admit(&req.key)?;
            if window < self.lifecycle.min_destruction_window
                || window > self.lifecycle.max_destruction_window
            {
                return Err(GatewayError::InvalidArgument(format!(
                    "pending window {} is outside the allowed range {} to {}",
                    crate::time::format_duration(window),
                    crate::time::format_duration(self.lifecycle.min_destruction_window),
                    crate::time::format_duration(self.lifecycle.max_destruction_window),
                )));
            }
            let provider = self.provider_for(&key)?;
            let reply = self
                .provider_call(
                    &key.provider,
                    provider.schedule_destroy(&key.provider_uri, window),
                )
                .await?;
            scope.note_provider_request(reply.request_id);
            let at = now_ms().saturating_add(ms(window));
            let key = self
                .catalog
                .set_state(&key, KeyState::PendingDestruction, Some(at))
                .await?;
            scope.detail("destruction_at", rfc3339(at));
            Ok(to_pb(&key))
        }
        .await;
        scope.finish(result).await
    }

    pub async fn cancel_destruction(
        &self,
        meta: &CallMeta,
        req: pb::CancelKeyDestructionRequest,
    ) -> Result<pb::Key, GatewayError> {
        let mut scope = self.scope(meta, Action::CancelKeyDestruction);
        let result = async {
            scope.authenticate()?;
            let key = scope.admit(&req.key)?;
            let provider = self.provider_for(&key)?;
            let reply = self
                .provider_call(&key.provider, provider.cancel_destroy(&key.provider_uri))
                .await?;
            scope.note_provider_request(reply.request_id);
            if provider.capabilities().disable {
                let reply = self
                    .provider_call(
                        &key.provider,
                        provider.set_enabled(&key.provider_uri, false),
                    )
                    .await?;
                scope.note_provider_request(reply.request_id);
            }
            // Back to disabled, not enabled: using the key again is a second, deliberate step.
            let key = self
                .catalog
                .set_state(&key, KeyState::Disabled, None)
                .await?;
            Ok(to_pb(&key))
        }
        .await;
        scope.finish(result).await
    }
}
