//! Clients in Python. A client generated with grpcio-tools reads each error's
//! `google.rpc.ErrorInfo` with grpcio-status, and the reason matches the audit event; the
//! `clients/python` package, its stubs built by its build script, runs the README's tour,
//! over plain HTTP/2 and over mutual TLS.
//! The interpreter comes from `KEYGATE_GRPC_PYTHON` (printed by
//! `tests/backends/install.sh python-grpc`).

mod common;

use common::pki::{mtls_section, pki};
use common::{ROOT_TOKEN, Server, events_for, start_with_config};
use std::process::Command;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python");

fn python() -> std::path::PathBuf {
    keygate_test_backends::process::find_program("KEYGATE_GRPC_PYTHON", "python3")
        .expect("a Python with grpcio (tests/backends/install.sh python-grpc)")
}

/// The `clients/python` package with its stubs freshly built by its build script: the
/// PYTHONPATH to run Python with. The new stubs come first, so a copy built into the
/// package's `src/` by hand cannot stand in for them.
fn build_client(dir: &std::path::Path) -> std::ffi::OsString {
    let stubs = dir.join("stubs");
    let built = Command::new(python())
        .arg(format!("{CLIENT}/build.py"))
        .arg("--out")
        .arg(&stubs)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    std::env::join_paths([stubs, format!("{CLIENT}/src").into()]).unwrap()
}

/// The JSON object on each line of a Python script's output, once it has exited 0.
fn json_lines(out: std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_reads_error_info_and_it_matches_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let root = env!("CARGO_MANIFEST_DIR");
    let lines = json_lines(
        Command::new(python())
            .arg(format!("{root}/tests/clients/python/error_details.py"))
            .arg(server.endpoint.trim_start_matches("http://"))
            .arg(ROOT_TOKEN)
            .env("PYTHONPATH", build_client(dir.path()))
            .output()
            .unwrap(),
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn the_python_package_runs_the_tour_and_each_step_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let path = build_client(dir.path());
    let tour = |prefix: &str| {
        Command::new(python())
            .arg(format!("{CLIENT}/examples/tour.py"))
            .args(["--json", "--prefix", prefix])
            .env("PYTHONPATH", &path)
            .env("KEYGATE_ENDPOINT", &server.endpoint)
            .env("KEYGATE_TOKEN", ROOT_TOKEN)
            .output()
            .unwrap()
    };
    let steps = json_lines(tour(""));
    let expected = [
        ("create-key", "CreateKey"),
        ("encrypt", "Encrypt"),
        ("decrypt", "Decrypt"),
        ("rotate-key", "RotateKey"),
        ("decrypt", "Decrypt"),
        ("show-key", "GetKey"),
        ("create-key", "CreateKey"),
        ("sign", "Sign"),
        ("verify", "Verify"),
        ("verify", "Verify"),
        ("public-key", "GetPublicKey"),
        ("data-key", "GenerateDataKey"),
        ("list-keys", "ListKeys"),
        ("audit-query", "AuditQuery"),
        ("audit-verify", "AuditVerify"),
    ];
    assert_eq!(steps.len(), expected.len(), "{steps:?}");
    let decrypts: Vec<_> = steps.iter().filter(|s| s["step"] == "decrypt").collect();
    assert!(
        decrypts
            .iter()
            .all(|s| s["matched"] == true && s["key_version"] == 1)
    );
    assert_eq!(steps[3]["primary_version"], 2);
    assert_eq!(steps[8]["valid"], true);
    assert_eq!(steps[9]["valid"], false);
    assert_eq!(steps[14]["ok"], true);
    let mut audit = server.audit(ROOT_TOKEN).await;
    for (step, (name, action)) in steps.iter().zip(expected) {
        assert_eq!(step["step"], name, "{step}");
        let id = step["request_id"].as_str().unwrap_or_default();
        let events = events_for(&mut audit, id).await;
        assert!(!events.is_empty(), "no audit event for {step}");
        assert!(
            events
                .iter()
                .all(|e| e.action == action && e.actor == "root"),
            "{step} {events:?}"
        );
        assert_eq!(events.last().unwrap().outcome, "ok", "{step} {events:?}");
    }

    // A failing step ends the tour with a non-zero status naming the error's reason.
    let again = tour("");
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("ALREADY_EXISTS KEY_EXISTS") && err.contains("request "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_package_connects_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let server = start_with_config(dir.path(), &mtls_section(dir.path(), &pki), vec![]);
    let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
    std::fs::write(&cert, &pki.client.0).unwrap();
    std::fs::write(&key, &pki.client.1).unwrap();
    let path = build_client(dir.path());
    let tour = |client_files: &[&std::path::Path]| {
        let mut cmd = Command::new(python());
        cmd.arg(format!("{CLIENT}/examples/tour.py"))
            .args(["--endpoint", &server.endpoint, "--token", ROOT_TOKEN])
            .arg("--ca-file")
            .arg(dir.path().join("ca.pem"))
            .env("PYTHONPATH", &path);
        if let [cert, key] = client_files {
            cmd.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
        }
        cmd.output().unwrap()
    };
    let out = tour(&[&cert, &key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("round trip matched"), "{text}");

    // Without a client certificate the gateway does not serve it, and the tour says so.
    let refused = tour(&[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("tour: UNAVAILABLE"), "{err}");
}
