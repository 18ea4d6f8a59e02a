//! How much each version of a key was used lately, counted from keygate's own audit log:
//! the successful decrypts, verifies, MAC verifies and re-encryptions from each version
//! within a window. Batches count every item (their events carry per-version counts).
//!
//! The count reads the key's events in the window through the audit store's key index; it
//! is meant for `key show` and retirement checks, not for every call.

use crate::audit::AuditFilter;
use crate::audit::store::After;
use crate::catalog::KeyRecord;
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Mode};
use std::collections::BTreeMap;

/// Uses of one version within the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VersionUsage {
    pub uses: u64,
    pub last_used_ms: Option<i64>,
}

/// The actions that use a version to read what it protected.
const READS: &[&str] = &["Decrypt", "Verify", "VerifyMac", "ReEncrypt"];

/// Events read per page while counting.
const PAGE: u32 = 1000;

impl VersionUsage {
    fn add(&mut self, uses: u64, at_ms: i64) {
        self.uses += uses;
        self.last_used_ms = Some(self.last_used_ms.map_or(at_ms, |t| t.max(at_ms)));
    }
}

/// Uses per version on each UTC day, keyed by the day's start (ms since the epoch).
pub type DailyUsage = BTreeMap<i64, BTreeMap<u32, u64>>;

pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// Per version of `key`: its uses since `since_ms`.
pub async fn version_usage<M: Mode>(
    cx: &Exec<'_, M>,
    key: &KeyRecord,
    since_ms: i64,
) -> Result<BTreeMap<u32, VersionUsage>, GatewayError> {
    Ok(usage_by_day(cx, key, since_ms).await?.0)
}

/// Per version of `key`: its uses since `since_ms`, in all and per UTC day (the console's
/// chart of a key's use over time).
pub async fn usage_by_day<M: Mode>(
    cx: &Exec<'_, M>,
    key: &KeyRecord,
    since_ms: i64,
) -> Result<(BTreeMap<u32, VersionUsage>, DailyUsage), GatewayError> {
    let mut usage: BTreeMap<u32, VersionUsage> = BTreeMap::new();
    let mut daily = DailyUsage::new();
    for action in READS {
        let filter = AuditFilter {
            start_ms: Some(since_ms),
            key: Some(key.id.clone()),
            key_id: Some(key.id.clone()),
            action: Some((*action).to_string()),
            outcome: Some("ok".into()),
            source: Some("gateway".into()),
            ..Default::default()
        };
        let mut after = None;
        loop {
            let events = cx.audit_log().query(&filter, after, PAGE).await?;
            for e in &events {
                for (version, uses) in versions_used(&e.record, &key.id) {
                    usage
                        .entry(version)
                        .or_default()
                        .add(uses, e.record.time_ms);
                    let day = e.record.time_ms - e.record.time_ms.rem_euclid(DAY_MS);
                    *daily.entry(day).or_default().entry(version).or_default() += uses;
                }
            }
            match events.last() {
                Some(last) if events.len() == PAGE as usize => {
                    after = Some(After {
                        time_ms: last.record.time_ms,
                        sequence: last.sequence,
                    });
                }
                _ => break,
            }
        }
    }
    Ok((usage, daily))
}

/// The versions of `key_id` one event used, and how many times: a batch's `versions` map,
/// a single ReEncrypt's source version, or the event's version.
fn versions_used(r: &crate::audit::AuditRecord, key_id: &str) -> Vec<(u32, u64)> {
    let details: serde_json::Value = if r.details.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null)
    };
    if let Some(map) = details.get("versions").and_then(|v| v.as_object()) {
        return map
            .iter()
            .filter_map(|(v, n)| Some((v.parse().ok()?, n.as_u64()?)))
            .collect();
    }
    if r.action == "ReEncrypt" {
        // A single ReEncrypt's event is about its destination; the source is in its details.
        let source = details.get("source_key_id").and_then(|v| v.as_str());
        let version = details.get("source_key_version").and_then(|v| v.as_u64());
        return match (source, version) {
            (Some(s), Some(v)) if s == key_id => vec![(u32::try_from(v).unwrap_or(0), 1)],
            _ => Vec::new(),
        };
    }
    if r.key_version > 0 {
        vec![(r.key_version, 1)]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditRecord;

    #[test]
    fn batches_count_every_item_and_re_encryptions_their_source() {
        let batch = AuditRecord {
            action: "Decrypt".into(),
            key_version: 0,
            details: r#"{"rpc":"BatchDecrypt","versions":{"1":5,"2":1}}"#.into(),
            ..Default::default()
        };
        assert_eq!(versions_used(&batch, "k"), vec![(1, 5), (2, 1)]);
        let single = AuditRecord {
            action: "Decrypt".into(),
            key_version: 3,
            ..Default::default()
        };
        assert_eq!(versions_used(&single, "k"), vec![(3, 1)]);
        let moved = AuditRecord {
            action: "ReEncrypt".into(),
            key_version: 4,
            details: r#"{"source_key_id":"k","source_key_version":1}"#.into(),
            ..Default::default()
        };
        assert_eq!(versions_used(&moved, "k"), vec![(1, 1)]);
        assert!(versions_used(&moved, "other").is_empty());
    }
}
