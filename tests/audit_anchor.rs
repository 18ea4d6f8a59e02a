//! The anchored chain through the CLI: a clean log verifies online (incremental and full) and
//! offline with the public key alone; each tampering is found and its first bad sequence
//! named: a changed field, a deleted middle row, a deleted tail (the scenario: rows
//! deleted with the server stopped, then restarted), a chain rewritten with recomputed hashes,
//! and the database replaced by an older copy. Also: a flood of bad-token calls leaves a
//! bounded number of events that carry the full count.

mod common;

use common::{ROOT_TOKEN, Server, ServerOptions, create, keygate_bin};
use keygate::audit::store::AuditStore as _;
use keygate::audit::store::sql::SqlAuditStore;
use keygate::pb;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a keygate CLI command; returns (exit code, stdout, stderr).
fn run(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().expect("run keygate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let mut cmd = server.cli();
    cmd.args(args);
    run(cmd)
}

/// `keygate audit verify --offline DIR --public-key PEM`, no gateway.
fn offline(dir: &Path, pem: &Path) -> (i32, String, String) {
    let mut cmd = Command::new(keygate_bin());
    cmd.args(["audit", "verify", "--offline"])
        .arg(dir)
        .arg("--public-key")
        .arg(pem);
    run(cmd)
}

async fn db(dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("keygate.db").display()))
        .await
        .unwrap()
}

async fn sql(dir: &Path, statements: &[String]) {
    let pool = db(dir).await;
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s.clone()))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

