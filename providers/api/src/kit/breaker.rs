//! The circuit breaker of one provider instance.
//!
//! Closed: calls go through; consecutive calls that end `Unavailable` (after their retries)
//! are counted and any other outcome resets the count. After `failures` of them the circuit opens: calls fail at once,
//! without reaching the backend, for `open_for`. The first call after that is a probe
//! (half-open) while the others keep failing at once; its success closes the circuit, its
//! failure opens it for another `open_for`.

use super::settings::BreakerSettings;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The state a breaker reports to metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Normal,
    /// The one call that tests an open circuit.
    Probe,
}

/// Why a call was refused: the circuit is open.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub failures: u32,
    /// When the circuit (first) opened, for people reading the message.
    pub since: SystemTime,
    /// When the next probe may go; `None` while one is in flight.
    pub probe_at: Option<SystemTime>,
    pub probe_in: Duration,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "circuit open since {} after {} consecutive unavailable calls; calls fail at once",
            humantime::format_rfc3339_seconds(self.since),
            self.failures
        )?;
        match self.probe_at {
            Some(at) => write!(
                f,
                " until a probe at {} (in {})",
                humantime::format_rfc3339_seconds(at),
                humantime::format_duration(round_ms(self.probe_in))
            ),
            None => write!(f, " while a probe call is in flight"),
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().min(u128::from(u64::MAX)) as u64)
}

#[derive(Debug)]
enum Circuit {
    Closed { consecutive: u32 },
    Open { probe_at: Instant },
    HalfOpen,
}

#[derive(Debug)]
struct State {
    circuit: Circuit,
    /// Wall-clock time the circuit opened, kept through failed probes.
    since: SystemTime,
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State {
                circuit: Circuit::Closed { consecutive: 0 },
                since: SystemTime::now(),
            }),
        }
    }

    pub fn open_for(&self) -> Duration {
        self.settings.open_for
    }

    pub fn state(&self) -> BreakerState {
        match self.state.lock().map(|s| match s.circuit {
            Circuit::Closed { .. } => BreakerState::Closed,
            Circuit::Open { .. } => BreakerState::Open,
            Circuit::HalfOpen => BreakerState::HalfOpen,
        }) {
            Ok(state) => state,
            Err(_) => BreakerState::Closed,
        }
    }

    /// Lets a call through, or refuses it. The second value is a state change to report.
    pub fn admit(&self) -> Result<(Admission, Option<BreakerState>), Refusal> {
        let now = Instant::now();
        let Ok(mut s) = self.state.lock() else {
            return Ok((Admission::Normal, None));
        };
        match s.circuit {
            Circuit::Closed { .. } => Ok((Admission::Normal, None)),
            Circuit::Open { probe_at } if now >= probe_at => {
                s.circuit = Circuit::HalfOpen;
                Ok((Admission::Probe, Some(BreakerState::HalfOpen)))
            }
            Circuit::Open { probe_at } => {
                let probe_in = probe_at.saturating_duration_since(now);
                Err(Refusal {
                    failures: self.settings.failures,
                    since: s.since,
                    probe_at: Some(SystemTime::now() + probe_in),
                    probe_in,
                })
            }
            Circuit::HalfOpen => Err(Refusal {
                failures: self.settings.failures,
                since: s.since,
                probe_at: None,
                probe_in: Duration::ZERO,
            }),
        }
    }

    /// The outcome of an admitted call: `unavailable` if the backend was unreachable or too
    /// slow. Returns the state change, if any. Outcomes of ordinary calls that finish after
    /// the circuit opened change nothing: only the probe decides.
    pub fn record(&self, admission: Admission, unavailable: bool) -> Option<BreakerState> {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        match (admission, &mut s.circuit, unavailable) {
            (Admission::Normal, Circuit::Closed { consecutive }, true) => {
                *consecutive += 1;
                if *consecutive >= self.settings.failures {
                    s.since = SystemTime::now();
                    s.circuit = Circuit::Open {
                        probe_at: Instant::now() + self.settings.open_for,
                    };
                    return Some(BreakerState::Open);
                }
                None
            }
            (Admission::Normal, Circuit::Closed { consecutive }, false) => {
                *consecutive = 0;
                None
            }
            (Admission::Probe, Circuit::HalfOpen, true) => {
                s.circuit = Circuit::Open {
                    probe_at: Instant::now() + self.settings.open_for,
                };
                Some(BreakerState::Open)
            }
            (Admission::Probe, Circuit::HalfOpen, false) => {
                s.circuit = Circuit::Closed { consecutive: 0 };
                Some(BreakerState::Closed)
            }
            _ => None,
        }
    }

    /// A probe ended without an outcome (its caller went away): the next call probes instead.
    pub fn abandon_probe(&self) -> Option<BreakerState> {
        let mut s = self.state.lock().ok()?;
        if matches!(s.circuit, Circuit::HalfOpen) {
            s.circuit = Circuit::Open {
                probe_at: Instant::now(),
            };
            return Some(BreakerState::Open);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32) -> Breaker {
        Breaker::new(BreakerSettings {
            failures,
            open_for: Duration::from_secs(10),
        })
    }

    fn fail(b: &Breaker) -> Option<BreakerState> {
        let (admission, _) = b.admit().expect("admitted");
        b.record(admission, true)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_n_consecutive_failures_only() {
        let b = breaker(3);
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), None);
        // Another answer resets the count.
        assert_eq!(b.record(Admission::Normal, false), None);
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), Some(BreakerState::Open));
        let refusal = b.admit().unwrap_err();
        assert_eq!(refusal.probe_in, Duration::from_secs(10));
        assert!(
            refusal
                .to_string()
                .contains("3 consecutive unavailable calls"),
            "{refusal}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_then_close_or_reopen() {
        let b = breaker(1);
        fail(&b);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            b.admit().map(|a| a.0).ok(),
            Some(Admission::Probe),
            "the first call after open_for probes"
        );
        let refusal = b.admit().unwrap_err();
        assert!(refusal.to_string().contains("probe call is in flight"));
        assert_eq!(b.record(Admission::Probe, true), Some(BreakerState::Open));
        assert!(b.admit().is_err(), "a failed probe re-opens for open_for");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.admit().map(|a| a.0).ok(), Some(Admission::Probe));
        assert_eq!(
            b.record(Admission::Probe, false),
            Some(BreakerState::Closed)
        );
        assert_eq!(b.admit().map(|a| a.0).ok(), Some(Admission::Normal));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_the_next_call_probe() {
        let b = breaker(1);
        fail(&b);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.admit().is_ok());
        assert_eq!(b.abandon_probe(), Some(BreakerState::Open));
        assert_eq!(b.admit().map(|a| a.0).ok(), Some(Admission::Probe));
    }
}
