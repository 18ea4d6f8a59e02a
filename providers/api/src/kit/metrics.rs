//! Metrics hooks. The guard reports every call and every breaker change to a [`Metrics`]
//! the registry injects; the default does nothing, and an exporter (Prometheus, OTLP)
//! implements the trait.

use super::Op;
use super::breaker::BreakerState;
use std::time::Duration;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// [`crate::ProviderError::kind`]: `unavailable`, `throttled`, `not_found`, …
    Error(&'static str),
}

/// One finished call through the guard.
#[derive(Debug, Clone)]
pub struct CallEvent<'a> {
    pub provider: &'a str,
    pub op: Op,
    pub outcome: Outcome,
    /// From the call's start to its end: attempts, pauses and waits for a rate token.
    pub latency: Duration,
    /// Attempts that reached the provider (0 when refused by the breaker or the bucket).
    pub attempts: u32,
}

pub trait Metrics: Send + Sync {
    fn call(&self, _event: &CallEvent<'_>) {}

    fn breaker(&self, _provider: &str, _state: BreakerState) {}

    /// A call waited `waited` for a rate token of `provider`'s bucket.
    fn rate_wait(&self, _provider: &str, _waited: std::time::Duration) {}
}

/// The default: records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {}
