//! The guard's settings for one provider instance: the `[providers.NAME.guard]` table.
//!
//! ```toml
//! [providers.aws.guard]
//! deadline = "5s"                 # default: the gateway's provider deadline
//! retry = { max_attempts = 3, base_backoff = "50ms", max_backoff = "2s", budget_ratio = 0.2 }
//! breaker = { failures = 5, open_for = "5s" }
//! rate = { per_second = 10000, burst = 10000 }   # default: no limit
//! coalesce = { in_flight = 2 }    # backends with batch requests (Vault): see CoalesceSettings
//!
//! [providers.aws.guard.faults]    # dev mode only: a deliberately slow or failing backend
//! delay = "2s"                    # before each attempt; `delay_after`: after the backend answered
//! ops = ["rotate", "create_key"]  # default: every operation
//! fail = "unavailable"            # optional: the listed operations fail after the delay
//! ```
//!
//! Every setting is optional. Durations use humantime syntax (`250ms`, `2s`, `1m`).

use super::Op;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// What the gateway uses when neither `deadline` nor the registry says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSettings {
    /// Bounds a whole call: every attempt, the pauses between them and the wait for a rate
    /// token. `None` takes the registry's default.
    #[serde(default, deserialize_with = "optional_duration")]
    pub deadline: Option<Duration>,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// `None`: no limit.
    #[serde(default)]
    pub rate: Option<RateSettings>,
    #[serde(default)]
    pub coalesce: CoalesceSettings,
    /// Test-only fault injection; refused outside dev mode.
    #[serde(default)]
    pub faults: Option<FaultSettings>,
}

/// Retries of idempotent operations that failed with `Unavailable` or `Throttled`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all, the first included; 1 turns retries off.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The pause before retry n is drawn uniformly from 0 up to
    /// `min(max_backoff, base_backoff × 2^(n-1))` (exponential backoff, full jitter).
    #[serde(default = "default_base_backoff", deserialize_with = "duration")]
    pub base_backoff: Duration,
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Retries may add at most this fraction of the instance's calls (plus a reserve of
    /// [`super::retry::RESERVE`]), so a failing backend is not hit by a multiple of the load.
    #[serde(default = "default_budget_ratio")]
    pub budget_ratio: f64,
}

/// The circuit breaker of one instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive calls ending `Unavailable` (retries included) that open the circuit.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// How long an open circuit fails calls at once before letting one probe through.
    #[serde(default = "default_open_for", deserialize_with = "duration")]
    pub open_for: Duration,
}

/// A token bucket that keeps the instance under a backend's quota.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    /// Sustained requests per second (each attempt counts).
    pub per_second: f64,
    /// Requests that may go at once after a quiet spell; default one second's worth.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateSettings {
    pub fn burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| self.per_second.ceil().min(f64::from(u32::MAX)) as u32)
            .max(1)
    }
}

/// Shared batch requests, for backends that take many items in one request (Vault
/// Transit's `batch_input`; other backends ignore this). Once `in_flight` encrypt (or
/// decrypt) requests for one key version are out, further calls for it wait for the next
/// request and go together in it, each with its own result, deadline and audit event. A
/// call never waits while fewer are out, so a quiet gateway sends every call alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoalesceSettings {
    /// Requests out per key version and operation before calls share; 0 turns sharing off.
    #[serde(default = "default_coalesce_in_flight")]
    pub in_flight: usize,
}

impl Default for CoalesceSettings {
    fn default() -> Self {
        Self {
            in_flight: default_coalesce_in_flight(),
        }
    }
}

/// Makes the listed operations slow (and optionally failing), as a slow backend would be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Added before each attempt reaches the provider, inside the deadline.
    #[serde(default, deserialize_with = "duration")]
    pub delay: Duration,
    /// Added after the provider has answered: the backend acted, its reply is late (what a
    /// change that outlives its deadline looks like).
    #[serde(default, deserialize_with = "duration")]
    pub delay_after: Duration,
    /// The operations affected; `None` means every one.
    #[serde(default)]
    pub ops: Option<Vec<Op>>,
    /// After the delay, fail instead of calling the provider.
    #[serde(default)]
    pub fail: Option<FaultKind>,
}

impl FaultSettings {
    pub fn applies_to(&self, op: Op) -> bool {
        self.ops.as_ref().is_none_or(|ops| ops.contains(&op))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Unavailable,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            base_backoff: default_base_backoff(),
            max_backoff: default_max_backoff(),
            budget_ratio: default_budget_ratio(),
        }
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: default_failures(),
            open_for: default_open_for(),
        }
    }
}

