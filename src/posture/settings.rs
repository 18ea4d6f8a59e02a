//! `provider-settings-contradict`: a managed key whose backend settings contradict keygate's,
//! as the key's provider reads them (`KeyProvider::setting_conflicts`). What each backend
//! checks is its provider's to say: OpenBao/Vault Transit flags deletion allowed, exportable
//! and plaintext backup; AWS KMS automatic rotation turned off on a key KMS can rotate. The
//! other backends read nothing here (PKCS#11 attributes, Cloud KMS and Key Vault settings are
//! not checked yet).

use super::{Rule, Severity, Violation};
use crate::catalog::KeyRecord;
use keygate_provider::SettingConflict;
use std::sync::Arc;

pub fn settings_violations(read: &[(Arc<KeyRecord>, Vec<SettingConflict>)]) -> Vec<Violation> {
    read.iter()
        .filter(|(_, conflicts)| !conflicts.is_empty())
        .map(|(key, conflicts)| Violation {
            rule: Rule::ProviderSettingsContradict,
            severity: Severity::High,
            provider: key.provider.clone(),
            provider_uri: key.provider_uri.to_string(),
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            evidence: format!(
                "provider '{}' holds key '{}' with settings keygate does not set: {}",
                key.provider,
                key.name,
                conflicts
                    .iter()
                    .map(|c| format!("{} is {} (keygate: {})", c.setting, c.found, c.expected))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::test_key;

    #[test]
    fn a_key_with_conflicting_settings_is_a_finding_naming_each() {
        let conflict = |setting: &str| SettingConflict {
            setting: setting.into(),
            expected: "false".into(),
            found: "true".into(),
        };
        let read = vec![
            (Arc::new(test_key("a")), vec![]),
            (
                Arc::new(test_key("b")),
                vec![conflict("deletion_allowed"), conflict("exportable")],
            ),
        ];
        let found = settings_violations(&read);
        assert_eq!(found.len(), 1, "{found:?}");
        let v = &found[0];
        assert_eq!(
            (v.rule, v.severity, v.key_id.as_str()),
            (Rule::ProviderSettingsContradict, Severity::High, "b")
        );
        assert!(
            v.evidence
                .contains("deletion_allowed is true (keygate: false); exportable is true"),
            "{}",
            v.evidence
        );
    }
}
