//! OpenTelemetry over OTLP/gRPC: a trace per call (the RPC's server span, joined to the
//! caller's trace by its W3C `traceparent`, with child spans for the policy decision, each
//! provider call and the audit commit) and the call metrics, pushed to a collector.
//!
//! Spans come from `tracing` (target [`SPANS`]), bridged by `tracing-opentelemetry`; the log
//! output never shows them. Their attributes are operation, provider, outcome, request id,
//! principal and key *names*: never key material, plaintext, ciphertext or tokens.

use crate::config::TelemetryConfig;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `tracing` target of the spans made for OpenTelemetry only (kept out of the log).
pub const SPANS: &str = "keygate_spans";

/// The exporters, while the export runs; [`Otlp::shutdown`] flushes them.
pub struct Otlp {
    tracer: SdkTracerProvider,
    meters: SdkMeterProvider,
}

/// The metric instruments, once the export is on (see [`instruments`]).
#[derive(Clone)]
pub struct Instruments {
    pub calls: Counter<u64>,
    pub call_duration: Histogram<f64>,
    pub provider_calls: Counter<u64>,
    pub provider_call_duration: Histogram<f64>,
    pub audit_commit_duration: Histogram<f64>,
    pub audit_batch_size: Histogram<u64>,
    pub audit_queue_depth: Gauge<u64>,
    pub breaker_state: Gauge<i64>,
    pub rate_waits: Counter<u64>,
    pub rate_wait_seconds: Counter<f64>,
    pub rotation_due: Gauge<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// The share of calls without a (valid) caller's `traceparent` that start a trace, from
/// `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio` and their `parentbased_`
/// forms) and `OTEL_TRACES_SAMPLER_ARG`; 1 by default.
static ROOT_RATIO: OnceLock<f64> = OnceLock::new();
static ROOT_CALLS: AtomicU64 = AtomicU64::new(0);

fn root_ratio_from_env() -> f64 {
    let sampler = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    match sampler.trim().trim_start_matches("parentbased_") {
        "always_off" => 0.0,
        "traceidratio" => std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|arg| arg.trim().parse::<f64>().ok())
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .unwrap_or(1.0),
        _ => 1.0,
    }
}

/// Whether a call whose caller sent no trace context starts a trace: exactly the configured
/// share of such calls, spread evenly. Decided before any span exists, so a call that is not
/// traced creates none (the OpenTelemetry layer enables spans only below a traced RPC).
pub fn sample_root() -> bool {
    let ratio = *ROOT_RATIO.get().unwrap_or(&1.0);
    if ratio >= 1.0 {
        return true;
    }
    nth_sampled(ROOT_CALLS.fetch_add(1, Ordering::Relaxed), ratio)
}

/// Whether call `n` (counting from 0) is among the `ratio` share, spread evenly.
fn nth_sampled(n: u64, ratio: f64) -> bool {
    let n = n as f64;
    (n * ratio).floor() != ((n + 1.0) * ratio).floor()
}

/// The instruments, if the OTLP export is on; `None` costs the call path nothing.
pub fn instruments() -> Option<&'static Instruments> {
    INSTRUMENTS.get()
}

