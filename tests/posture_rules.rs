//! Key posture rules end to end through gRPC, each produced by setting up its condition and
//! closed by fixing it, on the local provider alone: crypto-period-exceeded, owner-unknown,
//! destruction-overdue, two-environments (from the audit log); and the background scan
//! running by itself.

mod common;

use common::posture::{
    PEOPLE, Setup, create, findings, open_finding, posture_as, scan, scan_events,
    scan_until_closed, scan_until_open,
};
use common::{Server, ServerOptions};
use keygate::pb;
use keygate::pb::posture_service_client::PostureServiceClient;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_findings_open_on_their_condition_and_close_when_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::posture::start(dir.path(), &Setup::default());
    let mut root = server.root().await;
    let mut sol = posture_as(&server, "sol").await;
    // crypto-period-exceeded: a key whose crypto-period runs out; disabling it (no longer
    // in use) fixes it.
    let short = root
        .create_key(pb::CreateKeyRequest {
            crypto_period: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..create("pos/short-lived-period", "local", "svc-app")
        })
        .await
        .unwrap()
        .into_inner();
    let overdue = scan_until_open(&mut sol, "crypto-period-exceeded", &short.id).await;
    assert!(
        overdue.evidence.contains("never rotated"),
        "{}",
        overdue.evidence
    );
    root.disable_key(pb::DisableKeyRequest {
        key: short.id.clone(),
    })
    .await
    .unwrap();
    scan(&mut sol).await;
    assert!(
        open_finding(&mut sol, "crypto-period-exceeded", &short.id)
            .await
            .is_none()
    );

    // owner-unknown and destruction-overdue: a key owned by nobody configured, and a
    // short-lived key whose time to live ends while the scheduler is not due.
    let orphan = root
        .create_key(create("pos/orphan", "local", "ghost"))
        .await
        .unwrap()
        .into_inner();
    let ttl = root
        .create_key(pb::CreateKeyRequest {
            ttl: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..create("pos/ttl", "local", "svc-app")
        })
        .await
        .unwrap()
        .into_inner();
    scan(&mut sol).await;
    let owner = open_finding(&mut sol, "owner-unknown", &orphan.id)
        .await
        .expect("owner-unknown finding");
    assert_eq!(owner.severity, "medium");
    scan_until_open(&mut sol, "destruction-overdue", &ttl.id).await;
    // Fixed: `ghost` becomes a configured principal and the scheduler runs every second
    // (it destroys the short-lived key). A restart picks both up.
    drop(server);
    let mut people = PEOPLE.to_vec();
    people.push(("ghost", "user", "key-user"));
    let server = common::posture::start(
        dir.path(),
        &Setup {
            scheduler: "1s",
            people: &people,
            ..Default::default()
        },
    );
    let mut sol = posture_as(&server, "sol").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        scan(&mut sol).await;
        if open_finding(&mut sol, "destruction-overdue", &ttl.id)
            .await
            .is_none()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the short-lived key was not destroyed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        open_finding(&mut sol, "owner-unknown", &orphan.id)
            .await
            .is_none()
    );
    let closed: Vec<String> = findings(&mut sol, "closed", "")
        .await
        .into_iter()
        .map(|f| f.rule)
        .collect();
    for rule in [
        "crypto-period-exceeded",
        "owner-unknown",
        "destruction-overdue",
    ] {
        assert!(
            closed.iter().any(|r| r == rule),
            "{rule} never closed: {closed:?}"
        );
    }
}

/// A key used from two environments: a dev service calling from the network configured as
/// staging's (all of this test's calls come from the loopback). The finding closes once a
/// whole audit window passes without such a use.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_used_from_two_environments_is_a_finding_until_a_window_passes_without() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::posture::start(
        dir.path(),
        &Setup {
            posture: "audit_window = \"6s\"\n[posture.networks]\nstaging = [\"127.0.0.0/8\"]"
                .into(),
            ..Default::default()
        },
    );
    let mut root = server.root().await;
    let mut sol = posture_as(&server, "sol").await;
    let shared = root
        .create_key(create("env/shared", "local", "svc-app"))
        .await
        .unwrap()
        .into_inner();
    // Used by root alone (of every environment: placed by its address only): one
    // environment, no finding.
    let root_only = root
        .create_key(create("env/root-only", "local", "svc-app"))
        .await
        .unwrap()
        .into_inner();
    root.encrypt(pb::EncryptRequest {
        key: root_only.id.clone(),
        plaintext: b"x".to_vec(),
        associated_data: vec![],
    })
    .await
    .unwrap();
    scan(&mut sol).await;
    for key in [&shared.id, &root_only.id] {
        assert!(
            open_finding(&mut sol, "two-environments", key)
                .await
                .is_none()
        );
    }

    // The dev service uses the key from the staging network.
    let mut app = server.keys(&common::posture::token("svc-app")).await;
    app.encrypt(pb::EncryptRequest {
        key: "env/shared".into(),
        plaintext: b"x".to_vec(),
        associated_data: vec![],
    })
    .await
    .unwrap();
    scan(&mut sol).await;
    let found = open_finding(&mut sol, "two-environments", &shared.id)
        .await
        .expect("two-environments finding");
    assert_eq!(found.severity, "medium");
    assert_eq!(found.key_name, "env/shared");
    for part in [
        "used from 2 environments",
        "dev (callers of that environment: svc-app)",
        "staging (from its network: 127.0.0.1)",
    ] {
        assert!(found.evidence.contains(part), "{part}: {}", found.evidence);
    }
    assert!(
        open_finding(&mut sol, "two-environments", &root_only.id)
            .await
            .is_none()
    );

    // No more such use: once the window has passed, a scan closes it.
    let closed = scan_until_closed(&mut sol, "two-environments", &shared.id).await;
    assert_eq!(closed.id, found.id);
    assert!(
        closed.closed_because.contains("no longer found"),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_background_scan_runs_by_itself_as_the_system() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    std::fs::write(&config, "[posture]\nscan_interval = \"1s\"\n").unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut root = server.root().await;
    // Owned by nobody configured (dev mode has only its root): a finding without asking.
    let key = root
        .create_key(common::create("bg/orphan", "aes-256-gcm", "nobody"))
        .await
        .unwrap()
        .into_inner();
    let mut posture = PostureServiceClient::with_interceptor(
        server.channel().await,
        common::Bearer::new(common::ROOT_TOKEN),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        if let Some(f) = open_finding(&mut posture, "owner-unknown", &key.id).await {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no background scan found the key"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(found.key_name, "bg/orphan");
    let scans = scan_events(&server).await;
    assert!(!scans.is_empty());
    assert!(
        scans
            .iter()
            .all(|e| e.actor == "keygate:posture" && e.actor_kind == "system"),
        "{scans:?}"
    );
}
