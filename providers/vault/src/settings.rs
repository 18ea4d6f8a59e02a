//! A Transit key's settings that contradict keygate's, for posture scans: read with the key
//! itself (one request). keygate creates and imports keys with deletion not allowed (it allows
//! deletion only inside its own destruction, just before deleting), not exportable and with no
//! plaintext backup (rule 1: key material never leaves the backend); a key found otherwise was
//! changed around keygate.

use crate::provider::VaultProvider;
use keygate_provider::{KeyUri, Replied, Result, SettingConflict};
use reqwest::Method;
use serde_json::Value;

pub(crate) async fn setting_conflicts(
    p: &VaultProvider,
    key: &KeyUri,
) -> Result<Replied<Vec<SettingConflict>>> {
    let name = p.key_name(key)?;
    let op = p.op("read key settings", key);
    let reply = p
        .send(&op, Method::GET, &format!("keys/{name}"), None)
        .await?;
    Ok(Replied::with_request_id(
        conflicts(&reply.data),
        reply.request_id,
    ))
}

/// (setting, what keygate sets and why), each a flag keygate keeps false.
const KEPT_FALSE: &[(&str, &str)] = &[
    (
        "deletion_allowed",
        "false: deletion protection on; keygate allows deletion only inside its own destruction",
    ),
    (
        "exportable",
        "false: key material never leaves Transit (rule 1)",
    ),
    (
        "allow_plaintext_backup",
        "false: no plaintext backup of the key material (rule 1)",
    ),
];

fn conflicts(data: &Value) -> Vec<SettingConflict> {
    KEPT_FALSE
        .iter()
        .filter(|(setting, _)| data.get(*setting).and_then(Value::as_bool) == Some(true))
        .map(|(setting, expected)| SettingConflict {
            setting: (*setting).to_string(),
            expected: (*expected).to_string(),
            found: "true".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_flags_keygate_keeps_off_and_found_on_conflict() {
        let safe = json!({"deletion_allowed": false, "exportable": false, "type": "aes256-gcm96"});
        assert!(conflicts(&safe).is_empty());
        let changed =
            json!({"deletion_allowed": true, "exportable": true, "allow_plaintext_backup": false});
        let names: Vec<String> = conflicts(&changed).into_iter().map(|c| c.setting).collect();
        assert_eq!(names, ["deletion_allowed", "exportable"]);
    }
}
