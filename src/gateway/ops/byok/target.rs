//! One target's import, step by step (prepare, fetch parameters, wrap in the HSM, import,
//! register), and the loop over targets that records each copy in the family.

use super::{copy_name, wrapping_for, wrapping_key_id};
use crate::catalog::{KeyCopy, KeyFamily, KeyRecord, KeyState, VersionRecord};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Changes, Exec};
use crate::time::{now_ms, rfc3339};
use keygate_provider::{ImportSpec, KeyProvider, KeySpec, VersionRef};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

fn ms(t: std::time::SystemTime) -> Option<i64> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// Imports the original into each target in turn, recording each copy in `family` (a copy
/// already there for the target is replaced) and saving the family after each; returns each
/// target's steps for the event.
pub(super) async fn import_all(
    cx: &mut Exec<'_, Changes>,
    original: &KeyRecord,
    family: &mut KeyFamily,
    targets: &[String],
    copies: &mut Vec<Arc<KeyRecord>>,
) -> Result<serde_json::Map<String, Value>, GatewayError> {
    let at = original.version_ref(original.primary());
    let mut steps = serde_json::Map::new();
    for target in targets {
        let mut import = TargetImport {
            original,
            at: &at,
            target,
            trail: Vec::new(),
            copy: KeyCopy {
                provider: target.clone(),
                provider_kind: String::new(),
                imported: false,
                copy_key_id: None,
                provider_uri: String::new(),
                import_method: String::new(),
                wrapping_key_id: String::new(),
                ephemeral_left_hsm: false,
                imported_at_ms: None,
                imported_by: cx.actor_name(),
                import_expires_at_ms: None,
                error: String::new(),
            },
        };
        if let Some(before) = family.copies.iter().find(|c| &c.provider == target)
            && !before.provider_uri.is_empty()
        {
            // A key an earlier attempt prepared stays in the backend: say where.
            import.step(
                "earlier attempt",
                json!({ "provider_uri": before.provider_uri, "error": before.error }),
            );
        }
        match import.run(cx).await {
            Ok(record) => copies.push(record),
            Err((step, e)) => {
                import.copy.error = format!("target '{target}': {step} failed: {e}");
                import
                    .trail
                    .push(json!({ "step": step, "error": e.to_string() }));
            }
        }
        steps.insert(target.clone(), Value::Array(import.trail));
        family.copies.retain(|c| &c.provider != target);
        family.copies.push(import.copy);
        // On record after each target, so a later failure loses nothing already done.
        cx.save_family(family).await?;
    }
    Ok(steps)
}

/// One target's import, step by step; the trail is what the audit event says of it.
struct TargetImport<'a> {
    original: &'a KeyRecord,
    at: &'a VersionRef,
    target: &'a str,
    trail: Vec<Value>,
    copy: KeyCopy,
}

impl TargetImport<'_> {
    fn step(&mut self, step: &str, extra: Value) {
        let mut entry = json!({ "step": step, "at": rfc3339(now_ms()) });
        if let (Value::Object(entry), Value::Object(extra)) = (&mut entry, extra) {
            entry.extend(extra);
        }
        self.trail.push(entry);
    }

    async fn run(
        &mut self,
        cx: &mut Exec<'_, Changes>,
    ) -> Result<Arc<KeyRecord>, (&'static str, GatewayError)> {
        let provider: Arc<dyn KeyProvider> =
            cx.import_target(self.target).map_err(|e| ("resolve", e))?;
        let kind = provider.kind();
        self.copy.provider_kind = kind.to_string();
        let algorithm = self.original.algorithm;
        let wrapping = wrapping_for(kind, algorithm).ok_or_else(|| {
            (
                "choose wrap",
                GatewayError::invalid("targets", format!("{kind} does not import keys")),
            )
        })?;
        self.copy.import_method = wrapping.to_string();
        let mut labels = self.original.labels.clone();
        labels.insert("byok-original".into(), self.original.id.clone());
        let spec = KeySpec {
            name: copy_name(&self.original.name, self.target),
            key_id: uuid::Uuid::new_v4().to_string(),
            algorithm,
            owner: self.original.owner.clone(),
            environment: self.original.environment.clone(),
            crypto_period: self.original.crypto_period,
            labels,
        };
        let uri = provider
            .prepare_import(&spec)
            .await
            .map_err(|e| ("prepare", e.into()))?
            .value;
        self.copy.provider_uri = uri.to_string();
        self.step("prepared", json!({ "provider_uri": uri.to_string() }));
        let params = provider
            .import_parameters(&ImportSpec {
                key: uri.clone(),
                algorithm,
                wrapping,
            })
            .await
            .map_err(|e| ("fetch import parameters", e.into()))?
            .value;
        self.copy.wrapping_key_id = wrapping_key_id(&params.wrapping_key_spki_der);
        self.copy.import_expires_at_ms = params.expires_at.and_then(ms);
        self.step(
            "parameters fetched",
            json!({ "wrapping": wrapping.as_str(), "wrapping_key_id": self.copy.wrapping_key_id }),
        );
        let wrapped = cx
            .wrap_in_source(self.at, &params)
            .await
            .map_err(|e| ("wrap in the HSM", e))?;
        self.copy.ephemeral_left_hsm = wrapped.ephemeral_left_source;
        self.step(
            "wrapped",
            json!({ "in_hsm": !wrapped.ephemeral_left_source, "bytes": wrapped.wrapped.len() }),
        );
        let version = provider
            .import_key(&uri, &wrapped.wrapped, &params)
            .await
            .map_err(|e| ("import", e.into()))?
            .value;
        drop(wrapped);
        self.step(
            "imported",
            json!({ "provider_version": version.provider_version }),
        );
        let now = now_ms();
        let record = KeyRecord {
            id: spec.key_id.clone(),
            name: spec.name.clone(),
            owner: spec.owner.clone(),
            purpose: self.original.purpose,
            environment: spec.environment.clone(),
            algorithm,
            provider: self.target.to_string(),
            provider_uri: uri,
            state: KeyState::Enabled,
            crypto_period: spec.crypto_period,
            created_at_ms: now,
            rotation_due_at_ms: crate::time::after(now, spec.crypto_period),
            destruction_at_ms: None,
            labels: spec.labels.clone(),
            versions: vec![VersionRecord {
                version: 1,
                provider_version: version.provider_version,
                created_at_ms: now,
            }],
            retired_below: 0,
            expires_at_ms: None,
            primary_version: None,
        };
        let record = cx.insert_copy(record).await.map_err(|e| ("register", e))?;
        self.copy.imported = true;
        self.copy.copy_key_id = Some(record.id.clone());
        self.copy.imported_at_ms = Some(now);
        self.step(
            "registered",
            json!({ "key_id": record.id, "key": record.name }),
        );
        Ok(record)
    }
}
