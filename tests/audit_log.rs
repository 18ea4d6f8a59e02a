//! The audit log end to end: every call is an event, the chain verifies, tampering is found
//! and named, queries filter, and Tail streams events as they commit.

mod common;

use common::{ROOT_TOKEN, Server, create, events_for, request_id, verify_full};
use keygate::pb;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn chain_verifies_and_a_altered_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = Server::start(&data);
        let mut keys = server.root().await;
        keys.create_key(create("audited", "hmac-sha256", "alice"))
            .await
            .unwrap();
        for i in 0..20 {
            keys.generate_mac(pb::GenerateMacRequest {
                key: "audited".into(),
                message: vec![i],
            })
            .await
            .unwrap();
        }
        let mut audit = server.audit(ROOT_TOKEN).await;
        let report = audit
            .verify(pb::AuditVerifyRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(report.ok, "{report:?}");
        assert!(report.events_checked >= 21);
        // The CLI says the same.
        let out = server.cli().args(["audit", "verify"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("audit chain OK"));
    }
    // Alter one row directly in the database, as an intruder with file access would.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("keygate.db").display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE sequence = 7")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    // An old row is covered by a checkpoint: the full verification recomputes it.
    let server = Server::start(&data);
    let mut audit = server.audit(ROOT_TOKEN).await;
    let report = verify_full(&mut audit).await;
    assert!(!report.ok);
    assert_eq!(report.first_broken_sequence, 7, "{report:?}");
    assert!(report.reason.contains("event 7"), "{}", report.reason);
    let out = server
        .cli()
        .args(["audit", "verify", "--full"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN at event 7"));

    // Deleting a row is found too.
    drop(server);
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("keygate.db").display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET actor = 'root' WHERE sequence = 7")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE sequence = 12")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let server = Server::start(&data);
    let mut audit = server.audit(ROOT_TOKEN).await;
    let report = verify_full(&mut audit).await;
    assert_eq!(
        (report.ok, report.first_broken_sequence),
        (false, 12),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_one_event_with_its_facts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("facts", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    let reply = keys
        .encrypt(pb::EncryptRequest {
            key: "facts".into(),
            plaintext: b"secret-plaintext-xyz".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap();
    let id = request_id(&reply);
    let mut audit = server.audit(ROOT_TOKEN).await;
    let events = events_for(&mut audit, &id).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.actor.as_str(), e.action.as_str(), e.outcome.as_str()),
        ("root", "Encrypt", "ok")
    );
    assert_eq!((e.key_name.as_str(), e.key_version), ("facts", 1));
    assert!(
        e.client_address.starts_with("127.0.0.1:"),
        "{}",
        e.client_address
    );
    assert!(e.policy.starts_with("allow by"), "{}", e.policy);
    assert_eq!(e.hash.len(), 64);
    let all = audit
        .query(pb::AuditQueryRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let text = format!("{all:?}");
    assert!(
        !text.contains("secret-plaintext-xyz"),
        "plaintext in the audit log"
    );
    assert!(!text.contains(common::ROOT_TOKEN), "token in the audit log");

    // Filters: by key, actor, action, outcome, time; and paging.
    let by_key = audit
        .query(pb::AuditQueryRequest {
            key: "facts".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    // CreateKey's intent and outcome, then Encrypt's one event.
    assert!(by_key.iter().all(|e| e.key_name == "facts"), "{by_key:?}");
    let outcomes: Vec<(&str, &str)> = by_key
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("CreateKey", "intent"),
            ("CreateKey", "ok"),
            ("Encrypt", "ok")
        ]
    );
    assert!(
        by_key
            .iter()
            .all(|e| e.actor_kind == "user" && !e.caller_gone)
    );
    let creates = audit
        .query(pb::AuditQueryRequest {
            action: "CreateKey".into(),
            actor: "root".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0].request_id, creates[1].request_id);
    let future = keygate::time::to_timestamp(keygate::time::now_ms() + 3_600_000);
    let none = audit
        .query(pb::AuditQueryRequest {
            start_time: Some(future),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(none.is_empty());
    let page = audit
        .query(pb::AuditQueryRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), 1);
    let next = audit
        .query(pb::AuditQueryRequest {
            page_size: 1,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.events[0].sequence, page.events[0].sequence + 1);
    let json = server
        .cli()
        .args(["audit", "query", "--key", "facts", "--json"])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON Lines"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["action"], "Encrypt");
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_streams_committed_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("tailed", "hmac-sha256", "alice"))
        .await
        .unwrap();
    let mut audit = server.audit(ROOT_TOKEN).await;
    let mut stream = audit
        .tail(pb::AuditTailRequest {
            key: "tailed".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let reply = keys
        .generate_mac(pb::GenerateMacRequest {
            key: "tailed".into(),
            message: b"m".to_vec(),
        })
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("tail delivered nothing")
        .unwrap()
        .unwrap();
    assert_eq!(event.request_id, request_id(&reply));
    assert_eq!(event.action, "GenerateMac");
}

/// The WAL's checkpoint sequence number (WAL header bytes 12-16): SQLite increments it each
/// time the WAL starts over from its beginning.
fn wal_restarts(wal: &std::path::Path) -> u32 {
    let header = std::fs::read(wal).unwrap_or_default();
    header
        .get(12..16)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Under load that never pauses, checkpoints still let the WAL start over, again and again,
/// instead of holding every page ever written. A fixed amount of work, so the machine's speed
/// does not decide the outcome.
#[tokio::test(flavor = "multi_thread")]
async fn the_wal_starts_over_under_sustained_load() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let wal = data.join("keygate.db-wal");
    let before = wal_restarts(&wal);
    let bench = server
        .cli()
        .args([
            "bench",
            "--op",
            "mac",
            "--concurrency",
            "32",
            "--channels",
            "2",
        ])
        .args(["--requests", "30000", "--json"])
        .output()
        .unwrap();
    assert!(
        bench.status.success(),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    assert_eq!(report["ok"].as_u64(), Some(30_000), "{report}");
    let restarts = wal_restarts(&wal) - before;
    let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let (db, wal_bytes) = (size(&data.join("keygate.db")), size(&wal));
    // 30,000 events went through the WAL; had it never started over, it would hold them all.
    assert!(
        restarts >= 2,
        "the WAL started over {restarts} times during 30,000 calls (WAL {wal_bytes} bytes, database {db} bytes)"
    );
    // And it stays under the size at which SQLite truncates it after a checkpoint.
    assert!(wal_bytes <= 64 * 1024 * 1024, "WAL {wal_bytes} bytes");
}

/// Hash formats cannot be used to hide an edit: a row claiming the old format (whose hash does
/// not cover the newer fields), an unknown format, or a format-1 row with those fields set is
/// reported.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_hash_format_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = Server::start(&data);
        let mut keys = server.root().await;
        keys.create_key(create("formats", "hmac-sha256", "alice"))
            .await
            .unwrap();
    }
    let db_url = format!("sqlite://{}", data.join("keygate.db").display());
    for (tamper, says) in [
        (
            "UPDATE audit_events SET format = 1 WHERE sequence = 2",
            "format 1 after an event of format 3",
        ),
        (
            "UPDATE audit_events SET format = 9 WHERE sequence = 2",
            "format 9",
        ),
    ] {
        let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
        sqlx::query(tamper).execute(&db).await.unwrap();
        db.close().await;
        let server = Server::start(&data);
        let mut audit = server.audit(ROOT_TOKEN).await;
        let report = verify_full(&mut audit).await;
        assert!(!report.ok, "{tamper}: {report:?}");
        assert_eq!(report.first_broken_sequence, 2, "{report:?}");
        assert!(report.reason.contains(says), "{}", report.reason);
        drop(server);
        let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
        sqlx::query("UPDATE audit_events SET format = 3 WHERE sequence = 2")
            .execute(&db)
            .await
            .unwrap();
        db.close().await;
    }
    // A format-1 first event with a newer field set.
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    sqlx::query("UPDATE audit_events SET format = 1 WHERE sequence = 1")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let server = Server::start(&data);
    let mut audit = server.audit(ROOT_TOKEN).await;
    let report = verify_full(&mut audit).await;
    assert!(!report.ok);
    assert_eq!(report.first_broken_sequence, 1, "{report:?}");
    assert!(
        report
            .reason
            .contains("fields set that its format does not cover"),
        "{}",
        report.reason
    );
}

/// Export streams every matching event, as keygate's JSON Lines or as OCSF API Activity.
#[tokio::test(flavor = "multi_thread")]
async fn export_writes_json_lines_and_ocsf_api_activity() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("exported", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    for i in 0..3 {
        keys.encrypt(pb::EncryptRequest {
            key: "exported".into(),
            plaintext: vec![i; 8],
            associated_data: vec![],
        })
        .await
        .unwrap();
    }
    let lines = |out: &std::process::Output| -> Vec<serde_json::Value> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    };
    let jsonl = lines(
        &server
            .cli()
            .args(["audit", "export", "--key", "exported"])
            .output()
            .unwrap(),
    );
    // CreateKey's intent and outcome, three encryptions.
    assert_eq!(jsonl.len(), 5, "{jsonl:?}");
    assert!(jsonl.iter().all(|e| e["key_name"] == "exported"));
    assert_eq!(jsonl[4]["action"], "Encrypt");
    let file = dir.path().join("ocsf.jsonl");
    let out = server
        .cli()
        .args([
            "audit", "export", "--key", "exported", "--format", "ocsf", "--out",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ocsf: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ocsf.len(), 5);
    for (o, e) in ocsf.iter().zip(&jsonl) {
        assert_eq!(o["class_uid"], 6003);
        assert_eq!(o["category_uid"], 6);
        assert_eq!(o["metadata"]["sequence"], e["sequence"]);
        assert_eq!(o["api"]["operation"], e["action"]);
        assert_eq!(o["api"]["request"]["uid"], e["request_id"]);
        assert_eq!(o["resources"][0]["name"], "exported");
        assert_eq!(o["actor"]["user"]["name"], "root");
    }
    assert_eq!(ocsf[0]["activity_name"], "Create");
    assert_eq!(ocsf[4]["status"], "Success");
    assert_eq!(ocsf[4]["src_endpoint"]["ip"], "127.0.0.1");
    let bad = server
        .cli()
        .args(["audit", "export", "--format", "xml"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("jsonl or ocsf"));
}