async fn head(dir: &Path) -> u64 {
    let pool = db(dir).await;
    let h: i64 = sqlx::query_scalar("SELECT MAX(sequence) FROM audit_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    h as u64
}

async fn encrypt(keys: &mut common::Keys, n: u8) {
    for i in 0..n {
        keys.encrypt(pb::EncryptRequest {
            key: "tamper/k".into(),
            plaintext: vec![i; 16],
            associated_data: vec![],
        })
        .await
        .unwrap();
    }
}

/// A log made in two sessions, each ended by a graceful stop (so each ends with a signed
/// checkpoint), copied after each; and the audit signing key's public key.
struct Fixture {
    _dir: tempfile::TempDir,
    /// After the first session.
    early: PathBuf,
    /// After both.
    pristine: PathBuf,
    pem: PathBuf,
    /// Sequences of the second session's Encrypt events.
    encrypts: Vec<u64>,
    work: PathBuf,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pem = dir.path().join("audit-signing.pem");
    // The scenario: a key and five encryptions.
    let mut server = Server::start(&data);
    let mut keys = server.root().await;
    keys.create_key(create("tamper/k", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    encrypt(&mut keys, 5).await;
    let (code, out, err) = cli(
        &server,
        &["public-key", "--key", "keygate/audit-checkpoints"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("BEGIN PUBLIC KEY"), "{out}");
    std::fs::write(&pem, out).unwrap();
    server.stop_gracefully();
    let early = dir.path().join("early");
    common::copy_dir(&data, &early);

    let mut server = Server::start(&data);
    let mut keys = server.root().await;
    encrypt(&mut keys, 5).await;
    let mut audit = server.audit(ROOT_TOKEN).await;
    let encrypts: Vec<u64> = audit
        .query(pb::AuditQueryRequest {
            key: "tamper/k".into(),
            action: "Encrypt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .iter()
        .map(|e| e.sequence)
        .skip(5)
        .collect();
    assert_eq!(encrypts.len(), 5);
    server.stop_gracefully();
    let pristine = dir.path().join("pristine");
    common::copy_dir(&data, &pristine);
    let work = dir.path().join("work");
    common::copy_dir(&pristine, &work);
    Fixture {
        early,
        pristine,
        pem,
        encrypts,
        work,
        _dir: dir,
    }
}

/// Asserts a verification's output names `sequence` as the first bad one.
fn names(result: &(i32, String, String), sequence: u64, what: &str) {
    let (code, out, err) = result;
    println!("{what}: {out}");
    assert_eq!(*code, 1, "{what}: expected exit 1\n{out}\n{err}");
    assert!(
        out.contains(&format!("BROKEN at event {sequence} ")),
        "{what}: expected event {sequence} named:\n{out}\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_log_verifies_online_and_offline_with_the_public_key_alone() {
    let f = fixture().await;
    let server = Server::start(&f.work);
    for args in [&["audit", "verify"][..], &["audit", "verify", "--full"]] {
        let (code, out, err) = cli(&server, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        assert!(out.starts_with("audit chain OK"), "{out}");
    }
    let (code, out, _) = cli(&server, &["audit", "checkpoints", "--json"]);
    assert_eq!(code, 0);
    let checkpoints: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One at least per session end, each signed by the audit key held by the local provider.
    assert!(checkpoints.len() >= 2, "{out}");
    assert!(
        checkpoints
            .iter()
            .all(|c| c["key_name"] == "keygate/audit-checkpoints")
    );
    drop(server);

    let (code, out, err) = offline(&f.pristine, &f.pem);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("audit chain OK (full)"), "{out}");
    let mut json = Command::new(keygate_bin());
    json.args(["--json", "audit", "verify", "--offline"])
        .arg(&f.pristine)
        .arg("--public-key")
        .arg(&f.pem);
    let (_, out, _) = run(json);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["verified_from"], 0, "offline recomputes everything");
    assert!(report["witness_sequence"].as_u64().unwrap() > 0, "{report}");

    // Another key's public key is no trust at all.
    let other = rcgen::KeyPair::generate().unwrap();
    let wrong = f.early.join("other.pem");
    std::fs::write(&wrong, other.public_key_pem()).unwrap();
    let (code, out, _) = offline(&f.pristine, &wrong);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a trusted audit signing key"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_field_is_named() {
    let f = fixture().await;
    let x = f.encrypts[2];
    sql(
        &f.work,
        &[format!(
            "UPDATE audit_events SET actor = 'mallory' WHERE sequence = {x}"
        )],
    )
    .await;
    names(&offline(&f.work, &f.pem), x, "offline");
    let server = Server::start(&f.work);
    names(&cli(&server, &["audit", "verify", "--full"]), x, "full");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_middle_row_is_named() {
    let f = fixture().await;
    let x = f.encrypts[2];
    sql(
        &f.work,
        &[format!("DELETE FROM audit_events WHERE sequence = {x}")],
    )
    .await;
    names(&offline(&f.work, &f.pem), x, "offline");
    let server = Server::start(&f.work);
    names(&cli(&server, &["audit", "verify", "--full"]), x, "full");
}

/// The scenario: with the server stopped, the last two rows are deleted and the server
/// restarted; `keygate audit verify` must not say OK.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_tail_is_named() {
    let f = fixture().await;
    let h = head(&f.work).await;
    sql(
        &f.work,
        &[format!(
            "DELETE FROM audit_events WHERE sequence >= {}",
            h - 1
        )],
    )
    .await;
    names(&offline(&f.work, &f.pem), h - 1, "offline");
    let server = Server::start(&f.work);
    // The default, incremental verification finds it: the last checkpoint covers more than
    // the database holds.
    let result = cli(&server, &["audit", "verify"]);
    names(&result, h - 1, "incremental");
    // The restarted gateway did not reuse the missing sequences and said so.
    let mut audit = server.audit(ROOT_TOKEN).await;
    let gap = audit
        .query(pb::AuditQueryRequest {
            action: "AuditLogGap".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(gap.len(), 1, "{gap:?}");
    assert!(gap[0].reason.contains("missing"), "{}", gap[0].reason);
    let (code, out, _) = cli(&server, &["key", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("tamper/k"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_rewritten_with_recomputed_hashes_is_named() {
    let f = fixture().await;
    let x = f.encrypts[2];
    // The newest checkpoint before the edit: everything up to it stays proven.
    let pool = db(&f.work).await;
    let before: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(sequence), 0) FROM audit_checkpoints WHERE sequence < ?",
    )
    .bind(x as i64)
    .fetch_one(&pool)
    .await
    .unwrap();
    // Edit event x and recompute every hash from it to the head, as an intruder who knows
    // the (unkeyed) hash function would.
    let store = SqlAuditStore::new(pool.clone());
    let mut events = Vec::new();
    let mut after = x - 1;
    loop {
        let page = store.page(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.sequence;
        events.extend(page);
    }
    let mut previous = store.hashes_at(&[x - 1]).await.unwrap()[&(x - 1)].clone();
    for mut e in events {
        if e.sequence == x {
            e.record.actor = "mallory".into();
        }
        let hash = keygate::audit::chain_hash(e.format, e.sequence, &previous, &e.record);
        sqlx::query(
            "UPDATE audit_events SET actor = ?, previous_hash = ?, hash = ? WHERE sequence = ?",
        )
        .bind(&e.record.actor)
        .bind(&previous)
        .bind(&hash)
        .bind(e.sequence as i64)
        .execute(&pool)
        .await
        .unwrap();
        previous = hash;
    }
    pool.close().await;
    let expected = before as u64 + 1;
    let result = offline(&f.work, &f.pem);
    names(&result, expected, "offline");
    assert!(result.1.contains("rewritten"), "{}", result.1);
    let server = Server::start(&f.work);
    let result = cli(&server, &["audit", "verify"]);
    names(&result, expected, "incremental");
    assert!(result.1.contains("rewritten"), "{}", result.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_replaced_by_an_older_copy_is_named() {
    let f = fixture().await;
    let old_head = head(&f.early).await;
    assert!(old_head < head(&f.pristine).await);
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("keygate.db{suffix}");
        let _ = std::fs::remove_file(f.work.join(&name));
        if f.early.join(&name).exists() {
            std::fs::copy(f.early.join(&name), f.work.join(&name)).unwrap();
        }
    }
    // The witness outside the database still holds the later checkpoints.
    names(&offline(&f.work, &f.pem), old_head + 1, "offline");
    let server = Server::start(&f.work);
    names(
        &cli(&server, &["audit", "verify"]),
        old_head + 1,
        "incremental",
    );
}

/// 10,000 calls with a bad token from one address: the first `threshold` are recorded one by
/// one, the rest counted into one aggregate, and the counts add up to every call.
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_bad_token_calls_leave_a_bounded_number_of_events_with_the_full_count() {
    const CALLS: u64 = 10_000;
    const THRESHOLD: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!("[audit.flood]\nthreshold = {THRESHOLD}\nwindow = \"1h\"\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let options = || ServerOptions {
        config: Some(config.clone()),
        ..Default::default()
    };
    let mut server = Server::start_with(&data, options());
    let keys = server.keys("kg_not_a_token_anyone_has").await;
    let mut tasks = Vec::new();
    for t in 0..32 {
        let mut k = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut refused = 0u64;
            let mut i = t;
            while i < CALLS {
                let status = k
                    .encrypt(pb::EncryptRequest {
                        key: "anything".into(),
                        plaintext: b"x".to_vec(),
                        associated_data: vec![],
                    })
                    .await
                    .expect_err("a bad token is refused");
                assert_eq!(status.code(), tonic::Code::Unauthenticated);
                refused += 1;
                i += 32;
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.unwrap();
    }
    assert_eq!(refused, CALLS);
    // The aggregate is recorded when its window ends, or at shutdown.
    server.stop_gracefully();
    let server = Server::start_with(&data, options());
    let mut audit = server.audit(ROOT_TOKEN).await;
    let denied = common::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            outcome: "denied".into(),
            ..Default::default()
        },
    )
    .await;
    let single: Vec<_> = denied
        .iter()
        .filter(|e| e.action == "Encrypt" && e.error_reason == "TOKEN_INVALID")
        .collect();
    let aggregates: Vec<_> = denied
        .iter()
        .filter(|e| e.action == "CallsAggregated")
        .collect();
    let counted: u64 = aggregates
        .iter()
        .map(|e| {
            let d: serde_json::Value = serde_json::from_str(&e.details).unwrap();
            assert_eq!(e.client_address, "127.0.0.1");
            assert_eq!(e.error_reason, "TOKEN_INVALID");
            assert_eq!(d["reasons"]["TOKEN_INVALID"], d["count"], "{d}");
            d["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(single.len() as u64, THRESHOLD, "recorded one by one");
    assert_eq!(aggregates.len(), 1, "one window, one aggregate");
    assert_eq!(
        single.len() as u64 + counted,
        CALLS,
        "every call is counted"
    );
    assert!(
        denied.len() as u64 <= THRESHOLD + 1,
        "{} events for {CALLS} calls",
        denied.len()
    );
}

/// Retention prunes old events only up to a witnessed checkpoint, records that it did, and the
/// log still verifies (incremental, full and offline) from that checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn retention_prunes_behind_a_checkpoint_and_the_rest_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        "[audit]\nretention = \"2s\"\nretention_check = \"1s\"\n[audit.checkpoints]\nevery = \"1s\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_with(
        &data,
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    keys.create_key(create("tamper/k", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    encrypt(&mut keys, 5).await;
    let mut audit = server.audit(ROOT_TOKEN).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let pruned = loop {
        let events = audit
            .query(pb::AuditQueryRequest {
                action: "AuditPruned".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        let through = events.iter().find_map(|e| {
            let d: serde_json::Value = serde_json::from_str(&e.details).ok()?;
            let through = d["pruned_through"].as_u64()?;
            // Once the key's creation is gone.
            (through > 6).then_some(through)
        });
        if let Some(t) = through {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "nothing was pruned");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let first = audit
        .query(pb::AuditQueryRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(first[0].sequence > pruned, "{first:?}");
    for args in [&["audit", "verify"][..], &["audit", "verify", "--full"]] {
        let (code, out, err) = cli(&server, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        assert!(out.contains("were pruned by retention"), "{out}");
    }
    let (code, out, _) = cli(
        &server,
        &["public-key", "--key", "keygate/audit-checkpoints"],
    );
    assert_eq!(code, 0);
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, out).unwrap();
    server.stop_gracefully();
    let (code, out, err) = offline(&data, &pem);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// The audit signing key is rotated like any key: later checkpoints are signed by the new
/// version, and checkpoints of both verify online, and offline with both public keys.
#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_verify_across_a_rotation_of_the_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(&config, "[audit.checkpoints]\nevery = \"200ms\"\n").unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_with(
        &data,
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    keys.create_key(create("tamper/k", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    let signed_by = |server: &Server, version: u64| {
        let (_, out, _) = cli(
            server,
            &["--json", "audit", "checkpoints", "--limit", "1000"],
        );
        out.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|c| c["key_version"] == version)
    };
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    encrypt(&mut keys, 2).await;
    wait("a checkpoint signed by version 1", &|| {
        signed_by(&server, 1)
    });
    let (code, _, err) = cli(&server, &["key", "rotate", "keygate/audit-checkpoints"]);
    assert_eq!(code, 0, "{err}");
    encrypt(&mut keys, 2).await;
    wait("a checkpoint signed by version 2", &|| {
        signed_by(&server, 2)
    });
    for args in [&["audit", "verify"][..], &["audit", "verify", "--full"]] {
        let (code, out, err) = cli(&server, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
    }
    let mut both = String::new();
    for v in ["1", "2"] {
        let (code, out, err) = cli(
            &server,
            &[
                "public-key",
                "--key",
                "keygate/audit-checkpoints",
                "--key-version",
                v,
            ],
        );
        assert_eq!(code, 0, "{err}");
        both.push_str(&out);
        std::fs::write(dir.path().join(format!("v{v}.pem")), &out).unwrap();
    }
    std::fs::write(dir.path().join("both.pem"), both).unwrap();
    server.stop_gracefully();
    let (code, out, err) = offline(&data, &dir.path().join("both.pem"));
    assert_eq!(code, 0, "{out}\n{err}");
    // The new version's key alone does not vouch for what the old one signed.
    let (code, out, _) = offline(&data, &dir.path().join("v2.pem"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a trusted audit signing key"), "{out}");
}
