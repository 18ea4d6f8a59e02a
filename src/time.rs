//! Wall-clock helpers: keygate stores times as Unix milliseconds and shows them as RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `ms` plus `d`, saturating: a due date far past the end of time is still a date.
pub fn after(ms: i64, d: Duration) -> i64 {
    ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn to_timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn from_timestamp(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// The longest duration a setting takes: far beyond any real one, and short enough that
/// adding it to a clock reading or scaling it by a small factor cannot overflow (a
/// `shutdown_grace` of 2^64 s made the server panic when it computed its drain time).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses `365d`, `90d`, `12h`, `30m` (humantime syntax), at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("'{text}' is not a duration like 365d, 90d or 12h: {e}"))?;
    if d > MAX_DURATION {
        return Err(format!("'{text}' is longer than 100 years"));
    }
    Ok(d)
}

pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    /// The `config` fuzz target's input `regression-shutdown-grace-overflow`: a
    /// `server.shutdown_grace` of 2^64-1 seconds passed the start-up checks, then overflowed
    /// `drain_grace` (and the shutdown deadline).
    #[test]
    fn a_duration_past_a_hundred_years_is_refused() {
        assert!(parse_duration("18446744073709551615s").is_err());
        assert!(parse_duration("36501d").is_err());
        assert_eq!(
            parse_duration("36500d"),
            Ok(Duration::from_secs(36_500 * 86_400))
        );
        let _ = MAX_DURATION * 3 / 4;
        let _ = std::time::Instant::now() + MAX_DURATION;
    }
}