fn default_max_attempts() -> u32 {
    3
}
fn default_base_backoff() -> Duration {
    Duration::from_millis(50)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(2)
}
fn default_budget_ratio() -> f64 {
    0.2
}
/// Two requests out per key version: one slow request (a stalled connection) then does not
/// hold up every call of its key. On a 2-core machine with OpenBao beside keygate, 1 served
/// about 5% more calls at 32 concurrent callers, 4 about 15% fewer than 2.
fn default_coalesce_in_flight() -> usize {
    2
}
fn default_failures() -> u32 {
    5
}
fn default_open_for() -> Duration {
    Duration::from_secs(5)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "'{text}' is not a duration like 250ms, 2s or 1m: {e}"
        ))
    })
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Why a guard table was refused; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("guard{}: {reason}", if setting.is_empty() { String::new() } else { format!(".{setting}") })]
pub struct GuardSettingsError {
    pub setting: String,
    pub reason: String,
}

fn refuse(setting: &str, reason: impl Into<String>) -> GuardSettingsError {
    GuardSettingsError {
        setting: setting.into(),
        reason: reason.into(),
    }
}

impl GuardSettings {
    /// The `guard` table of a provider section (absent: every default). `dev` is whether the
    /// gateway runs in dev mode, the only mode that takes `faults`.
    pub fn from_value(
        value: Option<serde_json::Value>,
        dev: bool,
    ) -> Result<Self, GuardSettingsError> {
        let settings: GuardSettings = match value {
            None => GuardSettings::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| refuse("", e.to_string()))?,
        };
        settings.validate(dev)?;
        Ok(settings)
    }

    fn validate(&self, dev: bool) -> Result<(), GuardSettingsError> {
        if self.deadline == Some(Duration::ZERO) {
            return Err(refuse("deadline", "must be longer than zero"));
        }
        if self.retry.max_attempts == 0 {
            return Err(refuse(
                "retry.max_attempts",
                "must be at least 1 (1 turns retries off)",
            ));
        }
        if !(0.0..=1.0).contains(&self.retry.budget_ratio) {
            return Err(refuse("retry.budget_ratio", "must be between 0 and 1"));
        }
        if self.retry.base_backoff > self.retry.max_backoff {
            return Err(refuse(
                "retry.base_backoff",
                "must not be longer than retry.max_backoff",
            ));
        }
        if self.breaker.failures == 0 {
            return Err(refuse("breaker.failures", "must be at least 1"));
        }
        if let Some(rate) = &self.rate {
            if !(rate.per_second.is_finite() && rate.per_second > 0.0) {
                return Err(refuse("rate.per_second", "must be a positive number"));
            }
            if rate.burst == Some(0) {
                return Err(refuse("rate.burst", "must be at least 1"));
            }
        }
        if self.faults.is_some() && !dev {
            return Err(refuse(
                "faults",
                "fault injection makes the provider slow or failing on purpose, for tests; it is \
                 refused outside dev mode (`keygate serve --dev`)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn everything_is_optional() {
        let s = GuardSettings::from_value(None, false).unwrap();
        assert_eq!(s.deadline, None);
        assert_eq!(s.retry.max_attempts, 3);
        assert_eq!(s.breaker.failures, 5);
        assert!(s.rate.is_none() && s.faults.is_none());
        let s = GuardSettings::from_value(Some(json!({})), false).unwrap();
        assert_eq!(s.breaker.open_for, Duration::from_secs(5));
    }

    #[test]
    fn the_documented_table_parses() {
        let s = GuardSettings::from_value(
            Some(json!({
                "deadline": "5s",
                "retry": {"max_attempts": 4, "base_backoff": "20ms", "max_backoff": "1s", "budget_ratio": 0.1},
                "breaker": {"failures": 3, "open_for": "30s"},
                "rate": {"per_second": 10000},
                "faults": {"delay": "2s", "ops": ["rotate", "create_key"], "fail": "unavailable"},
            })),
            true,
        )
        .unwrap();
        assert_eq!(s.deadline, Some(Duration::from_secs(5)));
        assert_eq!(s.retry.base_backoff, Duration::from_millis(20));
        assert_eq!(s.rate.as_ref().map(RateSettings::burst), Some(10_000));
        let faults = s.faults.unwrap();
        assert!(faults.applies_to(Op::Rotate) && !faults.applies_to(Op::Encrypt));
        assert_eq!(faults.fail, Some(FaultKind::Unavailable));
    }

    #[test]
    fn faults_need_dev_mode() {
        let table = json!({"faults": {"delay": "1s"}});
        let err = GuardSettings::from_value(Some(table.clone()), false).unwrap_err();
        assert_eq!(err.setting, "faults");
        assert!(err.to_string().contains("--dev"), "{err}");
        assert!(GuardSettings::from_value(Some(table), true).is_ok());
    }

    #[test]
    fn mistakes_name_the_setting() {
        let err = |v| {
            GuardSettings::from_value(Some(v), true)
                .unwrap_err()
                .to_string()
        };
        assert!(err(json!({"deadlin": "1s"})).contains("deadlin"));
        assert!(err(json!({"deadline": "soon"})).contains("'soon' is not a duration"));
        assert!(err(json!({"rate": {"per_second": 0}})).contains("guard.rate.per_second"));
        assert!(err(json!({"faults": {"ops": ["rotate_key"]}})).contains("unknown operation"));
        assert!(err(json!({"retry": {"max_attempts": 0}})).contains("guard.retry.max_attempts"));
    }
}
