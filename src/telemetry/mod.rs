//! What keygate counts about itself, and the Prometheus endpoint that exposes it
//! ([`endpoint`]). Built on `prometheus-client`, the Prometheus project's own Rust client: typed
//! label sets, no global registry, the OpenMetrics text format Prometheus scrapes.
//!
//! Labels carry only what the API already makes public: operation names, provider instance
//! names from the configuration, stable error reasons. Never a key name, principal or value.

mod audit;
pub mod endpoint;
pub mod gate;
pub mod otlp;
mod series;

pub use audit::AuditWriterMetrics;

use keygate_provider::kit::{BreakerState, CallEvent, Metrics, Outcome};
use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use series::Series;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: String,
    /// Empty for calls that reach no provider (ListKeys, audit reads, …).
    provider: String,
    /// `ok`, or the stable error reason (`POLICY_DENIED`, `KEY_NOT_FOUND`, …).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderCallLabels {
    provider: String,
    operation: String,
    /// `ok`, or the provider error's kind (`unavailable`, `throttled`, …).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 15))
}

/// Every counter and histogram keygate keeps; cheap enough to keep always, exposed only when
/// `[telemetry] prometheus_listen` is set.
pub struct Telemetry {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: Family<OperationLabels, Histogram, fn() -> Histogram>,
    provider_calls: Family<ProviderCallLabels, Counter>,
    provider_seconds: Family<ProviderLabels, Histogram, fn() -> Histogram>,
    breaker_open: Family<ProviderLabels, Gauge>,
    rate_waits: Family<ProviderLabels, Counter>,
    rate_wait_seconds: Family<ProviderLabels, Counter<f64, AtomicU64>>,
    rotation_due: Gauge,
    audit_writer: AuditWriterMetrics,
    /// The handles `call` records into, by operation, provider and outcome.
    call_handles: Series<CallHandles>,
    /// The handles a provider call records into, by provider, operation and outcome.
    provider_handles: Series<ProviderHandles>,
}

/// One gateway call's series: its counter, its operation's histogram, and the same labels as
/// OpenTelemetry attributes (built once; the SDK still looks them up, without copies).
struct CallHandles {
    calls: Counter,
    seconds: Histogram,
    otel_labels: [KeyValue; 3],
    otel_operation: [KeyValue; 1],
}

