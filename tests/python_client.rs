//! A client generated in another language (Python, with grpcio-tools) reads each error's
//! `google.rpc.ErrorInfo` with grpcio-status, and the reason matches the audit event.
//! The interpreter comes from `KEYGATE_GRPC_PYTHON` (printed by
//! `tests/backends/install.sh python-grpc`).

mod common;

use common::{ROOT_TOKEN, Server, events_for};
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn python_reads_error_info_and_it_matches_the_audit_log() {
    let python = keygate_test_backends::process::find_program("KEYGATE_GRPC_PYTHON", "python3")
        .expect("a Python with grpcio (tests/backends/install.sh python-grpc)");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let stubs = dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(python)
        .arg(format!("{root}/tests/clients/python/error_details.py"))
        .arg(format!("{root}/proto"))
        .arg(&stubs)
        .arg(server.endpoint.trim_start_matches("http://"))
        .arg(ROOT_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let expected = [
        ("NOT_FOUND", "KEY_NOT_FOUND"),
        ("INVALID_ARGUMENT", "CIPHERTEXT_MALFORMED"),
        ("UNAUTHENTICATED", "TOKEN_MISSING"),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:?}");
    let mut audit = server.audit(ROOT_TOKEN).await;
    for (line, (code, reason)) in lines.iter().zip(expected) {
        assert_eq!(line["code"], code, "{line}");
        assert_eq!(line["reason"], reason, "{line}");
        assert_eq!(line["domain"], keygate::server::ERROR_DOMAIN, "{line}");
        let id = line["request_id"].as_str().unwrap_or_default();
        let events = events_for(&mut audit, id).await;
        assert_eq!(events.len(), 1, "{line} {events:?}");
        assert_eq!(events[0].error_reason, reason);
        assert_eq!(
            events[0].reason,
            line["message"].as_str().unwrap_or_default()
        );
    }
}
