//! ReimportByok: the same HSM original wrapped again and imported as the same material into
//! copies that hold it already, after the target deleted it (AWS KMS material past its
//! `ValidTo`, or removed with DeleteImportedKeyMaterial) or to give it a new lifetime.
//!
//! Each copy keeps its key (in the target and in keygate); only its row in the family
//! changes: the wrapping key, when and by whom the material was imported, and when it now
//! expires. Every copy asked for is checked before any backend is called. One outcome event
//! lists each target's steps (parameters fetched, wrapped, re-imported, recorded) or the step
//! that failed; a target that fails fails the call, and the targets done before it stay
//! re-imported (their rows say so).

use super::target::{TargetImport, duration_ms, validity_of};
use super::{ByokFamily, check_validity, load_family, material_validity, reimports, with_copies};
use crate::catalog::{KeyCopy, KeyRecord, KeyState};
use crate::gateway::ops::keys::DurationInput;
use crate::gateway::runner::{Changes, Exec, Operation, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::Action;
use crate::time::{now_ms, rfc3339};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub struct ReimportByok {
    /// The HSM original.
    pub key: String,
    /// The targets whose copies get the material again; empty: every imported copy in a
    /// target that can re-import.
    pub targets: Vec<String>,
    /// The material's new lifetime; `None`: each copy's lifetime from its import.
    pub material_expiry: Option<DurationInput>,
    /// Filled in by `check`.
    pub validity: Option<Duration>,
}

/// A copy to re-import: its row, the key holding it, the material's lifetime.
struct Chosen {
    copy: KeyCopy,
    record: Arc<KeyRecord>,
    validity: Option<Duration>,
}

impl Operation for ReimportByok {
    type Output = ByokFamily;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::ByokImport
    }

    fn check(&mut self, _settings: &Settings<'_>) -> Result<(), GatewayError> {
        let mut seen = std::collections::BTreeSet::new();
        for target in &self.targets {
            if !seen.insert(target.as_str()) {
                return Err(GatewayError::invalid(
                    "targets",
                    format!("target '{}' is named twice", validate::truncate(target, 64)),
                ));
            }
        }
        self.validity = material_validity(self.material_expiry)?;
        Ok(())
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<ByokFamily, GatewayError> {
        let original = cx.key()?.record().clone();
        let mut family = load_family(cx, &original).await?;
        let chosen = self.choose(cx, &original, &family.copies)?;
        if let Some(validity) = self.validity {
            cx.detail("material_expiry", crate::time::format_duration(validity));
        }
        let at = original.version_ref(original.primary());
        let mut steps = serde_json::Map::new();
        let mut failure = None;
        for Chosen {
            copy,
            record,
            validity,
        } in chosen
        {
            let target = copy.provider.clone();
            let mut import = TargetImport {
                original: &original,
                at: &at,
                target: &target,
                validity,
                trail: Vec::new(),
                copy,
            };
            import.copy.imported_by = cx.actor_name();
            import.copy.material_validity_ms = validity.map(duration_ms);
            let done = match import.resolve(cx) {
                Ok((provider, wrapping)) => {
                    let version = record.primary().provider_version.clone();
                    import
                        .wrap_and_import(
                            cx,
                            provider.as_ref(),
                            &record.provider_uri,
                            wrapping,
                            Some(version),
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            match done {
                Ok(_) => {
                    let now = now_ms();
                    import.copy.imported_at_ms = Some(now);
                    import.copy.error.clear();
                    import.step(
                        "recorded",
                        json!({
                            "key": record.name,
                            "imported_at": rfc3339(now),
                        }),
                    );
                    family.copies.retain(|c| c.provider != target);
                    family.copies.push(import.copy);
                    cx.save_family(&family).await?;
                }
                Err((step, e)) => {
                    import
                        .trail
                        .push(json!({ "step": step, "error": e.to_string() }));
                    failure.get_or_insert(e);
                }
            }
            let trail = std::mem::take(&mut import.trail);
            steps.insert(target.clone(), Value::Array(trail));
        }
        family.copies.sort_by(|a, b| a.provider.cmp(&b.provider));
        cx.detail("targets", Value::Object(steps));
        cx.detail("family_state", family.state());
        match failure {
            Some(e) => Err(e),
            None => Ok(with_copies(cx, original, family)),
        }
    }
}

impl ReimportByok {
    /// The copies to re-import, each checked: imported, in a target that re-imports, its key
    /// enabled, its lifetime one the target gives.
    fn choose(
        &self,
        cx: &Exec<'_, Changes>,
        original: &KeyRecord,
        copies: &[KeyCopy],
    ) -> Result<Vec<Chosen>, GatewayError> {
        let picked: Vec<&KeyCopy> = if self.targets.is_empty() {
            copies
                .iter()
                .filter(|c| c.imported && reimports(&c.provider_kind))
                .collect()
        } else {
            self.targets
                .iter()
                .map(|t| {
                    copies.iter().find(|c| &c.provider == t).ok_or_else(|| {
                        GatewayError::invalid(
                            "targets",
                            format!(
                                "'{}' has no copy in target '{}'",
                                original.name,
                                validate::truncate(t, 64)
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        };
        if picked.is_empty() {
            return Err(GatewayError::invalid(
                "targets",
                format!(
                    "'{}' has no imported copy in a target that re-imports material (aws-kms)",
                    original.name
                ),
            ));
        }
        let mut out = Vec::with_capacity(picked.len());
        for copy in picked {
            let target = &copy.provider;
            if !copy.imported {
                return Err(GatewayError::invalid(
                    "targets",
                    format!(
                        "the copy into '{target}' was never imported: `keygate byok retry` imports it"
                    ),
                ));
            }
            let kind = cx.import_target(target)?.kind();
            if !reimports(kind) {
                return Err(GatewayError::invalid(
                    "targets",
                    format!("target '{target}' ({kind}) cannot import the same material again"),
                ));
            }
            let record = copy
                .copy_key_id
                .as_deref()
                .and_then(|id| cx.key_by_id(id))
                .ok_or_else(|| {
                    GatewayError::invalid(
                        "targets",
                        format!("the copy into '{target}' is no longer in the catalog"),
                    )
                })?;
            if record.state != KeyState::Enabled {
                return Err(GatewayError::invalid(
                    "targets",
                    format!(
                        "the copy into '{target}' ('{}') is {}: only an enabled copy is re-imported",
                        record.name, record.state
                    ),
                ));
            }
            let validity = self
                .validity
                .or_else(|| validity_of(copy.material_validity_ms));
            check_validity(target, kind, validity)?;
            out.push(Chosen {
                copy: copy.clone(),
                record,
                validity,
            });
        }
        Ok(out)
    }
}
