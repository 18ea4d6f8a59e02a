//! The compliance report end to end, through gRPC and the CLI: keys in the local provider,
//! SoftHSM2, OpenBao and LocalStack (and some created straight in the backends), a rotation, a
//! destruction released by two approvers and carried out, an overdue key and open findings;
//! each section's status and evidence is checked against that setup, the HTML escapes what
//! callers wrote, the JSON parses and the PDF renders to page images (`pdftoppm`). A plain
//! service is refused, and the refusal is audited.
//!
//! Needs SoftHSM2, OpenBao, LocalStack and poppler-utils (`tests/run.sh compliance` installs
//! them).

mod common;

use common::backends::Backends;
use common::team::{self, create_in, opened};
use common::{events_for, request_id, status_request_id};
use keygate::pb;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-compliance";
/// Written by a caller (a finding's acknowledgement): must reach a page as text, never markup.
const HOSTILE: &str = "<script>alert('kg')</script>";

const SECTIONS: [&str; 8] = [
    "pci-dss-3.5-3.6-lifecycle",
    "nist-800-57-crypto-periods",
    "split-knowledge",
    "separation-of-duties",
    "destruction-evidence",
    "hsm-generation",
    "audit-integrity",
    "open-findings",
];

/// The backends as providers, short lifecycle floors, the rotation and destruction scheduler
/// every `scheduler`, no background posture scan (scans run on demand).
fn config(b: &Backends, scheduler: &str) -> String {
    format!(
        "{}\n[lifecycle]\nmin_crypto_period = \"1s\"\nmin_destruction_window = \"1s\"\nscan_interval = \"{scheduler}\"\n\n[posture]\nscan_interval = \"0s\"\n",
        b.providers_config()
    )
}

/// A prod key owned by `svc-pay` in `provider`, labelled `usage=USAGE` if given.
fn key(name: &str, algorithm: &str, provider: &str, usage: Option<&str>) -> pb::CreateKeyRequest {
    let mut request = create_in(name, algorithm, "svc-pay", "prod");
    request.provider = provider.into();
    if let Some(usage) = usage {
        request.labels.insert("usage".into(), usage.into());
    }
    request
}

async fn wait_destroyed(server: &common::Server, name: &str) {
    let mut keys = server.keys_as("dave").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = keys
            .get_key(pb::GetKeyRequest {
                key: name.into(),
                usage: false,
            })
            .await
            .unwrap()
            .into_inner()
            .state;
        if state == "destroyed" {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never destroyed: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn section<'a>(r: &'a pb::ComplianceReport, id: &str) -> &'a pb::ComplianceSection {
    r.sections
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no section {id}"))
}

fn table<'a>(s: &'a pb::ComplianceSection, title: &str) -> &'a pb::EvidenceTable {
    s.evidence
        .iter()
        .find(|t| t.title.starts_with(title))
        .unwrap_or_else(|| panic!("section {} has no table {title}", s.id))
}

/// The rows of `t` whose `column` is `value`.
fn rows<'a>(t: &'a pb::EvidenceTable, column: &str, value: &str) -> Vec<&'a [String]> {
    let i = t
        .columns
        .iter()
        .position(|c| c == column)
        .unwrap_or_else(|| panic!("table {} has no column {column}", t.title));
    t.rows
        .iter()
        .filter(|r| r.cells[i] == value)
        .map(|r| r.cells.as_slice())
        .collect()
}

fn cell<'a>(t: &pb::EvidenceTable, row: &'a [String], column: &str) -> &'a str {
    let i = t.columns.iter().position(|c| c == column).unwrap();
    &row[i]
}

