//! The Prometheus endpoint, scraped by a real Prometheus (Debian's package; tests/run.sh
//! installs it): after N Encrypt calls its query API reports keygate's call counter at N for
//! Encrypt/ok, refusals under their reason, the latency histogram's count, and the provider
//! call metrics; no key name appears in any label.

mod common;

use common::{Server, ServerOptions, create};
use keygate::pb;
use keygate_test_backends::process::{ChildGuard, find_program, free_port};
use std::process::Command;
use std::time::{Duration, Instant};

const CALLS: usize = 37;
const REFUSED: usize = 3;

/// The value of a PromQL query's single series, once Prometheus has one.
async fn query(http: &reqwest::Client, prometheus: &str, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let response = http
        .get(format!("{prometheus}/api/v1/query?query={encoded}"))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
    let results = body["data"]["result"].as_array()?;
    let [series] = results.as_slice() else {
        return None;
    };
    series["value"][1].as_str()?.parse().ok()
}

/// Polls a query until it returns `expected`; panics with the last value after a generous
/// deadline (scrapes happen every second; the deadline is for slow machines).
async fn wait_for(http: &reqwest::Client, prometheus: &str, promql: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = None;
    while Instant::now() < deadline {
        last = query(http, prometheus, promql).await;
        if last == Some(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{promql}: expected {expected}, Prometheus last answered {last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_the_call_counters() {
    let binary = find_program("KEYGATE_PROMETHEUS", "prometheus").expect("prometheus");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            env: vec![(
                "KEYGATE_TELEMETRY__PROMETHEUS_LISTEN".into(),
                "127.0.0.1:0".into(),
            )],
            ..Default::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics_url = loop {
        if let Some(line) = server
            .output()
            .lines()
            .find_map(|l| l.strip_prefix("prometheus metrics on "))
        {
            break line.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no metrics address:\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let target = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();

    let mut keys = server.root().await;
    keys.create_key(create("payments/secret-name", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    for _ in 0..CALLS {
        keys.encrypt(pb::EncryptRequest {
            key: "payments/secret-name".into(),
            plaintext: b"counted".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap();
    }
    for _ in 0..REFUSED {
        keys.encrypt(pb::EncryptRequest {
            key: "missing/other-name".into(),
            plaintext: b"refused".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap_err();
    }

    let port = free_port().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: keygate\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let _prometheus =
        ChildGuard::spawn(cmd, &dir.path().join("prometheus.log")).expect("start prometheus");
    let prometheus = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    wait_for(
        &http,
        &prometheus,
        r#"keygate_calls_total{job="keygate",operation="Encrypt",provider="local",outcome="ok"}"#,
        CALLS as f64,
    )
    .await;
    wait_for(
        &http,
        &prometheus,
        r#"keygate_calls_total{job="keygate",operation="Encrypt",outcome="KEY_NOT_FOUND"}"#,
        REFUSED as f64,
    )
    .await;
    wait_for(
        &http,
        &prometheus,
        r#"keygate_call_duration_seconds_count{job="keygate",operation="Encrypt"}"#,
        (CALLS + REFUSED) as f64,
    )
    .await;
    // Every Encrypt reached the local provider once.
    wait_for(
        &http,
        &prometheus,
        r#"sum(keygate_provider_calls_total{job="keygate",provider="local",operation="encrypt",outcome="ok"})"#,
        CALLS as f64,
    )
    .await;

    // The audit writer: every call's event went through a group commit (the calls came one
    // at a time, so at least one commit each), each with its duration; the queue is watched.
    let calls = CALLS + REFUSED;
    for promql in [
        format!(r#"keygate_audit_commit_events_sum{{job="keygate"}} >= bool {calls}"#),
        format!(r#"keygate_audit_commit_events_count{{job="keygate"}} >= bool {calls}"#),
        format!(r#"keygate_audit_commit_duration_seconds_count{{job="keygate"}} >= bool {calls}"#),
        r#"count(keygate_audit_queue_depth{job="keygate"})"#.to_string(),
        r#"keygate_audit_commit_failures_total{job="keygate"} == bool 0"#.to_string(),
    ] {
        wait_for(&http, &prometheus, &promql, 1.0).await;
    }

    // Labels carry operations, providers and reasons, never a key name.
    let text = http
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("keygate_calls_total"), "{text}");
    assert!(!text.contains("secret-name"), "{text}");
    assert!(!text.contains("other-name"), "{text}");
}
