//! Issue 17: OpenTelemetry over OTLP/gRPC, received by a small collector built on the
//! protocol's own generated services. An Encrypt sent with a W3C `traceparent` is traced in
//! the caller's trace (the RPC's server span, with child spans for the policy decision, the
//! provider call and the audit commit), no attribute carries the plaintext, and the call
//! metrics arrive with the values driven.

mod common;

use common::{Server, ServerOptions, create};
use keygate::pb;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const UNSAMPLED_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PLAINTEXT: &[u8] = b"the otlp test's plaintext";
const ENCRYPTS: u64 = 3;

/// What the collector received: every span, and each metric export's metrics.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<Vec<Metric>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.spans.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let metrics = request
            .into_inner()
            .resource_metrics
            .into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics);
        self.metrics.lock().unwrap().extend(metrics);
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn start_collector() -> (Collector, String) {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(serving.clone()))
            .add_service(MetricsServiceServer::new(serving))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    (collector, format!("http://{address}"))
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(&kv.value))
}

/// Waits (bounded) until `done` holds for what the collector has.
async fn until<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = done() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the collector never received {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    request
}

/// The sum of the data points of counter `name` whose attributes include `with`.
fn counter(metrics: &[Metric], name: &str, with: &[(&str, &str)]) -> Option<i64> {
    // Cumulative temporality: the newest export holds the running total.
    let newest = metrics.iter().rev().find(|m| m.name == name)?;
    let Some(metric::Data::Sum(sum)) = &newest.data else {
        return None;
    };
    Some(
        sum.data_points
            .iter()
            .filter(|p| {
                with.iter()
                    .all(|(k, v)| attribute(&p.attributes, k).as_deref() == Some(*v))
            })
            .map(|p| match p.value {
                Some(number_data_point::Value::AsInt(i)) => i,
                _ => 0,
            })
            .sum(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypt_is_traced_in_the_callers_trace_and_counted() {
    let (collector, endpoint) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            env: vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
                // Export often, so the test waits little.
                ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
                ("OTEL_METRIC_EXPORT_INTERVAL".into(), "200".into()),
            ],
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    keys.create_key(create("otlp/key", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    let mut ciphertexts = Vec::new();
    for _ in 0..ENCRYPTS {
        let reply = keys
            .encrypt(traced(pb::EncryptRequest {
                key: "otlp/key".into(),
                plaintext: PLAINTEXT.to_vec(),
                associated_data: vec![],
            }))
            .await
            .unwrap();
        ciphertexts.push(reply.into_inner().ciphertext);
    }
    // A caller that decided not to sample its trace: keygate makes no span for the call.
    let mut unsampled = tonic::Request::new(pb::EncryptRequest {
        key: "otlp/key".into(),
        plaintext: PLAINTEXT.to_vec(),
        associated_data: vec![],
    });
    unsampled.metadata_mut().insert(
        "traceparent",
        format!("00-{UNSAMPLED_TRACE_ID}-{CALLER_SPAN}-00")
            .parse()
            .unwrap(),
    );
    keys.encrypt(unsampled).await.unwrap();
    let missing = keys
        .encrypt(traced(pb::EncryptRequest {
            key: "otlp/no-such-key".into(),
            plaintext: PLAINTEXT.to_vec(),
            associated_data: vec![],
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let trace_id = hex::decode(TRACE_ID).unwrap();
    let caller = hex::decode(CALLER_SPAN).unwrap();
    // Each Encrypt's server span, in the caller's trace, a child of the caller's span.
    let servers = until("the Encrypt server spans", || {
        let spans = collector.spans.lock().unwrap();
        let servers: Vec<Span> = spans
            .iter()
            .filter(|s| s.name == "keygate.v1.KeyService/Encrypt" && s.trace_id == trace_id)
            .cloned()
            .collect();
        (servers.len() as u64 == ENCRYPTS + 1).then_some(servers)
    })
    .await;
    for server_span in &servers {
        assert_eq!(server_span.parent_span_id, caller);
        // SPAN_KIND_SERVER.
        assert_eq!(server_span.kind, 2, "{server_span:?}");
        assert_eq!(
            attribute(&server_span.attributes, "rpc.system").as_deref(),
            Some("grpc")
        );
        assert_eq!(
            attribute(&server_span.attributes, "rpc.service").as_deref(),
            Some("keygate.v1.KeyService")
        );
        assert_eq!(
            attribute(&server_span.attributes, "rpc.method").as_deref(),
            Some("Encrypt")
        );
    }
    let codes: Vec<String> = servers
        .iter()
        .filter_map(|s| attribute(&s.attributes, "rpc.grpc.status_code"))
        .collect();
    assert_eq!(
        codes.iter().filter(|c| *c == "0").count() as u64,
        ENCRYPTS,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| *c == "5").count(),
        1,
        "NOT_FOUND: {codes:?}"
    );

    // Below one successful Encrypt's server span: the gateway's call, and within it the
    // policy decision, the provider call and the audit commit.
    let spans = until("the child spans", || {
        let spans = collector.spans.lock().unwrap().clone();
        let names: Vec<&str> = spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .map(|s| s.name.as_str())
            .collect();
        let all = ["call", "policy", "audit"]
            .iter()
            .all(|n| names.contains(n))
            && names.iter().any(|name| name.starts_with("local "));
        all.then_some(spans)
    })
    .await;
    let ok_server = servers
        .iter()
        .find(|s| attribute(&s.attributes, "rpc.grpc.status_code").as_deref() == Some("0"))
        .unwrap();
    let descends_from_server = |span: &Span| {
        let mut parent = span.parent_span_id.clone();
        for _ in 0..8 {
            if parent == ok_server.span_id {
                return true;
            }
            match spans.iter().find(|s| s.span_id == parent) {
                Some(up) => parent = up.parent_span_id.clone(),
                None => return false,
            }
        }
        false
    };
    let below: Vec<&Span> = spans.iter().filter(|s| descends_from_server(s)).collect();
    let names: Vec<&str> = below.iter().map(|s| s.name.as_str()).collect();
    for expected in ["call", "policy", "audit"] {
        assert!(
            names.contains(&expected),
            "{expected} under the server span: {names:?}"
        );
    }
    let provider = below
        .iter()
        .find(|s| s.name.starts_with("local "))
        .unwrap_or_else(|| panic!("a provider span under the server span: {names:?}"));
    // SPAN_KIND_CLIENT.
    assert_eq!(provider.kind, 3);
    assert_eq!(
        attribute(&provider.attributes, "keygate.provider").as_deref(),
        Some("local")
    );
    assert_eq!(
        attribute(&provider.attributes, "keygate.outcome").as_deref(),
        Some("ok")
    );

    // Nothing secret in any span: neither the plaintext nor a ciphertext, raw or encoded.
    let everything = format!("{spans:?}");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let plaintext_text = String::from_utf8_lossy(PLAINTEXT).to_string();
    assert!(!everything.contains(&plaintext_text));
    assert!(!everything.contains(&b64.encode(PLAINTEXT)));
    for ciphertext in &ciphertexts {
        assert!(!everything.contains(&b64.encode(ciphertext)));
        assert!(!everything.contains(&hex::encode(ciphertext)));
    }

    // Exported after the sampled calls' spans (same batches or earlier ones), so by now
    // the unsampled call's would be here.
    let unsampled_id = hex::decode(UNSAMPLED_TRACE_ID).unwrap();
    assert!(
        !spans.iter().any(|s| s.trace_id == unsampled_id),
        "no span for a call whose caller did not sample it"
    );

    // The call metrics, with the values driven.
    until("keygate.calls for the Encrypts", || {
        let metrics = collector.metrics.lock().unwrap();
        let ok = counter(
            &metrics,
            "keygate.calls",
            &[
                ("keygate.operation", "Encrypt"),
                ("keygate.provider", "local"),
                ("keygate.outcome", "ok"),
            ],
        )?;
        let not_found = counter(
            &metrics,
            "keygate.calls",
            &[
                ("keygate.operation", "Encrypt"),
                ("keygate.outcome", "KEY_NOT_FOUND"),
            ],
        )?;
        // The unsampled call is counted too: metrics do not depend on tracing.
        (ok == ENCRYPTS as i64 + 1 && not_found == 1).then_some(())
    })
    .await;
    let metrics = collector.metrics.lock().unwrap().clone();
    let durations = metrics
        .iter()
        .rev()
        .find(|m| m.name == "keygate.call.duration")
        .expect("the call latency histogram");
    assert_eq!(durations.unit, "s");
    let Some(metric::Data::Histogram(histogram)) = &durations.data else {
        panic!("keygate.call.duration is a histogram: {durations:?}");
    };
    let encrypts: u64 = histogram
        .data_points
        .iter()
        .filter(|p| attribute(&p.attributes, "keygate.operation").as_deref() == Some("Encrypt"))
        .map(|p| p.count)
        .sum();
    assert_eq!(encrypts, ENCRYPTS + 2);
    for name in [
        "keygate.provider.calls",
        "keygate.provider.call.duration",
        "keygate.audit.commit.duration",
        "keygate.audit.batch.size",
        "keygate.audit.queue.depth",
    ] {
        assert!(
            metrics.iter().any(|m| m.name == name),
            "{name} exported: {:?}",
            metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
        );
    }
}

/// The trace continues into Vault: the provider call sends its own span as `traceparent`,
/// and OpenBao's audit log records it (keygate registers the header for auditing).
#[tokio::test(flavor = "multi_thread")]
async fn the_trace_continues_into_vault() {
    use keygate_test_backends::openbao::OpenBao;
    let bao = OpenBao::start().unwrap_or_else(|e| panic!("cannot start OpenBao: {e}"));
    let (collector, endpoint) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.vault]\nkind = \"vault\"\naddress = \"{}\"\nmount = \"transit\"\n\
             auth = {{ method = \"token\", token = {{ env = \"OTLP_TEST_VAULT_TOKEN\" }} }}\n",
            bao.addr()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![
                ("OTLP_TEST_VAULT_TOKEN".into(), bao.token().into()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
                ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
            ],
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    let mut request = create("otlp/vault-key", "aes-256-gcm", "alice");
    request.provider = "vault".into();
    keys.create_key(request).await.unwrap();
    keys.encrypt(traced(pb::EncryptRequest {
        key: "otlp/vault-key".into(),
        plaintext: PLAINTEXT.to_vec(),
        associated_data: vec![],
    }))
    .await
    .unwrap();

    let trace_id = hex::decode(TRACE_ID).unwrap();
    let provider_span = until("the Vault provider span", || {
        collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.trace_id == trace_id && s.name == "vault encrypt")
            .cloned()
    })
    .await;
    let expected = format!("00-{TRACE_ID}-{}-01", hex::encode(&provider_span.span_id));
    // OpenBao writes the request's audit record before it answers.
    let log = std::fs::read_to_string(bao.audit_log_path()).unwrap();
    let sent: Vec<String> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["type"] == "request")
        .filter_map(|record| {
            record["request"]["headers"]["traceparent"][0]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(
        sent.contains(&expected),
        "OpenBao's audit log has the provider span's traceparent {expected}: {sent:?}"
    );
}
