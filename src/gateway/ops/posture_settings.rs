//! What a posture scan reads of managed keys' backend settings, for
//! `provider-settings-contradict`: one read per key (a request or two), only for keys its
//! provider listed in this scan and that are in use (enabled or disabled: a key on its way to
//! destruction has deletion allowed on purpose), and only where the provider reads settings.

use crate::catalog::{KeyRecord, KeyState};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Reads};
use crate::posture::{Rule, ScannedKey, Violation, settings};
use std::collections::HashSet;
use std::sync::Arc;

/// The violations, and the keys whose settings could not be read (their findings are left
/// as they are: a failed read proves nothing).
pub async fn read(
    cx: &mut Exec<'_, Reads>,
    keys: &[Arc<KeyRecord>],
    scanned: &[ScannedKey],
) -> Result<(Vec<Violation>, HashSet<(String, String)>), GatewayError> {
    let listed: HashSet<&str> = scanned
        .iter()
        .filter(|k| k.change != "vanished" && !k.key_id.is_empty())
        .map(|k| k.key_id.as_str())
        .collect();
    let mut read = Vec::new();
    let mut undecided = HashSet::new();
    let mut failures = 0usize;
    for key in keys {
        if !matches!(key.state, KeyState::Enabled | KeyState::Disabled)
            || !listed.contains(key.id.as_str())
        {
            continue;
        }
        match cx.setting_conflicts(key).await {
            None => {}
            Some(Ok(conflicts)) => read.push((key.clone(), conflicts)),
            Some(Err(e)) => {
                failures += 1;
                tracing::warn!(key = %key.name, error = %e, "posture: key settings not read");
                undecided.insert((
                    Rule::ProviderSettingsContradict.as_str().to_string(),
                    key.id.clone(),
                ));
            }
        }
    }
    cx.detail("settings_read", read.len());
    if failures > 0 {
        cx.detail("settings_unread", failures);
    }
    Ok((settings::settings_violations(&read), undecided))
}
