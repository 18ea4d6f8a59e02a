//! `[telemetry]`: what keygate exposes about itself for monitoring.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address of a Prometheus scrape endpoint (`GET /metrics`), e.g. `127.0.0.1:9464`; unset:
    /// no endpoint. Plain HTTP: keep it on loopback or a monitoring network.
    pub prometheus_listen: Option<String>,
    /// OTLP/gRPC collector for traces and metrics, e.g. `http://otel-collector:4317`. Unset:
    /// the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_…`/`…_METRICS_…`) variables
    /// turn the export on; with neither, nothing is exported. `OTEL_SDK_DISABLED=true` turns
    /// it off whatever is set.
    pub otlp_endpoint: Option<String>,
}
