//! One target's import, step by step (prepare, fetch parameters, wrap in the HSM, import,
//! register), and the loop over targets that records each copy in the family. A re-import
//! (`super::reimport`) takes the middle steps alone, into the copy's existing key.

use super::{copy_name, wrapping_for, wrapping_key_id};
use crate::catalog::{KeyCopy, KeyFamily, KeyRecord, KeyState, VersionRecord};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Changes, Exec};
use crate::time::{now_ms, rfc3339};
use keygate_provider::{
    ImportOptions, ImportSpec, KeyProvider, KeySpec, KeyUri, KeyVersionInfo, VersionRef,
    WrappingAlgorithm,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) fn ms(t: SystemTime) -> Option<i64> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A lifetime recorded in milliseconds, back as a duration.
pub(super) fn validity_of(ms: Option<i64>) -> Option<Duration> {
    ms.and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis)
}

/// Imports the original into each target in turn (with the material's lifetime there, if
/// any), recording each copy in `family` (a copy already there for the target is replaced)
/// and saving the family after each; returns each target's steps for the event.
pub(super) async fn import_all(
    cx: &mut Exec<'_, Changes>,
    original: &KeyRecord,
    family: &mut KeyFamily,
    targets: &[(String, Option<Duration>)],
    copies: &mut Vec<Arc<KeyRecord>>,
) -> Result<serde_json::Map<String, Value>, GatewayError> {
    let at = original.version_ref(original.primary());
    let mut steps = serde_json::Map::new();
    for (target, validity) in targets {
        let mut import = TargetImport {
            original,
            at: &at,
            target,
            validity: *validity,
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
                material_validity_ms: validity.map(duration_ms),
                material_expires_at_ms: None,
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

/// A failed step: its name, for the event and the copy's error, and why.
pub(super) type StepFailure = (&'static str, GatewayError);

/// One target's import, step by step; the trail is what the audit event says of it.
pub(super) struct TargetImport<'a> {
    pub original: &'a KeyRecord,
    pub at: &'a VersionRef,
    pub target: &'a str,
    /// The imported material's lifetime in the target; `None`: it does not expire.
    pub validity: Option<Duration>,
    pub trail: Vec<Value>,
    pub copy: KeyCopy,
}

impl TargetImport<'_> {
    pub fn step(&mut self, step: &str, extra: Value) {
        let mut entry = json!({ "step": step, "at": rfc3339(now_ms()) });
        if let (Value::Object(entry), Value::Object(extra)) = (&mut entry, extra) {
            entry.extend(extra);
        }
        self.trail.push(entry);
    }

    /// The target and the wrap it takes for the original's algorithm.
    pub fn resolve(
        &mut self,
        cx: &Exec<'_, Changes>,
    ) -> Result<(Arc<dyn KeyProvider>, WrappingAlgorithm), StepFailure> {
        let provider: Arc<dyn KeyProvider> =
            cx.import_target(self.target).map_err(|e| ("resolve", e))?;
        let kind = provider.kind();
        self.copy.provider_kind = kind.to_string();
        let wrapping = wrapping_for(kind, self.original.algorithm).ok_or_else(|| {
            (
                "choose wrap",
                GatewayError::invalid("targets", format!("{kind} does not import keys")),
            )
        })?;
        self.copy.import_method = wrapping.to_string();
        Ok((provider, wrapping))
    }

    /// Fetches import parameters for `uri`, wraps the original under them in the HSM, and
    /// imports it (again, into `reimport_version`, when that is set), with the material's
    /// lifetime; records each step and what the copy's row says of them.
    pub async fn wrap_and_import(
        &mut self,
        cx: &mut Exec<'_, Changes>,
        provider: &dyn KeyProvider,
        uri: &KeyUri,
        wrapping: WrappingAlgorithm,
        reimport_version: Option<String>,
    ) -> Result<KeyVersionInfo, StepFailure> {
        let algorithm = self.original.algorithm;
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
        self.copy.ephemeral_left_hsm |= wrapped.ephemeral_left_source;
        self.step(
            "wrapped",
            json!({ "in_hsm": !wrapped.ephemeral_left_source, "bytes": wrapped.wrapped.len() }),
        );
        let reimport = reimport_version.is_some();
        let options = ImportOptions {
            material_expires_at: self.validity.map(|d| SystemTime::now() + d),
            reimport_version,
        };
        let version = provider
            .import_key_with(uri, &wrapped.wrapped, &params, &options)
            .await
            .map_err(|e| (if reimport { "re-import" } else { "import" }, e.into()))?
            .value;
        drop(wrapped);
        self.copy.material_expires_at_ms = options.material_expires_at.and_then(ms);
        let mut done = json!({ "provider_version": version.provider_version });
        if let Some(at) = self.copy.material_expires_at_ms {
            done["material_expires_at"] = rfc3339(at).into();
        }
        self.step(if reimport { "re-imported" } else { "imported" }, done);
        Ok(version)
    }

    async fn run(&mut self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, StepFailure> {
        let (provider, wrapping) = self.resolve(cx)?;
        let algorithm = self.original.algorithm;
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
        let version = self
            .wrap_and_import(cx, provider.as_ref(), &uri, wrapping, None)
            .await?;
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