/// Whether calls get spans for OpenTelemetry (the export is on).
pub fn tracing_on() -> bool {
    INSTRUMENTS.get().is_some()
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether the configuration or the standard variables ask for the export.
fn wanted(config: &TelemetryConfig) -> bool {
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    config.otlp_endpoint.is_some()
        || [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ]
        .iter()
        .any(|v| env_set(v))
}

/// Starts the export if it is wanted: the tracer for [`layer`] and the metric instruments.
/// Runs inside the tokio runtime: the exporters are its tasks.
pub fn start(
    config: &TelemetryConfig,
) -> Result<Option<(Otlp, opentelemetry_sdk::trace::Tracer)>, String> {
    if !wanted(config) {
        return Ok(None);
    }
    let failed = |what: &str, e: &dyn std::fmt::Display| format!("telemetry: {what}: {e}");
    let mut spans = SpanExporter::builder().with_tonic();
    let mut metrics = MetricExporter::builder().with_tonic();
    if let Some(endpoint) = &config.otlp_endpoint {
        spans = spans.with_endpoint(endpoint.clone());
        metrics = metrics.with_endpoint(endpoint.clone());
    }
    let spans = spans
        .build()
        .map_err(|e| failed("the OTLP span exporter", &e))?;
    let metrics = metrics
        .build()
        .map_err(|e| failed("the OTLP metric exporter", &e))?;
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over keygate's defaults.
    let mut resource = Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("keygate");
    }
    let resource = resource
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let _ = ROOT_RATIO.set(root_ratio_from_env());
    // The sampling decision is keygate's (see `sample_root`): a span reaches the SDK only
    // inside a trace already decided, so the SDK samples everything it sees.
    let tracer_provider = SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_span_processor(BatchSpanProcessor::builder(spans, Tokio).build())
        .with_resource(resource.clone())
        .build();
    let meters = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics, Tokio).build())
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    keygate_provider::context::set_traceparent_source(current_traceparent);
    let meter = meters.meter("keygate");
    let seconds = |name: &'static str, description: &'static str| {
        meter
            .f64_histogram(name)
            .with_unit("s")
            .with_description(description)
            .with_boundaries(vec![
                0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0,
            ])
            .build()
    };
    let instruments = Instruments {
        calls: meter
            .u64_counter("keygate.calls")
            .with_description("gRPC calls run by the gateway, by operation, provider and outcome")
            .build(),
        call_duration: seconds(
            "keygate.call.duration",
            "Gateway call latency, from admission to the audited result",
        ),
        provider_calls: meter
            .u64_counter("keygate.provider.calls")
            .with_description("Calls to providers, by provider, operation and outcome")
            .build(),
        provider_call_duration: seconds(
            "keygate.provider.call.duration",
            "Provider call latency, retries and rate-limit waits included",
        ),
        audit_commit_duration: seconds(
            "keygate.audit.commit.duration",
            "Audit group commits: from the first event taken to durable",
        ),
        audit_batch_size: meter
            .u64_histogram("keygate.audit.batch.size")
            .with_description("Events per audit group commit")
            .build(),
        audit_queue_depth: meter
            .u64_gauge("keygate.audit.queue.depth")
            .with_description("Appends waiting for the audit writer when it took its last batch")
            .build(),
        breaker_state: meter
            .i64_gauge("keygate.provider.breaker.state")
            .with_description("A provider's circuit breaker: 0 closed, 1 half-open, 2 open")
            .build(),
        rate_waits: meter
            .u64_counter("keygate.provider.rate.waits")
            .with_description("Provider calls that waited for a rate token")
            .build(),
        rate_wait_seconds: meter
            .f64_counter("keygate.provider.rate.wait")
            .with_unit("s")
            .with_description("Time provider calls spent waiting for rate tokens")
            .build(),
        rotation_due: meter
            .u64_gauge("keygate.keys.rotation.due")
            .with_description(
                "Enabled keys past their crypto-period and not rotated, after the last scheduler scan",
            )
            .build(),
    };
    // A second start in one process (tests) keeps the first instruments.
    let _ = INSTRUMENTS.set(instruments);
    let tracer = tracer_provider.tracer("keygate");
    Ok(Some((
        Otlp {
            tracer: tracer_provider,
            meters,
        },
        tracer,
    )))
}

/// The W3C `traceparent` of the current span (a provider call's, inside the kit's guard).
fn current_traceparent() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            ids.trace_id(),
            ids.span_id(),
            ids.trace_flags().to_u8()
        )
    })
}

impl Otlp {
    /// Exports what is still buffered, within `bound`.
    pub async fn shutdown(self, bound: Duration) {
        let flush = tokio::task::spawn_blocking(move || {
            let traces = self.tracer.shutdown();
            let metrics = self.meters.shutdown();
            (traces, metrics)
        });
        match tokio::time::timeout(bound, flush).await {
            Ok(Ok((traces, metrics))) => {
                if let Err(e) = traces.and(metrics) {
                    tracing::warn!(error = %e, "the last telemetry export failed");
                }
            }
            _ => tracing::warn!("the last telemetry export did not finish in time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nth_sampled;

    #[test]
    fn the_root_share_is_exact_and_even() {
        let picked: Vec<u64> = (0..100).filter(|&n| nth_sampled(n, 0.1)).collect();
        assert_eq!(picked, [9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
        assert_eq!((0..1000).filter(|&n| nth_sampled(n, 0.25)).count(), 250);
        assert_eq!((0..1000).filter(|&n| nth_sampled(n, 0.0)).count(), 0);
    }
}
