//! `byok-family-incomplete`: a BYOK family (an HSM original and its imported copies) that
//! lacks a copy it should have, decided from the families and the catalog (no I/O).
//!
//! A copy is lacking when its import failed (the family is incomplete until `byok retry`
//! imports it), or when the key holding it is going away while the original stays: scheduled
//! for destruction (it expires on that date), destroyed, or gone from the catalog; or when
//! its imported material expired in the target (AWS `ValidTo`, set by `byok import
//! --material-expires`), which leaves the key unusable until `byok reimport` imports the
//! same material again. The import parameters' validity recorded with a failed copy is only
//! named in the evidence, since a retry fetches new ones.
//!
//! An original that is itself going away takes its copies with it: no finding then.

use super::{Rule, Severity, Violation};
use crate::catalog::{KeyFamily, KeyRecord, KeyState};
use crate::time::rfc3339;
use std::collections::HashMap;
use std::sync::Arc;

pub fn family_violations(
    families: &[KeyFamily],
    keys: &[Arc<KeyRecord>],
    now_ms: i64,
) -> Vec<Violation> {
    let by_id: HashMap<&str, &KeyRecord> =
        keys.iter().map(|k| (k.id.as_str(), k.as_ref())).collect();
    let mut out = Vec::new();
    for family in families {
        let Some(original) = by_id.get(family.key_id.as_str()) else {
            continue;
        };
        if matches!(
            original.state,
            KeyState::PendingDestruction | KeyState::Destroyed
        ) {
            continue;
        }
        let mut lacking = Vec::new();
        for copy in &family.copies {
            if !copy.imported {
                let expiry = copy
                    .import_expires_at_ms
                    .map(|at| format!("; its import parameters were valid to {}", rfc3339(at)))
                    .unwrap_or_default();
                lacking.push(format!(
                    "the copy into '{}' was not imported ({}){expiry}",
                    copy.provider,
                    if copy.error.is_empty() {
                        "no reason recorded"
                    } else {
                        &copy.error
                    }
                ));
                continue;
            }
            let Some(copy_id) = &copy.copy_key_id else {
                continue;
            };
            match by_id.get(copy_id.as_str()) {
                None => lacking.push(format!(
                    "the copy into '{}' (key {copy_id}) is no longer in the catalog",
                    copy.provider
                )),
                Some(k) if k.state == KeyState::Destroyed => lacking.push(format!(
                    "the copy into '{}' ('{}') was destroyed",
                    copy.provider, k.name
                )),
                Some(k) if k.state == KeyState::PendingDestruction => lacking.push(format!(
                    "the copy into '{}' ('{}') is scheduled for destruction{}",
                    copy.provider,
                    k.name,
                    k.destruction_at_ms
                        .map(|at| format!(" at {}", rfc3339(at)))
                        .unwrap_or_default()
                )),
                Some(k) => {
                    if let Some(at) = copy.material_expires_at_ms.filter(|at| *at <= now_ms) {
                        lacking.push(format!(
                            "the copy into '{}' ('{}') lost its imported material at {} (expired); \
                         `keygate byok reimport` imports it again",
                            copy.provider,
                            k.name,
                            rfc3339(at)
                        ));
                    }
                }
            }
        }
        if lacking.is_empty() {
            continue;
        }
        out.push(Violation {
            rule: Rule::ByokFamilyIncomplete,
            severity: Severity::High,
            provider: original.provider.clone(),
            provider_uri: original.provider_uri.to_string(),
            key_id: original.id.clone(),
            key_name: original.name.clone(),
            evidence: format!(
                "BYOK family of '{}' ({} of {} copies lacking): {}",
                original.name,
                lacking.len(),
                family.copies.len(),
                lacking.join("; ")
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::KeyCopy;
    use crate::posture::test_key;

    fn copy(provider: &str, key: Option<&str>) -> KeyCopy {
        KeyCopy {
            provider: provider.into(),
            provider_kind: provider.into(),
            imported: key.is_some(),
            copy_key_id: key.map(str::to_string),
            provider_uri: String::new(),
            import_method: String::new(),
            wrapping_key_id: String::new(),
            ephemeral_left_hsm: false,
            imported_at_ms: key.map(|_| 1),
            imported_by: "kim".into(),
            import_expires_at_ms: None,
            material_validity_ms: None,
            material_expires_at_ms: None,
            error: if key.is_some() {
                String::new()
            } else {
                format!("target '{provider}': unreachable")
            },
        }
    }

    fn family(copies: Vec<KeyCopy>) -> KeyFamily {
        KeyFamily {
            key_id: "orig".into(),
            created_by: "kim".into(),
            created_at_ms: 0,
            copies,
        }
    }

    fn keys(states: &[(&str, KeyState)]) -> Vec<Arc<KeyRecord>> {
        states
            .iter()
            .map(|(id, state)| {
                let mut k = test_key(id);
                k.state = *state;
                Arc::new(k)
            })
            .collect()
    }

    #[test]
    fn a_complete_family_breaks_nothing() {
        let keys = keys(&[("orig", KeyState::Enabled), ("c1", KeyState::Enabled)]);
        let f = family(vec![copy("aws", Some("c1"))]);
        assert!(family_violations(&[f], &keys, 10).is_empty());
    }

    #[test]
    fn a_failed_or_departing_copy_makes_the_family_incomplete() {
        let mut keys = keys(&[
            ("orig", KeyState::Enabled),
            ("c1", KeyState::Enabled),
            ("c2", KeyState::PendingDestruction),
        ]);
        let mut failed = copy("vault", None);
        failed.import_expires_at_ms = Some(0);
        let f = family(vec![
            copy("aws", Some("c1")),
            failed,
            copy("gcp", Some("c2")),
        ]);
        let found = family_violations(std::slice::from_ref(&f), &keys, 10);
        assert_eq!(found.len(), 1, "{found:?}");
        let v = &found[0];
        assert_eq!(
            (v.rule, v.severity, v.key_id.as_str()),
            (Rule::ByokFamilyIncomplete, Severity::High, "orig")
        );
        assert!(
            v.evidence.contains("2 of 3 copies lacking"),
            "{}",
            v.evidence
        );
        assert!(
            v.evidence
                .contains("into 'vault' was not imported (target 'vault': unreachable)")
        );
        assert!(v.evidence.contains("valid to 1970-01-01"), "{}", v.evidence);
        assert!(
            v.evidence
                .contains("'app/c2') is scheduled for destruction")
        );

        // A copy gone from the catalog is lacking too.
        keys.retain(|k| k.id != "c1");
        let f = family(vec![copy("aws", Some("c1"))]);
        let found = family_violations(&[f], &keys, 10);
        assert!(
            found[0].evidence.contains("no longer in the catalog"),
            "{found:?}"
        );
    }

    #[test]
    fn a_copy_whose_material_expired_is_lacking_until_reimported() {
        let keys = keys(&[("orig", KeyState::Enabled), ("c1", KeyState::Enabled)]);
        let mut expiring = copy("aws", Some("c1"));
        expiring.material_expires_at_ms = Some(20);
        let f = family(vec![expiring]);
        assert!(family_violations(std::slice::from_ref(&f), &keys, 19).is_empty());
        let found = family_violations(&[f], &keys, 20);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].evidence.contains("lost its imported material")
                && found[0].evidence.contains("byok reimport"),
            "{}",
            found[0].evidence
        );
    }

    #[test]
    fn an_original_going_away_takes_its_copies_along() {
        let keys = keys(&[
            ("orig", KeyState::PendingDestruction),
            ("c1", KeyState::Destroyed),
        ]);
        let f = family(vec![copy("aws", Some("c1")), copy("vault", None)]);
        assert!(family_violations(&[f], &keys, 10).is_empty());
    }
}