fn cli_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_maps_each_requirement_to_the_evidence_keygate_holds() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backends::start(TOKEN).await;

    // First, with the scheduler running: keys in every backend, a rotation, and a destruction
    // that two approvers release and the scheduler carries out.
    let server = team::start_with_env(dir.path(), &config(&b, "200ms"), b.env());
    let mut alice = server.keys_as("alice").await;
    for request in [
        key("prod/ledger", "aes-256-gcm", "local", None),
        key("prod/vault-dek", "aes-256-gcm", "vault", None),
        key("prod/ca-root", "ecdsa-p256", "hsm", Some("ca")),
        key("prod/card-pin", "aes-256-gcm", "aws", Some("payment")),
        key("prod/retired", "aes-256-gcm", "local", None),
    ] {
        let name = request.name.clone();
        alice
            .create_key(request)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    common::rotate(&mut alice, "prod/ledger").await;
    let approval = opened(
        alice
            .schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
                family: false,
                key: "prod/retired".into(),
                pending_window: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
            })
            .await
            .unwrap_err(),
    );
    for approver in ["erin", "frank"] {
        server
            .approvals_as(approver)
            .await
            .approve(pb::ApproveRequest {
                id: approval.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{approver} approves: {e}"));
    }
    wait_destroyed(&server, "prod/retired").await;
    // A graceful stop signs a checkpoint of the audit chain.
    let mut server = server;
    server.stop_gracefully();
    drop(server);

    // Then without the scheduler (it would rotate the overdue key): a key past its
    // crypto-period, keys made straight in the backends, a scan, an acknowledged finding.
    let server = team::start_with_env(dir.path(), &config(&b, "24h"), b.env());
    let mut alice = server.keys_as("alice").await;
    let mut short = key("prod/short", "aes-256-gcm", "local", None);
    short.crypto_period = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    alice.create_key(short).await.unwrap();
    b.bao(
        "POST",
        "/v1/transit/keys/stray-vault",
        Some(r#"{"type":"aes256-gcm96"}"#),
    );
    b.kms()
        .create_key()
        .send()
        .await
        .expect("a key straight in LocalStack");
    b.hsm.stray_key("stray-hsm");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut sam = server.posture_as("sam").await;
    let scan = sam
        .run_scan(pb::RunScanRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(scan.listings.iter().all(|l| l.error.is_empty()), "{scan:?}");
    assert_eq!(scan.unmanaged, 3, "{scan:?}");
    let hsm_finding = sam
        .list_findings(pb::ListFindingsRequest {
            rule: "unmanaged-key".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .findings
        .into_iter()
        .find(|f| f.provider_uri.contains("stray-hsm"))
        .expect("the HSM stray's finding");
    sam.acknowledge_finding(pb::AcknowledgeFindingRequest {
        id: hsm_finding.id,
        reason: HOSTILE.into(),
    })
    .await
    .unwrap();

    // The report over gRPC, as an auditor; the call is audited.
    let answer = server
        .posture_as("dave")
        .await
        .get_compliance_report(pb::GetComplianceReportRequest {})
        .await
        .unwrap();
    let call = request_id(&answer);
    let report = answer.into_inner();
    let ids: Vec<&str> = report.sections.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, SECTIONS);
    assert_eq!(report.generated_by, "dave");
    for s in &report.sections {
        eprintln!("{}: {} ({})", s.id, s.status, s.verdict);
    }
    let mut audit = server.audit_as("dave").await;
    let events = events_for(&mut audit, &call).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "ComplianceReport" && e.outcome == "ok" && e.actor == "dave"),
        "{events:?}"
    );

    // The lifecycle: every backend's keys counted; the strays are outside it.
    let s = section(&report, "pci-dss-3.5-3.6-lifecycle");
    assert_eq!(s.status, "partial", "{}", s.verdict);
    assert!(
        s.verdict.contains("3 keys in the backends"),
        "{}",
        s.verdict
    );
    let per_provider = table(s, "Keys per provider");
    for (provider, kind) in [
        ("local", "local"),
        ("hsm", "pkcs11"),
        ("vault", "vault"),
        ("aws", "aws-kms"),
    ] {
        let found = rows(per_provider, "provider", provider);
        assert!(!found.is_empty(), "{provider}: {per_provider:?}");
        assert_eq!(cell(per_provider, found[0], "kind"), kind);
    }
    let outside = table(s, "Keys the backends hold outside");
    assert_eq!(outside.rows.len(), 3, "{outside:?}");
    assert!(
        outside
            .rows
            .iter()
            .any(|r| r.cells[1].contains("stray-vault"))
    );

    // Crypto-periods: the short key is overdue and named; the rotation is on record.
    let s = section(&report, "nist-800-57-crypto-periods");
    assert_eq!(s.status, "not_met", "{}", s.verdict);
    assert!(s.verdict.contains("prod/short"), "{}", s.verdict);
    assert!(!s.verdict.contains("prod/ledger"), "{}", s.verdict);
    assert_eq!(
        rows(table(s, "Rotation history"), "key", "prod/ledger").len(),
        2
    );

    // Split knowledge: the destruction waited for two approvers other than its requester.
    let s = section(&report, "split-knowledge");
    assert_eq!(s.status, "met", "{}", s.verdict);
    let requests = table(s, "Approval requests");
    let request = rows(requests, "request", &approval);
    assert_eq!(request.len(), 1, "{requests:?}");
    assert_eq!(cell(requests, request[0], "requester"), "alice");
    let approvers = cell(requests, request[0], "approvers");
    assert!(
        approvers.contains("erin") && approvers.contains("frank"),
        "{approvers}"
    );
    assert_eq!(cell(requests, request[0], "state"), "executed");

    let s = section(&report, "separation-of-duties");
    assert_eq!(s.status, "met", "{}", s.verdict);
    assert!(!table(s, "Separation-of-duties policies").rows.is_empty());
    assert_eq!(rows(table(s, "Principals"), "principal", "sam").len(), 1);

    // Destruction: the record names who asked, who approved and how.
    let s = section(&report, "destruction-evidence");
    assert_eq!(s.status, "met", "{}", s.verdict);
    let records = table(s, "Destruction records");
    let record = rows(records, "key", "prod/retired");
    assert_eq!(record.len(), 1, "{records:?}");
    assert_eq!(cell(records, record[0], "requested by"), "alice");
    assert_eq!(cell(records, record[0], "state"), "destroyed");
    assert!(cell(records, record[0], "approved by").contains("erin"));
    assert!(!cell(records, record[0], "method").is_empty());

    // HSM generation: the CA key is in the HSM; the payment key in LocalStack is named.
    let s = section(&report, "hsm-generation");
    assert_eq!(s.status, "not_met", "{}", s.verdict);
    assert!(s.verdict.contains("prod/card-pin"), "{}", s.verdict);
    let scope = table(s, "CA and payment keys");
    assert_eq!(scope.rows.len(), 2, "{scope:?}");
    let ca = rows(scope, "key", "prod/ca-root");
    assert_eq!(cell(scope, ca[0], "generated in"), "HSM (pkcs11)");

    // The audit chain holds and a signed checkpoint anchors it.
    let s = section(&report, "audit-integrity");
    assert_eq!(s.status, "met", "{}", s.verdict);
    let checkpoints = table(s, "Signed checkpoints");
    assert!(!checkpoints.rows.is_empty());
    assert!(checkpoints.rows.iter().all(|r| r.cells[6].len() > 64));

    // Findings: the unacknowledged strays (high) and the overdue key keep it not met.
    let s = section(&report, "open-findings");
    assert_eq!(s.status, "not_met", "{}", s.verdict);
    let open = table(s, "Open findings");
    assert!(open.rows.iter().any(|r| r.cells[5].contains(HOSTILE)));

    cli_renderings(&server, &report, dir.path());

    // A service using keys may not read the report; the refusal is audited.
    let refused = server
        .posture_as("svc-pay")
        .await
        .get_compliance_report(pb::GetComplianceReportRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let events = events_for(&mut audit, &status_request_id(&refused)).await;
    assert!(
        events.iter().any(|e| e.action == "ComplianceReport"
            && e.outcome == "denied"
            && e.actor == "svc-pay"),
        "{events:?}"
    );
}

/// The CLI's JSON, HTML and PDF of the same report.
fn cli_renderings(server: &common::Server, report: &pb::ComplianceReport, dir: &Path) {
    let out = server.cli_as("sam", &["report", "compliance", "--format", "json"]);
    cli_ok(&out, "report as JSON");
    let json: Value = serde_json::from_slice(&out.stdout).expect("the JSON report parses");
    let sections = json["sections"].as_array().expect("sections");
    assert_eq!(sections.len(), SECTIONS.len());
    for (s, expected) in sections.iter().zip(&report.sections) {
        assert_eq!(s["id"], expected.id.as_str());
        assert_eq!(s["status"], expected.status.as_str());
        assert!(s["evidence"].as_array().is_some_and(|e| !e.is_empty()));
    }

    let html_path = dir.join("report.html");
    let out = server.cli_as(
        "alice",
        &[
            "report",
            "compliance",
            "--format",
            "html",
            "--out",
            html_path.to_str().unwrap(),
        ],
    );
    cli_ok(&out, "report as HTML");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for s in &report.sections {
        assert!(
            html.contains(&format!("id=\"{}\"", s.id)),
            "{} missing",
            s.id
        );
    }
    assert!(
        !html.contains(HOSTILE),
        "the acknowledgement reached the page as markup"
    );
    assert!(html.contains("&lt;script&gt;alert(&#39;kg&#39;)&lt;/script&gt;"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing is fetched"
    );

    // A PDF is never written to a terminal (`script` gives the CLI one), and nothing is asked
    // of the gateway for it.
    let keygate = common::keygate_bin();
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{keygate} report compliance --format pdf"),
            "/dev/null",
        ])
        .env("KEYGATE_ENDPOINT", &server.endpoint)
        .env("KEYGATE_TOKEN", team::token("dave"))
        .output()
        .expect("script (util-linux)");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("--out FILE"), "{said}");
    assert!(!said.contains("%PDF"), "{said}");

    let pdf_path = dir.join("report.pdf");
    let out = server.cli_as(
        "dave",
        &[
            "report",
            "compliance",
            "--format",
            "pdf",
            "--out",
            pdf_path.to_str().unwrap(),
        ],
    );
    cli_ok(&out, "report as PDF");
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 sections"));
    let pdf = std::fs::read(&pdf_path).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let pages = dir.join("page");
    let status = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "60"])
        .arg(&pdf_path)
        .arg(&pages)
        .status()
        .expect("pdftoppm (poppler-utils) is required: tests/run.sh installs it");
    assert!(status.success(), "pdftoppm could not read the PDF");
    let mut images: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    images.sort();
    assert!(!images.is_empty(), "no page image");
    eprintln!("PDF: {} pages", images.len());
    // A page of text and tables, not a blank one (a blank A4 page at 60 dpi is ~1 KB).
    let first = std::fs::metadata(&images[0]).unwrap().len();
    assert!(first > 5_000, "the first page image is {first} bytes");
}
