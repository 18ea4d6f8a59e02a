//! SIGTERM: the server stops accepting, ends Tail streams, lets the calls under way finish,
//! and exits 0 within `server.shutdown_grace`; every call that answered OK has its audit
//! event.

mod common;

use common::{ROOT_TOKEN, Server, ServerOptions, create, request_id};
use keygate::pb;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;

const GRACE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_with_a_tail_open_exits_in_time_and_loses_no_audit_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_with(
        &data,
        ServerOptions {
            env: vec![("KEYGATE_SERVER__SHUTDOWN_GRACE".into(), "5s".into())],
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    keys.create_key(create("busy", "aes-256-gcm", "alice"))
        .await
        .unwrap();

    let mut audit = server.audit(ROOT_TOKEN).await;
    let mut tail = audit
        .tail(pb::AuditTailRequest {
            action: "Encrypt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let tail_task = tokio::spawn(async move {
        loop {
            match tail.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    });

    // Load on several connections until the server goes away.
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut load = Vec::new();
    for _ in 0..4 {
        let mut keys = server.root().await;
        let answered = answered.clone();
        load.push(tokio::spawn(async move {
            loop {
                match keys
                    .encrypt(pb::EncryptRequest {
                        key: "busy".into(),
                        plaintext: b"in flight".to_vec(),
                        associated_data: vec![],
                    })
                    .await
                {
                    Ok(r) => answered.lock().unwrap().push(request_id(&r)),
                    // Refused (shutting down) or the connection closed: this client is done.
                    Err(_) => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = server.child.id().expect("running");
    let sent = Instant::now();
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = server.child.exit_status() {
            break status;
        }
        assert!(
            sent.elapsed() < GRACE + Duration::from_secs(3),
            "keygate still running {:?} after SIGTERM (grace {GRACE:?}):\n{}",
            sent.elapsed(),
            server.child.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}\n{}", server.child.log_tail());
    assert!(
        server.output().contains("keygate stopped"),
        "{}",
        server.output()
    );

    // The Tail stream was ended by the server, saying why, not cut by the exit.
    let ended = tokio::time::timeout(Duration::from_secs(30), tail_task)
        .await
        .expect("the tail ended")
        .unwrap()
        .expect("the tail ended with a status");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("shutting down"), "{ended:?}");
    for task in load {
        task.await.unwrap();
    }

    // Every Encrypt that answered OK is in the audit log, read after a restart.
    let answered: BTreeSet<String> = answered.lock().unwrap().iter().cloned().collect();
    let server = Server::start(&data);
    let mut audit = server.audit(ROOT_TOKEN).await;
    let audited: BTreeSet<String> = common::query_all(
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
    let missing: Vec<&String> = answered.difference(&audited).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered calls have no audit event: {missing:?}",
        missing.len(),
        answered.len()
    );
}
