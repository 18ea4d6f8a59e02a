//! A token bucket per provider instance, so keygate stays under a backend's request quota.

use super::settings::RateSettings;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// May go below zero: callers that reserved a token and are waiting for it.
    tokens: f64,
    at: Instant,
}

/// No token frees up before the deadline; the wait it would have taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoToken {
    pub wait: Duration,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(settings: &RateSettings) -> Self {
        let burst = f64::from(settings.burst());
        Self {
            per_second: settings.per_second,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                at: Instant::now(),
            }),
        }
    }

    /// Takes a token and says how long to wait before using it. Waiting callers queue in
    /// order of arrival (each takes the next token to come), which is what holds the rate.
    /// A token that would come only after `deadline` is not taken.
    pub fn reserve(&self, deadline: Instant) -> Result<Duration, NoToken> {
        let now = Instant::now();
        let Ok(mut s) = self.state.lock() else {
            return Ok(Duration::ZERO);
        };
        let earned = now.saturating_duration_since(s.at).as_secs_f64() * self.per_second;
        s.tokens = (s.tokens + earned).min(self.burst);
        s.at = now;
        let wait = if s.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - s.tokens) / self.per_second)
        };
        if now + wait > deadline {
            return Err(NoToken { wait });
        }
        s.tokens -= 1.0;
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(per_second: f64, burst: u32) -> TokenBucket {
        TokenBucket::new(&RateSettings {
            per_second,
            burst: Some(burst),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_tokens_come_at_the_rate() {
        let b = bucket(10.0, 3);
        let far = Instant::now() + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.reserve(far), Ok(Duration::ZERO));
        }
        // The 4th waits 100 ms, the 5th 200 ms: one token per 1/10 s.
        assert_eq!(b.reserve(far), Ok(Duration::from_millis(100)));
        assert_eq!(b.reserve(far), Ok(Duration::from_millis(200)));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(b.reserve(far), Ok(Duration::from_millis(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_burst_a_short_deadline_gets_no_token() {
        let b = bucket(1.0, 2);
        let soon = Instant::now() + Duration::from_millis(500);
        assert!(b.reserve(soon).is_ok());
        assert!(b.reserve(soon).is_ok());
        assert_eq!(
            b.reserve(soon),
            Err(NoToken {
                wait: Duration::from_secs(1)
            })
        );
        // Refused callers take nothing: after a second one token is there again.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.reserve(Instant::now()), Ok(Duration::ZERO));
    }
}
