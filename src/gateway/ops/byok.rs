//! ByokImport and GetKeyFamily: a key generated in an HSM, wrapped there for each target,
//! imported, and every copy registered (a key of its own, `NAME.TARGET`, and a row of the
//! key's family).
//!
//! The whole import is one call: one intent and one outcome event, the outcome carrying each
//! target's steps (prepared, parameters fetched, wrapped, imported, registered) with their
//! times, and where a target failed, which step and why. One event keeps the record of an
//! import in one place of the chain, written before the answer leaves, like every other
//! operation's; the steps' details are what separate events would have said.

use super::keys::{CreateKey, supported};
use crate::catalog::{KeyCopy, KeyFamily, KeyRecord, KeyState, VersionRecord};
use crate::gateway::runner::{Changes, Exec, Operation, Reads, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;
use crate::time::{now_ms, rfc3339};
use keygate_provider::{
    Algorithm, ImportSpec, KeyProvider, KeySpec, VersionRef, WrappingAlgorithm,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

pub struct ByokImport {
    /// The HSM original as CreateKey would take it; `provider` is the source HSM.
    pub key: CreateKey,
    pub targets: Vec<String>,
}

/// The result: the original, its family, and the keys holding the copies.
pub struct ByokFamily {
    pub original: Arc<KeyRecord>,
    pub family: KeyFamily,
    pub copies: Vec<Arc<KeyRecord>>,
}

/// What BYOK imports so far: raw AES-256 keys, and P-256 private keys as PKCS#8.
pub const BYOK_ALGORITHMS: [Algorithm; 2] = [Algorithm::Aes256Gcm, Algorithm::EcdsaP256];

/// The name of the copy in `target`.
pub fn copy_name(name: &str, target: &str) -> String {
    format!("{name}.{target}")
}

/// The wrap each target kind takes for `algorithm`, chosen so the HSM does as much as it can:
/// SoftHSM2's RSA-OAEP has SHA-1 only, and Transit lets the caller pick the hash.
pub fn wrapping_for(kind: &str, algorithm: Algorithm) -> Option<WrappingAlgorithm> {
    match kind {
        "vault" => Some(WrappingAlgorithm::RsaAesKeyWrapSha1),
        // Direct RSAES_OAEP_SHA_1 keeps a secret key wholly in the HSM; private keys are too
        // big for one RSA block, and KMS has RSA_AES_KEY_WRAP_SHA_256 for them.
        "aws-kms" if algorithm.is_symmetric() => Some(WrappingAlgorithm::RsaOaepSha1),
        "aws-kms" => Some(WrappingAlgorithm::RsaAesKeyWrapSha256),
        "gcp-kms" => Some(WrappingAlgorithm::RsaAesKeyWrapSha1),
        _ => None,
    }
}

/// A short, stable name for a wrapping public key: the first 16 bytes of its SHA-256.
fn wrapping_key_id(spki: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    hex::encode(&digest.as_ref()[..16])
}

fn ms(t: std::time::SystemTime) -> Option<i64> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

impl Operation for ByokImport {
    type Output = ByokFamily;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::ByokImport
    }

    fn check(&mut self, settings: &Settings<'_>) -> Result<(), GatewayError> {
        if self.key.provider.is_empty() {
            return Err(GatewayError::invalid(
                "source",
                "name the HSM provider instance that generates and wraps the key",
            ));
        }
        let draft = self.key.draft(settings)?;
        if !BYOK_ALGORITHMS
            .iter()
            .any(|a| a.as_str() == draft.algorithm.as_str())
        {
            return Err(GatewayError::invalid(
                "algorithm",
                format!(
                    "BYOK imports {} keys; {} is not supported yet",
                    BYOK_ALGORITHMS.map(Algorithm::as_str).join(" and "),
                    draft.algorithm
                ),
            ));
        }
        if self.targets.is_empty() {
            return Err(GatewayError::invalid(
                "targets",
                "name at least one provider instance to import into",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for target in &self.targets {
            if target == &draft.provider || !seen.insert(target.as_str()) {
                return Err(GatewayError::invalid(
                    "targets",
                    format!(
                        "target '{}' is the source or named twice",
                        validate::truncate(target, 64)
                    ),
                ));
            }
            validate::key_name("targets", &copy_name(&draft.name, target))?;
        }
        self.key.draft = Some(draft);
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        match &self.key.draft {
            Some(draft) => Target::NewKey(draft),
            None => Target::Key {
                field: "name",
                key: "",
            },
        }
    }

    /// Everything that can be known before a backend is called: the source makes the
    /// algorithm, each target exists, imports it, and its copy's name is free.
    fn ready(&self, cx: &Exec<'_, Changes>) -> Result<(), GatewayError> {
        let draft = cx.draft()?;
        let algorithm = supported(cx, draft)?;
        for target in &self.targets {
            let provider = cx.import_target(target)?;
            let capabilities = provider.capabilities();
            if !capabilities.import || wrapping_for(provider.kind(), algorithm).is_none() {
                return Err(GatewayError::invalid(
                    "targets",
                    format!(
                        "target '{target}' ({}) does not import keys through keygate",
                        provider.kind()
                    ),
                ));
            }
            if !capabilities.supports(algorithm) {
                return Err(GatewayError::invalid(
                    "targets",
                    format!(
                        "target '{target}' ({}) has no {algorithm} keys",
                        provider.kind()
                    ),
                ));
            }
            let name = copy_name(&draft.name, target);
            if cx.lookup_key(&name).is_some() {
                return Err(GatewayError::KeyExists(name));
            }
        }
        Ok(())
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<ByokFamily, GatewayError> {
        let draft = cx.draft()?.clone();
        let algorithm = supported(cx, &draft)?;
        let spec = KeySpec {
            name: draft.name.clone(),
            key_id: draft.id.clone(),
            algorithm,
            owner: draft.owner.clone(),
            environment: draft.environment.clone(),
            crypto_period: draft.crypto_period,
            labels: draft.labels.clone(),
        };
        let created = cx.create_wrappable_in_backend(&spec).await?;
        cx.detail("provider_uri", created.uri.to_string());
        let now = now_ms();
        let record = KeyRecord {
            id: draft.id.clone(),
            name: draft.name.clone(),
            owner: draft.owner.clone(),
            purpose: draft.purpose,
            environment: draft.environment.clone(),
            algorithm,
            provider: draft.provider.clone(),
            provider_uri: created.uri,
            state: KeyState::Enabled,
            crypto_period: draft.crypto_period,
            created_at_ms: now,
            rotation_due_at_ms: crate::time::after(now, draft.crypto_period),
            destruction_at_ms: None,
            labels: draft.labels.clone(),
            versions: vec![VersionRecord {
                version: 1,
                provider_version: created
                    .versions
                    .first()
                    .map(|v| v.provider_version.clone())
                    .ok_or_else(|| {
                        GatewayError::Internal("the HSM made a key with no version".into())
                    })?,
                created_at_ms: now,
            }],
            retired_below: 0,
            expires_at_ms: None,
        };
        let original = cx.insert_key(record).await?;
        cx.note_version(1);
        cx.detail("algorithm", algorithm.as_str());
        cx.detail("owner", original.owner.clone());
        let mut family = KeyFamily {
            key_id: original.id.clone(),
            created_by: cx.actor_name(),
            created_at_ms: now,
            copies: Vec::new(),
        };
        let mut copies = Vec::new();
        let steps = import_all(cx, &original, &mut family, &self.targets, &mut copies).await?;
        cx.detail("targets", Value::Object(steps));
        cx.detail("family_state", family.state());
        Ok(ByokFamily {
            original,
            family,
            copies,
        })
    }
}

/// Imports the original into each target in turn, recording each copy in `family` (a copy
/// already there for the target is replaced) and saving the family after each; returns each
/// target's steps for the event.
async fn import_all(
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

/// Imports an incomplete family's original again into the targets that failed.
pub struct RetryByokImport {
    pub key: String,
}

impl Operation for RetryByokImport {
    type Output = ByokFamily;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::ByokImport
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<ByokFamily, GatewayError> {
        let original = cx.key()?.record().clone();
        let mut family = cx
            .key_family(&original.id)
            .await?
            .ok_or_else(|| not_a_family(&original))?;
        let failed: Vec<String> = family
            .copies
            .iter()
            .filter(|c| !c.imported)
            .map(|c| c.provider.clone())
            .collect();
        let mut copies = Vec::new();
        let steps = import_all(cx, &original, &mut family, &failed, &mut copies).await?;
        cx.detail("targets", Value::Object(steps));
        cx.detail("family_state", family.state());
        let copies = family
            .copies
            .iter()
            .filter_map(|c| c.copy_key_id.as_deref())
            .filter_map(|id| cx.key_by_id(id))
            .collect();
        Ok(ByokFamily {
            original,
            family,
            copies,
        })
    }
}

fn not_a_family(original: &KeyRecord) -> GatewayError {
    GatewayError::invalid(
        "key",
        format!("key '{}' was not made by a BYOK import", original.name),
    )
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

/// A key's BYOK family (GetKeyFamily): read as GetKey reads the original.
pub struct GetKeyFamily {
    pub key: String,
}

impl Operation for GetKeyFamily {
    type Output = ByokFamily;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetKey
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<ByokFamily, GatewayError> {
        let original = cx.key()?.record().clone();
        let family = cx
            .key_family(&original.id)
            .await?
            .ok_or_else(|| not_a_family(&original))?;
        let copies = family
            .copies
            .iter()
            .filter_map(|c| c.copy_key_id.as_deref())
            .filter_map(|id| cx.key_by_id(id))
            .collect();
        Ok(ByokFamily {
            original,
            family,
            copies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_get_the_wrap_that_keeps_most_in_the_hsm() {
        let aes = Algorithm::Aes256Gcm;
        assert_eq!(
            wrapping_for("vault", aes),
            Some(WrappingAlgorithm::RsaAesKeyWrapSha1)
        );
        assert_eq!(
            wrapping_for("aws-kms", aes),
            Some(WrappingAlgorithm::RsaOaepSha1)
        );
        assert_eq!(
            wrapping_for("aws-kms", Algorithm::EcdsaP256),
            Some(WrappingAlgorithm::RsaAesKeyWrapSha256)
        );
        assert_eq!(wrapping_for("local", aes), None);
    }

    #[test]
    fn wrapping_key_ids_are_short_and_stable() {
        assert_eq!(wrapping_key_id(b"spki"), wrapping_key_id(b"spki"));
        assert_eq!(wrapping_key_id(b"spki").len(), 32);
        assert_ne!(wrapping_key_id(b"spki"), wrapping_key_id(b"other"));
    }
}
