//! Backoff between attempts and the budget that bounds how many retries an instance makes.

use super::settings::RetrySettings;
use std::sync::Mutex;
use std::time::Duration;

/// Retries an instance may make before its calls have earned any: enough for a short blip,
/// and the most that calls can save up.
pub const RESERVE: f64 = 10.0;

/// The pause before retry `n` (1 for the first retry): uniform in
/// `[0, min(max_backoff, base_backoff × 2^(n-1))]`. Full jitter spreads the retries of many
/// callers that failed together instead of sending them back in step.
pub fn backoff(settings: &RetrySettings, n: u32) -> Duration {
    let exp = settings
        .base_backoff
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)));
    let cap = exp.min(settings.max_backoff);
    cap.mul_f64(rand::random_range(0.0..=1.0))
}

/// A retry budget: every call deposits `ratio` of a retry, every retry withdraws one, and the
/// balance never exceeds [`RESERVE`]. So retries stay under `RESERVE + ratio × calls`, and a
/// backend that fails everything is hit by at most `1 + ratio` times the load, not
/// `max_attempts` times.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    balance: Mutex<f64>,
}

impl RetryBudget {
    pub fn new(ratio: f64) -> Self {
        Self {
            ratio,
            balance: Mutex::new(RESERVE),
        }
    }

    /// A call starts.
    pub fn deposit(&self) {
        if let Ok(mut b) = self.balance.lock() {
            *b = (*b + self.ratio).min(RESERVE);
        }
    }

    /// Whether a retry may go; takes its share when it may.
    pub fn withdraw(&self) -> bool {
        match self.balance.lock() {
            Ok(mut b) if *b >= 1.0 => {
                *b -= 1.0;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RetrySettings {
        RetrySettings {
            max_attempts: 5,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            budget_ratio: 0.5,
        }
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_below() {
        let s = settings();
        for _ in 0..200 {
            assert!(backoff(&s, 1) <= Duration::from_millis(100));
            assert!(backoff(&s, 3) <= Duration::from_millis(400));
            assert!(backoff(&s, 30) <= Duration::from_millis(500));
        }
    }

    #[test]
    fn the_budget_allows_the_reserve_then_the_ratio() {
        let b = RetryBudget::new(0.5);
        let reserve = std::iter::from_fn(|| b.withdraw().then_some(())).count();
        assert_eq!(reserve, RESERVE as usize);
        // Then one retry per two calls.
        let granted = (0..20)
            .filter(|_| {
                b.deposit();
                b.withdraw()
            })
            .count();
        assert_eq!(granted, 10);
        let none = RetryBudget::new(0.0);
        let granted = (0..50).filter(|_| none.withdraw()).count();
        assert_eq!(granted, RESERVE as usize);
    }
}
