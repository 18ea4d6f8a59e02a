//! kill -9 under load: every call that returned OK has its audit event after a restart.

mod common;

use common::{ROOT_TOKEN, Server};
use keygate::pb;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_calls_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let ids_file = dir.path().join("ok-ids.txt");
    let bench = Command::new(common::keygate_bin())
        .args([
            "bench",
            "--op",
            "encrypt",
            "--concurrency",
            "32",
            "--requests",
            "20000",
            "--channels",
            "2",
        ])
        .arg("--record-ok")
        .arg(&ids_file)
        .env("KEYGATE_ENDPOINT", &server.endpoint)
        .env("KEYGATE_TOKEN", ROOT_TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it mid-load: once at least 1000 events are committed (more keep arriving).
    let mut audit = server.audit(ROOT_TOKEN).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let later = audit
            .query(pb::AuditQueryRequest {
                page_size: 1,
                after_sequence: 1000,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().events)
            .unwrap_or_default();
        if !later.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the load never reached 1000 calls"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    let out = tokio::task::spawn_blocking(move || bench.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<String> = std::fs::read_to_string(&ids_file)
        .unwrap_or_else(|e| {
            panic!(
                "bench wrote no ids ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        ids.len() > 50,
        "too few calls before the kill: {}",
        ids.len()
    );

    let server = Server::start(&data);
    let mut audit = server.audit(ROOT_TOKEN).await;
    let found: std::collections::HashSet<String> = common::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            action: "Encrypt".into(),
            outcome: "ok".into(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|e| e.request_id)
    .collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !found.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged calls have no audit event, e.g. {:?}",
        missing.len(),
        ids.len(),
        missing.first()
    );
    let report = audit
        .verify(pb::AuditVerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(report.ok, "{report:?}");
}
