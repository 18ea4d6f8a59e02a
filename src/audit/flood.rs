//! Floods of unauthenticated or denied calls, aggregated so they cannot fill the disk.
//!
//! Per client address (its IP, whatever the port) and per window, the first `threshold`
//! denied calls are each recorded as usual; further ones are counted, and when the window ends
//! one `CallsAggregated` event records how many there were, which reasons, actions and
//! principals, and the first and last request ids. A flood of any size thus leaves at most
//! `threshold + 1` events per address per window, and the full count is on record.
//!
//! Counted calls are answered before their count is durable: the aggregate is appended when
//! the window ends or at shutdown, so a crash loses at most one window's count of refused
//! calls (never an allowed one: only denied calls are counted).

use super::event::{AuditRecord, Outcome};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// The audit action of an aggregate.
pub const AGGREGATE_ACTION: &str = "CallsAggregated";

/// Addresses tracked at once; beyond this, new addresses share one window (`*`).
const MAX_ADDRESSES: usize = 100_000;

/// Principals listed in one aggregate at most.
const MAX_ACTORS: usize = 20;

#[derive(Debug, Clone, Copy)]
pub struct FloodSettings {
    /// Denied calls per address per window recorded one by one.
    pub threshold: u32,
    pub window: Duration,
}

#[derive(Default)]
struct Window {
    start_ms: i64,
    recorded: u64,
    counted: u64,
    first_request_id: String,
    last_request_id: String,
    reasons: BTreeMap<String, u64>,
    actions: BTreeMap<String, u64>,
    actors: BTreeSet<String>,
    actor_kinds: BTreeSet<String>,
}

pub struct FloodGate {
    settings: FloodSettings,
    windows: Mutex<HashMap<String, Window>>,
}

/// The address part of `ip:port` (or `[v6]:port`).
fn address_of(client: &str) -> &str {
    if let Some(rest) = client.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match client.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => client,
    }
}