/// One provider call's series, as [`CallHandles`].
struct ProviderHandles {
    calls: Counter,
    seconds: Histogram,
    otel_labels: [KeyValue; 3],
    otel_provider: [KeyValue; 1],
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A provider's circuit breaker as last reported: closed, half-open or open.
    pub fn breaker_state(&self, provider: &str) -> &'static str {
        match self
            .breaker_open
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .get()
        {
            2 => "open",
            1 => "half-open",
            _ => "closed",
        }
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keygate");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "gRPC calls run by the gateway, by operation, provider and outcome",
            calls.clone(),
        );
        let call_seconds = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "call_duration_seconds",
            "Gateway call latency, from admission to the audited result, by operation",
            call_seconds.clone(),
        );
        let provider_calls = Family::<ProviderCallLabels, Counter>::default();
        registry.register(
            "provider_calls",
            "Calls to providers (retries included), by provider, operation and outcome",
            provider_calls.clone(),
        );
        let provider_seconds = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "provider_call_duration_seconds",
            "Provider call latency (retries and rate-limit waits included), by provider",
            provider_seconds.clone(),
        );
        let breaker_open = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "provider_breaker_state",
            "A provider's circuit breaker: 0 closed, 1 half-open, 2 open",
            breaker_open.clone(),
        );
        let rate_waits = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_rate_waits",
            "Provider calls that waited for a token of the provider's rate limit",
            rate_waits.clone(),
        );
        let rate_wait_seconds = Family::<ProviderLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "provider_rate_wait_seconds",
            "Time provider calls spent waiting for rate-limit tokens",
            rate_wait_seconds.clone(),
        );
        let rotation_due = Gauge::default();
        registry.register(
            "keys_rotation_due",
            "Enabled keys past their crypto-period and not rotated, after the last scheduler scan",
            rotation_due.clone(),
        );
        let audit_writer = AuditWriterMetrics::default();
        audit_writer.register(&mut registry);
        Self {
            registry,
            audit_writer,
            calls,
            call_seconds,
            provider_calls,
            provider_seconds,
            breaker_open,
            rate_waits,
            rate_wait_seconds,
            rotation_due,
            call_handles: Series::default(),
            provider_handles: Series::default(),
        }
    }

    /// The audit writer's figures, to hand to [`crate::audit::AuditOptions`].
    pub fn audit_writer(&self) -> AuditWriterMetrics {
        self.audit_writer.clone()
    }

    /// One gateway call, once its outcome is on record.
    pub fn call(&self, operation: &str, provider: &str, outcome: &str, elapsed: Duration) {
        let make = || CallHandles {
            calls: self
                .calls
                .get_or_create(&CallLabels {
                    operation: operation.to_owned(),
                    provider: provider.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .clone(),
            seconds: self
                .call_seconds
                .get_or_create(&OperationLabels {
                    operation: operation.to_owned(),
                })
                .clone(),
            otel_labels: [
                KeyValue::new("keygate.operation", operation.to_owned()),
                KeyValue::new("keygate.provider", provider.to_owned()),
                KeyValue::new("keygate.outcome", outcome.to_owned()),
            ],
            otel_operation: [KeyValue::new("keygate.operation", operation.to_owned())],
        };
        let seconds = elapsed.as_secs_f64();
        self.call_handles
            .with(&[operation, provider, outcome], make, |handles| {
                handles.calls.inc();
                handles.seconds.observe(seconds);
                if let Some(otel) = otlp::instruments() {
                    otel.calls.add(1, &handles.otel_labels);
                    otel.call_duration.record(seconds, &handles.otel_operation);
                }
            });
    }

    /// How many enabled keys are past their crypto-period and not rotated (the scheduler's
    /// count after each scan; rotations that keep failing show here).
    pub fn rotation_due(&self, keys: usize) {
        self.rotation_due
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
        if let Some(otel) = otlp::instruments() {
            otel.rotation_due
                .record(u64::try_from(keys).unwrap_or(u64::MAX), &[]);
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Metrics for Telemetry {
    fn call(&self, event: &CallEvent<'_>) {
        let outcome = match event.outcome {
            Outcome::Ok => "ok",
            Outcome::Error(kind) => kind,
        };
        let operation = event.op.as_str();
        let make = || ProviderHandles {
            calls: self
                .provider_calls
                .get_or_create(&ProviderCallLabels {
                    provider: event.provider.to_owned(),
                    operation: operation.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .clone(),
            seconds: self
                .provider_seconds
                .get_or_create(&ProviderLabels {
                    provider: event.provider.to_owned(),
                })
                .clone(),
            otel_labels: [
                KeyValue::new("keygate.provider", event.provider.to_owned()),
                KeyValue::new("keygate.operation", operation),
                KeyValue::new("keygate.outcome", outcome.to_owned()),
            ],
            otel_provider: [KeyValue::new("keygate.provider", event.provider.to_owned())],
        };
        let seconds = event.latency.as_secs_f64();
        self.provider_handles
            .with(&[event.provider, operation, outcome], make, |handles| {
                handles.calls.inc();
                handles.seconds.observe(seconds);
                if let Some(otel) = otlp::instruments() {
                    otel.provider_calls.add(1, &handles.otel_labels);
                    otel.provider_call_duration
                        .record(seconds, &handles.otel_provider);
                }
            });
    }

    fn breaker(&self, provider: &str, state: BreakerState) {
        let value = match state {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        };
        self.breaker_open
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .set(value);
        if let Some(otel) = otlp::instruments() {
            otel.breaker_state.record(
                value,
                &[KeyValue::new("keygate.provider", provider.to_owned())],
            );
        }
    }

    fn rate_wait(&self, provider: &str, waited: Duration) {
        let labels = ProviderLabels {
            provider: provider.to_owned(),
        };
        self.rate_waits.get_or_create(&labels).inc();
        self.rate_wait_seconds
            .get_or_create(&labels)
            .inc_by(waited.as_secs_f64());
        if let Some(otel) = otlp::instruments() {
            let provider = [KeyValue::new("keygate.provider", provider.to_owned())];
            otel.rate_waits.add(1, &provider);
            otel.rate_wait_seconds.add(waited.as_secs_f64(), &provider);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_waits_and_due_rotations_are_exposed() {
        let t = Telemetry::new();
        Metrics::rate_wait(&t, "aws", Duration::from_millis(250));
        Metrics::rate_wait(&t, "aws", Duration::from_millis(500));
        t.rotation_due(3);
        let text = t.encode().unwrap();
        assert!(
            text.contains(r#"keygate_provider_rate_waits_total{provider="aws"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keygate_provider_rate_wait_seconds_total{provider="aws"} 0.75"#),
            "{text}"
        );
        assert!(text.contains("keygate_keys_rotation_due 3"), "{text}");
    }

    #[test]
    fn calls_are_counted_by_their_labels() {
        let t = Telemetry::new();
        t.call("Encrypt", "local", "ok", Duration::from_millis(2));
        t.call("Encrypt", "local", "ok", Duration::from_millis(3));
        t.call(
            "Encrypt",
            "local",
            "POLICY_DENIED",
            Duration::from_millis(1),
        );
        let text = t.encode().unwrap();
        assert!(
            text.contains(
                r#"keygate_calls_total{operation="Encrypt",provider="local",outcome="ok"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"keygate_calls_total{operation="Encrypt",provider="local",outcome="POLICY_DENIED"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"keygate_call_duration_seconds_count{operation="Encrypt"} 3"#),
            "{text}"
        );
    }
}