impl FloodGate {
    pub fn new(settings: FloodSettings) -> Self {
        Self {
            settings,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a call's event is recorded (`true`) or only counted (`false`). Only denied
    /// calls from a client address are ever counted.
    pub fn admit(&self, record: &AuditRecord, now_ms: i64) -> bool {
        if record.outcome != Outcome::Denied.as_str() || record.client_address == "internal" {
            return true;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        let mut address = address_of(&record.client_address).to_string();
        if !windows.contains_key(&address) && windows.len() >= MAX_ADDRESSES {
            address = "*".into();
        }
        let window_ms = self.settings.window.as_millis() as i64;
        let w = windows.entry(address).or_insert_with(|| Window {
            start_ms: now_ms,
            ..Default::default()
        });
        if now_ms - w.start_ms >= window_ms && w.counted == 0 {
            // A quiet window ended without a flood: start afresh.
            *w = Window {
                start_ms: now_ms,
                ..Default::default()
            };
        }
        if w.recorded < u64::from(self.settings.threshold) {
            w.recorded += 1;
            return true;
        }
        w.counted += 1;
        if w.first_request_id.is_empty() {
            w.first_request_id = record.request_id.clone();
        }
        w.last_request_id = record.request_id.clone();
        *w.reasons.entry(record.error_reason.clone()).or_default() += 1;
        *w.actions.entry(record.action.clone()).or_default() += 1;
        if w.actors.len() < MAX_ACTORS {
            w.actors.insert(record.actor.clone());
        }
        w.actor_kinds.insert(record.actor_kind.clone());
        false
    }

    /// The aggregates of windows that ended by `now_ms` (all of them with `all`), removed
    /// from the gate.
    pub fn due(&self, now_ms: i64, all: bool) -> Vec<AuditRecord> {
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        let window_ms = self.settings.window.as_millis() as i64;
        let ended: Vec<String> = windows
            .iter()
            .filter(|(_, w)| all || now_ms - w.start_ms >= window_ms)
            .map(|(a, _)| a.clone())
            .collect();
        let mut out = Vec::new();
        for address in ended {
            let Some(w) = windows.remove(&address) else {
                continue;
            };
            if w.counted > 0 {
                out.push(self.aggregate(&address, &w, now_ms));
            }
        }
        out
    }

    fn aggregate(&self, address: &str, w: &Window, end_ms: i64) -> AuditRecord {
        let single = |set: &BTreeSet<String>| {
            if set.len() == 1 {
                set.iter().next().cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let reason = if w.reasons.len() == 1 {
            w.reasons.keys().next().cloned().unwrap_or_default()
        } else {
            String::new()
        };
        AuditRecord {
            time_ms: end_ms,
            source: "gateway".into(),
            actor: match single(&w.actors) {
                a if a.is_empty() => "several".into(),
                a => a,
            },
            actor_kind: match single(&w.actor_kinds) {
                k if k.is_empty() => "several".into(),
                k => k,
            },
            action: AGGREGATE_ACTION.into(),
            outcome: Outcome::Denied.as_str().into(),
            reason: format!(
                "{} more denied calls from {address} between {} and {} were counted, not recorded one by one ({} per address per {} are)",
                w.counted,
                crate::time::rfc3339(w.start_ms),
                crate::time::rfc3339(end_ms),
                self.settings.threshold,
                humantime::format_duration(self.settings.window)
            ),
            error_reason: reason,
            policy: "system: flood aggregation".into(),
            request_id: w.last_request_id.clone(),
            client_address: address.to_string(),
            details: serde_json::json!({
                "count": w.counted,
                "recorded_individually": w.recorded,
                "window_start": crate::time::rfc3339(w.start_ms),
                "window_end": crate::time::rfc3339(end_ms),
                "threshold": self.settings.threshold,
                "reasons": w.reasons,
                "actions": w.actions,
                "actors": w.actors,
                "first_request_id": w.first_request_id,
                "last_request_id": w.last_request_id,
            })
            .to_string(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(address: &str, id: u32) -> AuditRecord {
        AuditRecord {
            outcome: "denied".into(),
            client_address: address.into(),
            request_id: format!("r{id}"),
            error_reason: "TOKEN_INVALID".into(),
            action: "Encrypt".into(),
            actor: "anonymous".into(),
            actor_kind: "anonymous".into(),
            ..Default::default()
        }
    }

    #[test]
    fn past_the_threshold_calls_are_counted_and_the_count_is_kept() {
        let gate = FloodGate::new(FloodSettings {
            threshold: 3,
            window: Duration::from_secs(10),
        });
        let recorded = (0..1000)
            .filter(|i| gate.admit(&denied(&format!("10.0.0.1:{}", 1000 + i), *i), 0))
            .count();
        assert_eq!(recorded, 3);
        // Another address has its own window; allowed calls are never counted.
        assert!(gate.admit(&denied("10.0.0.2:1", 0), 0));
        let ok = AuditRecord {
            outcome: "ok".into(),
            client_address: "10.0.0.1:5".into(),
            ..Default::default()
        };
        assert!(gate.admit(&ok, 0));
        assert!(gate.due(5_000, false).is_empty());
        let due = gate.due(10_000, false);
        assert_eq!(due.len(), 1, "only the flooded address has an aggregate");
        let details: serde_json::Value = serde_json::from_str(&due[0].details).unwrap();
        assert_eq!(details["count"], 997);
        assert_eq!(details["first_request_id"], "r3");
        assert_eq!(due[0].client_address, "10.0.0.1");
        assert_eq!(due[0].error_reason, "TOKEN_INVALID");
        // The next window starts afresh.
        assert!(gate.admit(&denied("10.0.0.1:9", 5), 20_000));
    }

    #[test]
    fn addresses_lose_their_port() {
        assert_eq!(address_of("127.0.0.1:5555"), "127.0.0.1");
        assert_eq!(address_of("[::1]:5555"), "::1");
        assert_eq!(address_of("internal"), "internal");
        assert_eq!(address_of("::1"), "::1");
    }
}
